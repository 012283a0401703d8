import Access
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gear restore` end to end in a directory laid out like a gear (no root, no cartridges): real
/// gzip, the staging tree, the swap. A refused archive leaves every file of the gear as it was.
@Suite("gear restore in a gear's layout (no root)", .timeLimit(.minutes(2)))
struct RestoreTests {
    static let top = "./0123abcd"

    static func snapshotArchive() -> TarBuilder {
        var tar = TarBuilder()
        for directory in ["", "/app-root", "/app-root/data", "/app-root/data/nested", "/app-deployments"] { tar.directory(top + directory + "/") }
        tar.file(top + "/app-root/data/nested/a.bin", (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }, mode: 0o600)
        tar.file(top + "/app-root/data/with space\nand newline", "odd name", mode: 0o640)
        tar.symlink(top + "/app-root/data/link", to: "nested/a.bin")
        tar.hardLink(top + "/app-root/data/hard", to: top + "/app-root/data/nested/a.bin")
        tar.directory(top + "/app-root/data/readonly/", mode: 0o555)
        tar.file(top + "/app-root/data/readonly/inside", "ro")
        tar.file(top + "/.auth/token", "never restored")
        tar.symlink(top + "/mock/usr", to: "/usr/libexec/openshift/cartridges/mock/usr")
        return tar
    }

    @Test("a snapshot's data replaces the old data: content, modes, links, odd names; nothing outside the scope; runtime/data recreated")
    func restoresData() throws {
        let fake = try FakeGear()
        defer { fake.remove() }
        unlink(fake.home + "/app-root/runtime/data")
        let said = try fake.restore(try Archives.gzip(Self.snapshotArchive().ended()))
        let data = Tree.entries(fake.home + "/app-root/data")
        #expect(data.map(\.path) == ["hard", "link", "nested", "nested/a.bin", "readonly", "readonly/inside", "with space\nand newline"])
        #expect(data.first { $0.path == "nested/a.bin" }?.content == (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        #expect(data.first { $0.path == "nested/a.bin" }?.mode == 0o600)
        #expect(data.first { $0.path == "with space\nand newline" }.map { ($0.mode, $0.content) } ?? (0, []) == (0o640, Array("odd name".utf8)))
        #expect(data.first { $0.path == "link" }?.content == Array("nested/a.bin".utf8))
        #expect(data.first { $0.path == "readonly" }?.mode == 0o555)
        var a = stat(), b = stat()
        #expect(lstat(fake.home + "/app-root/data/hard", &a) == 0 && lstat(fake.home + "/app-root/data/nested/a.bin", &b) == 0 && a.st_ino == b.st_ino)
        #expect(!TestFiles.exists(fake.home + "/.auth") && !TestFiles.exists(fake.home + "/mock"))
        var buffer = [CChar](repeating: 0, count: 64)
        #expect(readlink(fake.home + "/app-root/runtime/data", &buffer, 63) == 7)
        #expect(Tree.entries(fake.home + "/.tmp").isEmpty, "the staging tree is gone")
        #expect(said.contains("Restoring ~/app-root/data"))
        chmod(fake.home + "/app-root/data/readonly", 0o755)
    }

    static func hostileArchives() throws -> [(String, [UInt8], String)] {
        func archive(_ build: (inout TarBuilder) -> Void) throws -> [UInt8] {
            var tar = TarBuilder()
            tar.directory(top + "/")
            tar.directory(top + "/app-root/data/")
            tar.file(top + "/app-root/data/first", "would replace the data")
            build(&tar)
            return try Archives.gzip(tar.ended())
        }
        let good = try Archives.gzip(snapshotArchive().ended())
        var corrupt = good
        corrupt[corrupt.count / 2] ^= 0xff
        var tarOnly = snapshotArchive()
        tarOnly.file(top + "/app-root/data/last", "x")
        return [
            ("absolute path", try archive { $0.file("/tmp/evil", "x") }, "an absolute name"),
            ("'..'", try archive { $0.file(top + "/app-root/data/../../../x", "x") }, "'..' component"),
            ("symlink out", try archive { $0.symlink(top + "/app-root/data/out", to: "../../../..") }, "leaves the gear"),
            ("symlink chain out", try archive {
                $0.symlink(top + "/app-root/data/l1", to: "l2/../../..")
                $0.symlink(top + "/app-root/data/l2", to: ".")
            }, "leaves the gear"),
            ("hard link out", try archive { $0.hardLink(top + "/app-root/data/h", to: top + "/.env/OPENSHIFT_GEAR_NAME") }, "not an earlier regular file"),
            ("device", try archive { $0.special(top + "/app-root/data/dev", type: "3") }, "a character device"),
            ("fifo", try archive { $0.special(top + "/app-root/data/fifo", type: "6") }, "a fifo"),
            ("pax path ../x", try archive {
                $0.pax([("path", "../x")])
                $0.file(top + "/app-root/data/ok", "ok")
            }, "'..' component"),
            ("truncated gzip", Array(good.prefix(good.count / 2)), "gzip"),
            ("corrupt gzip", corrupt, "gzip"),
            ("not gzip at all", Array("hello, this is not an archive\n".utf8), "gzip"),
            ("truncated tar in a whole gzip", try Archives.gzip(Array(tarOnly.bytes.dropLast(600))), "truncated"),
        ]
    }

    @Test("a hostile, truncated or corrupt archive is refused with its reason and changes nothing")
    func refusedArchivesChangeNothing() throws {
        for (label, archive, reason) in try Self.hostileArchives() {
            let fake = try FakeGear()
            defer { fake.remove() }
            let before = Tree.entries(fake.home)
            do {
                _ = try fake.restore(archive)
                Issue.record("\(label): the archive was accepted")
            } catch {
                if case .refused(_, let text) = error {
                    #expect(text.contains(reason), "\(label): \(error)")
                } else {
                    Issue.record("\(label): not a refusal: \(error)")
                }
                #expect(error.description.contains("nothing was changed"), "\(label)")
            }
            #expect(Tree.entries(fake.home) == before, "\(label): the gear changed")
        }
    }

    @Test("an archive made by the real tar with a fifo in the data is refused")
    func realTarFifo() throws {
        let fake = try FakeGear()
        defer { fake.remove() }
        let source = TestFiles.temporaryDirectory("tar-source")
        defer { TestFiles.remove(source) }
        try TestFiles.makeDirectories(source + "/0123abcd/app-root/data")
        try TestFiles.write(source + "/0123abcd/app-root/data/file", "x")
        #expect(mkfifo(source + "/0123abcd/app-root/data/pipe", 0o644) == 0)
        let made = try ProcessRunner.run(["/bin/tar", "-czf", source + "/a.tar.gz", "-C", source, "./0123abcd"])
        #expect(made.status == 0, "\(made.stderr)")
        let before = Tree.entries(fake.home)
        #expect {
            _ = try fake.restore(try FileSystem.readBytes(source + "/a.tar.gz"))
        } throws: { error in
            (error as? InGearError)?.description.contains("member './0123abcd/app-root/data/pipe': a fifo") == true
        }
        #expect(Tree.entries(fake.home) == before)
    }
}

@Suite("gear restore --restore-git-repo in a gear's layout (no root)", .timeLimit(.minutes(3)))
struct GitRestoreTests {
    @Test("the repository's objects and refs are replaced, its hooks kept, the archive's hooks never restored; the old repository name maps to the gear's")
    func restoresRepository() throws {
        let fake = try FakeGear()
        defer { fake.remove() }
        let repo = fake.home + "/git/myapp.git"
        for directory in ["objects/aa", "refs/heads", "hooks"] { try TestFiles.makeDirectories(repo + "/" + directory) }
        try TestFiles.write(repo + "/HEAD", "ref: refs/heads/old\n")
        try TestFiles.write(repo + "/objects/aa/old", "old object")
        try TestFiles.write(repo + "/refs/heads/old", "1111\n")
        try TestFiles.write(repo + "/hooks/post-receive", "#!/bin/sh\nexec gear postreceive\n", mode: 0o755)
        let top = "./0123abcd"
        var tar = TarBuilder()
        for directory in ["", "/git", "/git/oldname.git", "/git/oldname.git/objects", "/git/oldname.git/objects/bb", "/git/oldname.git/hooks",
                          "/app-root", "/app-root/data"] { tar.directory(top + directory + "/") }
        tar.file(top + "/git/oldname.git/HEAD", "ref: refs/heads/master\n")
        tar.file(top + "/git/oldname.git/objects/bb/new", "new object")
        tar.file(top + "/git/oldname.git/hooks/post-receive", "#!/bin/sh\ncurl evil\n", mode: 0o755)
        tar.file(top + "/app-root/data/file", "data")
        let archive = try Archives.gzip(tar.ended())

        // Without --restore-git-repo the repository is left alone.
        _ = try fake.restore(archive)
        #expect(TestFiles.read(repo + "/HEAD") == "ref: refs/heads/old\n")
        #expect(TestFiles.read(fake.home + "/app-root/data/file") == "data")

        let said = try fake.restore(archive, includeGit: true)
        #expect(said.contains("Restoring ~/git/myapp.git and ~/app-root/data"))
        #expect(TestFiles.read(repo + "/HEAD") == "ref: refs/heads/master\n")
        #expect(TestFiles.read(repo + "/objects/bb/new") == "new object")
        #expect(!TestFiles.exists(repo + "/objects/aa/old") && !TestFiles.exists(repo + "/refs/heads/old"), "old objects and refs are gone")
        #expect(TestFiles.read(repo + "/hooks/post-receive") == "#!/bin/sh\nexec gear postreceive\n", "the gear's hooks stay")
        #expect(!TestFiles.exists(fake.home + "/git/oldname.git"))
    }

    @Test("--restore-git-repo on a gear without a repository is refused before anything changes")
    func noRepository() throws {
        let fake = try FakeGear()
        defer { fake.remove() }
        let before = Tree.entries(fake.home)
        #expect {
            _ = try fake.restore(try Archives.gzip(RestoreTests.snapshotArchive().ended()), includeGit: true)
        } throws: { error in
            (error as? InGearError)?.description.contains("has no git repository ~/git/myapp.git") == true
        }
        #expect(Tree.entries(fake.home) == before)
    }
}
