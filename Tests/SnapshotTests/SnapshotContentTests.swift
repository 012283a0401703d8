import Access
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `gear snapshot` in a directory laid out like a gear (no root, a cartridge without hooks): what
/// the archive holds, and that restoring it into another such gear gives the data back.
@Suite("gear snapshot of a gear's layout (no root)", .timeLimit(.minutes(2)))
struct SnapshotContentTests {
    static func secrets(in fake: FakeGear) throws {
        for directory in [".auth", ".openshift_ssh", ".ssh", "app-root/data/cache", "app-root/data/keep", "mock/metadata", "app-root/runtime/repo"] {
            try TestFiles.makeDirectories(fake.home + "/" + directory)
        }
        try TestFiles.write(fake.home + "/.auth/token", "broker token")
        try TestFiles.write(fake.home + "/.openshift_ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n", mode: 0o600)
        try TestFiles.write(fake.home + "/.openshift_ssh/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n", mode: 0o600)
        try TestFiles.write(fake.home + "/.openshift_ssh/id_rsa.pub", "ssh-rsa AAAA\n")
        try TestFiles.write(fake.home + "/.openshift_ssh/known_hosts", "host key\n")
        try TestFiles.write(fake.home + "/.ssh/authorized_keys", "keys\n")
        try TestFiles.write(fake.home + "/app-root/data/.bash_history", "mysql -phunter2\n")
        try TestFiles.write(fake.home + "/app-root/data/cache/big", "cache")
        try TestFiles.write(fake.home + "/app-root/data/keep/file", "kept")
        try TestFiles.write(fake.home + "/app-root/runtime/repo/app.py", "code")
        try TestFiles.write(fake.home + "/mock/metadata/manifest.yml", "Name: mock\n")
        try TestFiles.write(fake.home + "/mock/metadata/managed_files.yml", """
            snapshot_exclusions:
              - ~/app-root/data/cache/
              - /etc/passwd
              - ../../other-gear
            """)
    }

    static func snapshot(_ fake: FakeGear, said: inout [String]) throws -> [UInt8] {
        let path = fake.root + "/out.tar.gz"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        defer { close(fd) }
        final class Lines: @unchecked Sendable { var lines: [String] = [] }
        let lines = Lines()
        try GearSnapshot(gear: fake.gear, say: { lines.lines.append($0) }).run(output: fd)
        said = lines.lines
        return try FileSystem.readBytes(path, limit: 1 << 30)
    }

    @Test("the archive has no broker token, no private key, no .bash_history, no .ssh; the cartridge's exclusions apply, bad ones are reported")
    func noSecrets() throws {
        let fake = try FakeGear()
        defer { fake.remove() }
        try Self.secrets(in: fake)
        var said: [String] = []
        let archive = try Self.snapshot(fake, said: &said)
        try TestFiles.write(fake.root + "/list.tar.gz", bytes: archive)
        let listing = try ProcessRunner.run(["/bin/tar", "-tzf", fake.root + "/list.tar.gz"])
        #expect(listing.status == 0, "\(listing.stderr)")
        let names = Set(listing.stdout.split(separator: "\n").map(String.init))
        let top = "./\(fake.uuid)/"
        for present in ["app-root/data/keep/file", ".openshift_ssh/id_rsa.pub", ".openshift_ssh/known_hosts", "mock/metadata/manifest.yml", ".env/OPENSHIFT_GEAR_NAME"] {
            #expect(names.contains(top + present), "\(present) is in the archive")
        }
        for absent in [".auth/", ".auth/token", ".openshift_ssh/id_rsa", ".openshift_ssh/id_ed25519", ".ssh/", "app-root/data/.bash_history",
                       "app-root/data/cache/big", "app-root/runtime/repo/app.py", ".tmp/", "app-root/runtime/.state"] {
            #expect(!names.contains(top + absent), "\(absent) is not in the archive")
        }
        #expect(names.allSatisfy { $0.hasPrefix(top) }, "every member is ./<uuid>/...")
        #expect(said.contains { $0.contains("Ignoring snapshot exclusion '/etc/passwd' of cartridge mock") })
        #expect(said.contains { $0.contains("Ignoring snapshot exclusion '../../other-gear' of cartridge mock") })
    }

    @Test("a snapshot restored into another gear gives app-root/data back: content, modes, links, odd names")
    func roundTrip() throws {
        let source = try FakeGear()
        defer { source.remove() }
        let data = source.home + "/app-root/data"
        try TestFiles.makeDirectories(data + "/a/b/c")
        try TestFiles.write(data + "/a/b/c/deep.bin", bytes: (0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 13 / 7) }, mode: 0o600)
        try TestFiles.write(data + "/name with spaces\nand a newline", "odd")
        try TestFiles.write(data + "/caf\u{e9}.txt", "accents", mode: 0o640)
        symlink("a/b/c/deep.bin", data + "/link")
        symlink("../logs", data + "/logs-link")
        chmod(data + "/a/b", 0o750)
        var said: [String] = []
        let archive = try Self.snapshot(source, said: &said)
        let target = try FakeGear()
        defer { target.remove() }
        _ = try target.restore(archive)
        #expect(Tree.entries(target.home + "/app-root/data") == Tree.entries(data))
        #expect(Tree.entries(target.home + "/app-root/data").count == 12, "the 8 made here and the 4 every such layout has")
    }
}
