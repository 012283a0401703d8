import NodeTestSupport
import Testing

@testable import Cartridges

#if canImport(Glibc)
import Glibc
#endif

/// The crtest fixtures of the original's repository tests (M1..M4), written as sources.
enum Crtest {
    /// cv 0.0.1, sw [0.1], web_framework.
    static let m1 = """
        Name: crtest
        Cartridge-Short-Name: CRTEST
        Cartridge-Vendor: redhat
        Cartridge-Version: '0.0.1'
        Version: '0.1'
        Categories: [web_framework]
        Group-Overrides:
          - components: [crtest-0.1]

        """
    /// cv 0.0.2, sw [0.1, 0.2], default 0.2, with an override for 0.1.
    static let m2 = """
        Name: crtest
        Display-Name: crtest2
        Cartridge-Short-Name: CRTEST
        Cartridge-Vendor: redhat
        Cartridge-Version: '0.0.2'
        Version: '0.2'
        Versions: ['0.1', '0.2']
        Categories: [embedded]
        Source-Url: https://example.com/crtest.zip
        Group-Overrides:
          - components: [crtest-0.2]
        Version-Overrides:
          '0.1':
            Display-Name: crtest
            Categories: [service]
            Versions: ['0.2']
            Group-Overrides:
              - components: [crtest-0.1]

        """
    /// cv 0.0.3, sw [0.2, 0.3], default 0.3.
    static let m3 = """
        Name: crtest
        Cartridge-Short-Name: CRTEST
        Cartridge-Vendor: redhat
        Cartridge-Version: '0.0.3'
        Version: '0.3'
        Versions: ['0.2', '0.3']
        Group-Overrides:
          - components: [crtest-0.3]
        Version-Overrides:
          '0.2':
            Group-Overrides:
              - components: [crtest-0.2]

        """
    /// vendor example, cv 0.0.1, sw [0.1].
    static let m4 = m1.replacingOccurrences("Cartridge-Vendor: redhat", with: "Cartridge-Vendor: example")
}

extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// Writes a cartridge source with `manifest` at `<node.root>/src/<dir>` and returns its path.
@discardableResult
func source(_ node: ScratchNode, _ dir: String, _ manifest: String, files: [String: String] = ["bin/control": "#!/bin/sh\n"]) throws -> String {
    let path = node.root + "/src/" + dir
    try TestFiles.write(path + "/metadata/manifest.yml", manifest)
    for (file, contents) in files { try TestFiles.write(path + "/" + file, contents, mode: 0o755) }
    return path
}

func group(_ manifest: Manifest) -> [String]? {
    manifest.map["Group-Overrides"]?.list?.first?.map?["components"]?.stringList
}

@Suite("cartridge repository")
struct CartridgeRepositoryTests {
    let node = ScratchNode("repo-test")

    @Test("install indexes every software version, with the repository path from the manifest")
    func insert() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        let snapshot = repository.snapshot
        #expect(snapshot.exists(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.1"))
        #expect(!snapshot.exists(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.1"))
        let manifest = try snapshot.select(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.1")
        #expect(manifest.version.text == "0.1" && manifest.vendor == "redhat" && manifest.cartridgeVersion.text == "0.0.1")
        #expect(repository.path + "/" + manifest.repositoryDirectory == node.repositoryPath + "/redhat-crtest/0.0.1")
        #expect(try snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.1")
        #expect(TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.1/metadata/manifest.yml"))
        #expect(TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.1/bin/control"))
    }

    @Test("version overrides: each software version gets its own projection")
    func versionOverrides() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        try repository.install(from: try source(node, "m2", Crtest.m2))
        let snapshot = repository.snapshot
        #expect(snapshot.exists(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.2"))
        #expect(snapshot.exists(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2"))
        let v01 = try snapshot.select(vendor: "redhat", name: "crtest", version: "0.1")
        #expect(v01.cartridgeVersion.text == "0.0.2")
        #expect(v01.name == "crtest" && v01.displayName == "crtest" && v01.version.text == "0.1")
        #expect(v01.categories.contains("service"))
        #expect(v01.versions.map(\.text).contains("0.1"))
        #expect(group(v01) == ["crtest-0.1"])
        let v02 = try snapshot.select(vendor: "redhat", name: "crtest", version: "0.2")
        #expect(v02.displayName == "crtest2" && !v02.categories.contains("service"))
        #expect(group(v02) == ["crtest-0.2"])
    }

    @Test("erase removes every software version of the cartridge version; the default falls back")
    func erase() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        try repository.install(from: try source(node, "m2", Crtest.m2))
        try repository.erase(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2", usage: NoUsage())
        let snapshot = repository.snapshot
        #expect(throws: CartridgesError.notFound(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2")) {
            try snapshot.select(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2")
        }
        #expect(throws: CartridgesError.notFound(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "_")) {
            try snapshot.select(vendor: "redhat", name: "crtest", version: "0.2")
        }
        #expect(try snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.1")
        #expect(!TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.2"))
        try repository.erase(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.1", usage: NoUsage())
        #expect(repository.snapshot.count == 0)
        #expect(!TestFiles.exists(node.repositoryPath + "/redhat-crtest"), "the empty cartridge directory goes too")
    }

    @Test("erase refuses a version shipped in CARTRIDGE_BASE_PATH unless forced; the index is untouched")
    func eraseShipped() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        let shipped = node.basePath + "/crtest"
        try TestFiles.write(shipped + "/metadata/manifest.yml", Crtest.m2)
        try repository.install(from: shipped)
        #expect {
            try repository.erase(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2", usage: NoUsage())
        } throws: { error in
            guard case let .eraseRefused(_, reason) = error as? CartridgesError else { return false }
            return reason.hasPrefix("Cannot erase cartridge installed in CARTRIDGE_BASE_PATH") && reason.contains(shipped)
        }
        #expect(try repository.snapshot.select(vendor: "redhat", name: "crtest", version: "0.2").cartridgeVersion.text == "0.0.2")
        #expect(TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.2"))
        try repository.erase(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2", force: true, usage: NoUsage())
        #expect(!repository.snapshot.exists(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2"))
    }

    @Test("erase refuses a version a gear on this node uses unless forced")
    func eraseInUse() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m2", Crtest.m2))
        let usage = FixedUsage(uses: ["redhat:crtest:0.0.2": ["5f3c2a1b9e8d4c7fa6b5e4d3c2b1a098"]])
        #expect {
            try repository.erase(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2", usage: usage)
        } throws: { error in
            guard case let .eraseRefused(_, reason) = error as? CartridgesError else { return false }
            return reason.contains("used by gear(s) 5f3c2a1b9e8d4c7fa6b5e4d3c2b1a098")
        }
        #expect(repository.snapshot.count == 2)
        try repository.erase(vendor: "redhat", name: "crtest", version: "0.2", cartridgeVersion: "0.0.2", force: true, usage: usage)
        #expect(repository.snapshot.count == 0)
    }

    @Test("erase arguments with /, .., _ or control characters are refused before anything is touched", arguments: [
        ("redhat", "../crtest", "0.1", "0.0.1", "name"),
        ("redhat", "crtest/x", "0.1", "0.0.1", "name"),
        ("red/hat", "crtest", "0.1", "0.0.1", "cartridge_vendor"),
        ("redhat", "crtest", "0.1", "_", "cartridge_version"),
        ("redhat", "crtest", "../0.1", "0.0.1", "version"),
        ("redhat", "crtest", "0.1", "0.0.1\n", "cartridge_version"),
        ("redhat", "cr\u{1b}test", "0.1", "0.0.1", "name"),
    ])
    func eraseBadArguments(vendor: String, name: String, version: String, cartridgeVersion: String, field: String) throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        #expect {
            try repository.erase(vendor: vendor, name: name, version: version, cartridgeVersion: cartridgeVersion, usage: NoUsage())
        } throws: { error in
            guard case let .invalidArgument(errorField, _, _) = error as? CartridgesError else { return false }
            return errorField == field && !"\(error)".contains("\u{1b}") && !"\(error)".contains("\n")
        }
        #expect(repository.snapshot.count == 1)
    }

    @Test("count and listing: M1 + M2 + M3 give five entries, sorted")
    func countAndListing() throws {
        defer { node.destroy() }
        let repository = node.repository()
        for (dir, manifest) in [("m3", Crtest.m3), ("m1", Crtest.m1), ("m2", Crtest.m2)] {
            try repository.install(from: try source(node, dir, manifest))
        }
        #expect(repository.snapshot.count == 5)
        #expect(repository.snapshot.listing == """
            (redhat, crtest, 0.1, 0.0.1)
            (redhat, crtest, 0.1, 0.0.2)
            (redhat, crtest, 0.2, 0.0.2)
            (redhat, crtest, 0.2, 0.0.3)
            (redhat, crtest, 0.3, 0.0.3)

            """)
    }

    @Test("latest cartridge version and latest versions follow version order")
    func latest() throws {
        defer { node.destroy() }
        let repository = node.repository()
        for (dir, manifest) in [("m1", Crtest.m1), ("m2", Crtest.m2), ("m3", Crtest.m3)] {
            try repository.install(from: try source(node, dir, manifest))
        }
        let snapshot = repository.snapshot
        #expect(snapshot.latestCartridgeVersion(vendor: "redhat", name: "crtest")?.text == "0.0.3")
        #expect(snapshot.latestCartridgeVersion(vendor: "redhat", name: "nothing") == nil)
        #expect(try snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.2")
        #expect(throws: CartridgesError.self) {
            try snapshot.select(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.3")
        }
        #expect(group(try snapshot.select(vendor: "redhat", name: "crtest", version: "0.2")) == ["crtest-0.2"])
        #expect(group(try snapshot.select(vendor: "redhat", name: "crtest", version: "0.3")) == ["crtest-0.3"])
        let latest = snapshot.latestVersions()
        #expect(latest.map(\.tuple) == ["(redhat, crtest, 0.3, 0.0.3)", "(redhat, crtest, 0.2, 0.0.3)"])
        #expect(throws: CartridgesError.notFound(vendor: "redhat", name: "crtest", version: "0.4", cartridgeVersion: "_")) {
            try snapshot.select(vendor: "redhat", name: "crtest", version: "0.4")
        }
    }

    @Test("the default is the greatest cartridge version, whatever the install order")
    func defaultIsGreatest() throws {
        defer { node.destroy() }
        let repository = node.repository()
        let newer = Crtest.m1.replacingOccurrences("'0.0.1'", with: "'0.0.10'")
        let older = Crtest.m1.replacingOccurrences("'0.0.1'", with: "'0.0.9'")
        try repository.install(from: try source(node, "newer", newer))
        #expect(try repository.snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.10")
        try repository.install(from: try source(node, "older", older))
        #expect(try repository.snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.10",
                "installing an older version does not make it the default")
        try repository.erase(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.9", usage: NoUsage())
        #expect(try repository.snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.10")
        try repository.install(from: try source(node, "older", older))
        try repository.erase(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.10", usage: NoUsage())
        #expect(try repository.snapshot.select(vendor: "redhat", name: "crtest", version: "0.1").cartridgeVersion.text == "0.0.9",
                "no dangling default after erasing the greatest")
    }

    @Test("a second vendor is a separate cartridge")
    func vendors() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        try repository.install(from: try source(node, "m4", Crtest.m4))
        let manifest = try repository.snapshot.select(vendor: "example", name: "crtest", version: "0.1")
        #expect(manifest.vendor == "example" && manifest.name == "crtest" && manifest.cartridgeVersion.text == "0.0.1")
        #expect(TestFiles.exists(node.repositoryPath + "/example-crtest/0.0.1/metadata/manifest.yml"))
        #expect(repository.snapshot.count == 2)
    }

    @Test("one manifest with three versions: each selectable with its own overrides")
    func singleManifestManyVersions() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "multi", """
            Name: crtest
            Cartridge-Short-Name: CRTEST
            Cartridge-Vendor: redhat
            Cartridge-Version: '0.0.1'
            Version: '0.3'
            Versions: ['0.1', '0.2', '0.3']
            Group-Overrides:
              - components: [crtest-0.3]
            Version-Overrides:
              '0.1':
                Group-Overrides:
                  - components: [crtest-0.1]
              '0.2':
                Group-Overrides:
                  - components: [crtest-0.2]
            """))
        for version in ["0.1", "0.2", "0.3"] {
            let manifest = try repository.snapshot.select(vendor: "redhat", name: "crtest", version: version, cartridgeVersion: "0.0.1")
            #expect(group(manifest) == ["crtest-\(version)"])
        }
    }

    @Test("reinstalling replaces the version: files removed from the source disappear")
    func reinstall() throws {
        defer { node.destroy() }
        let repository = node.repository()
        let src = try source(node, "m1", Crtest.m1, files: ["bin/control": "#!/bin/sh\n", "bin/setup": "#!/bin/sh\n"])
        try repository.install(from: src)
        #expect(TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.1/bin/setup"))
        TestFiles.remove(src + "/bin")
        let result = try repository.install(from: src)
        #expect(result.changed)
        #expect(!TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.1/bin"))
        #expect(TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.1/metadata/manifest.yml"))
    }

    @Test("installing identical content again copies nothing")
    func identicalInstallIsNoOp() throws {
        defer { node.destroy() }
        let repository = node.repository()
        let src = try source(node, "m1", Crtest.m1)
        #expect(try repository.install(from: src).changed)
        let before = inode(node.repositoryPath + "/redhat-crtest/0.0.1")
        let again = try repository.install(from: src)
        #expect(!again.changed)
        #expect(again.manifests.map(\.tuple) == ["(redhat, crtest, 0.1, 0.0.1)"])
        #expect(inode(node.repositoryPath + "/redhat-crtest/0.0.1") == before)
        // A fresh process (a daemon restart) sees the same.
        #expect(try !node.repository().install(from: src).changed)
        // Touching a file's content is a change.
        try TestFiles.write(src + "/bin/control", "#!/bin/sh\necho changed\n", mode: 0o755)
        #expect(try node.repository().install(from: src).changed)
        #expect(TestFiles.read(node.repositoryPath + "/redhat-crtest/0.0.1/bin/control")?.contains("changed") == true)
    }

    @Test("copies keep modes, timestamps and symbolic links, without following links")
    func copyFidelity() throws {
        defer { node.destroy() }
        let repository = node.repository()
        let src = try source(node, "m1", Crtest.m1, files: ["bin/control": "#!/bin/sh\n", ".hidden": "dot file\n"])
        chmod(src + "/bin/control", 0o750)
        symlink("../bin/control", src + "/metadata/link")
        symlink("/etc/passwd", src + "/outside")
        try repository.install(from: src)
        let target = node.repositoryPath + "/redhat-crtest/0.0.1"
        var st = stat()
        lstat(target + "/bin/control", &st)
        #expect(st.st_mode & 0o7777 == 0o750)
        var original = stat()
        lstat(src + "/bin/control", &original)
        #expect(st.st_mtim.tv_sec == original.st_mtim.tv_sec && st.st_mtim.tv_nsec == original.st_mtim.tv_nsec)
        lstat(target + "/outside", &st)
        #expect(st.st_mode & S_IFMT == S_IFLNK)
        #expect(TestFiles.read(target + "/.hidden") == "dot file\n")
    }

    @Test("a source inside the repository, or containing it, is refused and nothing changes")
    func selfInstall() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        let installed = node.repositoryPath + "/redhat-crtest/0.0.1"
        for path in [installed, installed + "/", node.repositoryPath, node.repositoryPath + "/../repository/redhat-crtest/0.0.1", node.root] {
            #expect {
                try repository.install(from: path)
            } throws: { error in
                guard case let .invalidSource(_, reason) = error as? CartridgesError else { return false }
                return reason.hasPrefix("Source cannot be inside, or contain, the cartridge repository")
            }
        }
        #expect(TestFiles.exists(installed + "/metadata/manifest.yml"))
        #expect(TestFiles.exists(installed + "/bin/control"))
        #expect(repository.snapshot.count == 1)
    }

    @Test("bad sources are refused with the reason and path", arguments: [
        ("missing", "Illegal path to cartridge source"),
        ("no-manifest", "Cartridge manifest.yml missing"),
    ])
    func badSources(dir: String, reason: String) throws {
        defer { node.destroy() }
        try TestFiles.makeDirectories(node.root + "/src/no-manifest/bin")
        #expect {
            try node.repository().install(from: node.root + "/src/" + dir)
        } throws: { error in
            guard case let .invalidSource(_, errorReason) = error as? CartridgesError else { return false }
            return errorReason == reason
        }
    }

    @Test("a manifest with a hostile name never creates a path outside the repository", arguments: ["../evil", "evil/x", "a\u{7}b"])
    func hostileNames(name: String) throws {
        defer { node.destroy() }
        let manifest = Crtest.m1 + "Name: \"\(name)\"\n"
        #expect(throws: CartridgesError.self) { try node.repository().install(from: try source(node, "bad", manifest)) }
        #expect(TestFiles.list(node.repositoryPath).isEmpty)
        #expect(!TestFiles.exists(node.root + "/evil"))
    }

    @Test("an empty manifest in the repository is skipped and reported; the load carries on")
    func truncatedManifest() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m2", Crtest.m2))
        try repository.install(from: try source(node, "m4", Crtest.m4))
        try TestFiles.write(node.repositoryPath + "/redhat-crtest/0.0.2/metadata/manifest.yml", "")
        let report = try repository.load()
        #expect(report.problems == [node.repositoryPath + "/redhat-crtest/0.0.2/metadata/manifest.yml: manifest is empty (corrupted?)"])
        for version in ["0.1", "0.2"] {
            #expect(throws: CartridgesError.self) { try repository.snapshot.select(vendor: "redhat", name: "crtest", version: version) }
        }
        #expect(repository.snapshot.exists(vendor: "example", name: "crtest", version: "0.1", cartridgeVersion: "0.0.1"))
    }

    @Test("stray files, bad version directories and misplaced manifests in the repository are reported, not fatal")
    func repositoryProblems() throws {
        defer { node.destroy() }
        let repository = node.repository()
        try repository.install(from: try source(node, "m1", Crtest.m1))
        try TestFiles.write(node.repositoryPath + "/notes.txt", "stray\n")
        try TestFiles.write(node.repositoryPath + "/redhat-crtest/backup/readme", "stray\n")
        try TestFiles.write(node.repositoryPath + "/redhat-crtest/0.0.7/metadata/manifest.yml", Crtest.m2)
        let report = try repository.load()
        #expect(report.problems.count == 3)
        #expect(report.problems.contains(node.repositoryPath + "/notes.txt: not a cartridge directory"))
        #expect(report.problems.contains(node.repositoryPath + "/redhat-crtest/backup: not a cartridge version directory"))
        #expect(report.problems.contains { $0.contains("0.0.7/metadata/manifest.yml: manifest describes (redhat, crtest, 0.0.2)") })
        #expect(repository.snapshot.listing == "(redhat, crtest, 0.1, 0.0.1)\n")
    }

    @Test("rescan: good cartridges load, a broken one is reported with file and reason, stray files are skipped")
    func rescanTolerance() throws {
        defer { node.destroy() }
        try TestFiles.write(node.basePath + "/good1/metadata/manifest.yml", Crtest.m1)
        try TestFiles.write(node.basePath + "/good2/metadata/manifest.yml", Crtest.m4)
        try TestFiles.write(node.basePath + "/broken/metadata/manifest.yml", Crtest.m1 + "Version: 1.0rc\n")
        try TestFiles.write(node.basePath + "/badyaml/metadata/manifest.yml", "Name: [\n")
        try TestFiles.makeDirectories(node.basePath + "/empty")
        try TestFiles.write(node.basePath + "/README", "not a cartridge\n")
        try TestFiles.write(node.basePath + "/.hidden/metadata/manifest.yml", Crtest.m2)
        let repository = node.repository()
        let report = repository.rescan()
        #expect(report.installed == 2 && report.failed == 4 && report.basePathProblem == nil)
        let failures = Dictionary(report.items.compactMap { item -> (String, String)? in
            if case .failed(let reason) = item.outcome { return (baseName(item.source), reason) }
            return nil
        }, uniquingKeysWith: { $1 })
        #expect(failures["broken"] == node.basePath + "/broken/metadata/manifest.yml: Version '1.0rc' is not a valid version (expected digits separated by dots, like 1.10)")
        #expect(failures["badyaml"]?.hasPrefix(node.basePath + "/badyaml/metadata/manifest.yml: invalid YAML") == true)
        #expect(failures["empty"] == "Cartridge manifest.yml missing: '\(node.basePath)/empty/metadata/manifest.yml'")
        #expect(failures["README"] == "Not a cartridge directory: '\(node.basePath)/README'")
        #expect(repository.snapshot.listing == "(example, crtest, 0.1, 0.0.1)\n(redhat, crtest, 0.1, 0.0.1)\n")
        // A restart: nothing to copy.
        let again = node.repository().rescan()
        #expect(again.installed == 0 && again.unchanged == 2 && again.failed == 4)
    }

    @Test("rescan: two sources of the same cartridge version do not overwrite each other")
    func rescanDuplicates() throws {
        defer { node.destroy() }
        try TestFiles.write(node.basePath + "/a/metadata/manifest.yml", Crtest.m1)
        try TestFiles.write(node.basePath + "/b/metadata/manifest.yml", Crtest.m1)
        let report = node.repository().rescan()
        #expect(report.installed == 1 && report.failed == 1)
        #expect(report.items.last.map { if case .failed(let reason) = $0.outcome { reason.contains("\(node.basePath)/a") } else { false } } == true)
    }

    @Test("rescan sees what another process changed, and keeps versions removed from the base path")
    func rescanSeesOthers() throws {
        defer { node.destroy() }
        try TestFiles.write(node.basePath + "/crtest/metadata/manifest.yml", Crtest.m1)
        let daemon = node.repository()
        _ = daemon.rescan()
        let admin = node.repository()
        try admin.install(from: try source(node, "m4", Crtest.m4))
        #expect(!daemon.snapshot.exists(vendor: "example", name: "crtest", version: "0.1", cartridgeVersion: "0.0.1"))
        TestFiles.remove(node.basePath + "/crtest")
        let report = daemon.rescan()
        #expect(report.items.isEmpty)
        #expect(daemon.snapshot.listing == "(example, crtest, 0.1, 0.0.1)\n(redhat, crtest, 0.1, 0.0.1)\n")
        #expect(daemon.shippedCartridges().isEmpty)
    }

    @Test("a missing base path is reported, not fatal")
    func missingBasePath() throws {
        defer { node.destroy() }
        TestFiles.remove(node.basePath)
        let report = node.repository().rescan()
        #expect(report.basePathProblem == "CARTRIDGE_BASE_PATH \(node.basePath) is not a directory")
    }

    @Test("a copy interrupted halfway leaves no visible partial version, and the next install cleans up")
    func interruptedInstall() async throws {
        defer { node.destroy() }
        let files = Dictionary(uniqueKeysWithValues: (1...20).map { ("usr/file\($0)", String(repeating: "x", count: 1000)) })
        let src = try source(node, "m1", Crtest.m1, files: files)
        await installDies(node, from: src, afterCopying: 5)
        let repository = node.repository()
        #expect(try repository.load().problems.isEmpty)
        #expect(repository.snapshot.count == 0)
        #expect(!TestFiles.exists(node.repositoryPath + "/redhat-crtest/0.0.1"))
        #expect(TestFiles.list(node.repositoryPath + "/redhat-crtest", includeHidden: true).contains { $0.contains(".staging-") })
        #expect(try repository.install(from: src).changed)
        #expect(TestFiles.list(node.repositoryPath + "/redhat-crtest", includeHidden: true) == [".0.0.1.source", "0.0.1"])
    }

    @Test("a replacement interrupted halfway leaves the previous version intact and complete")
    func interruptedReplacement() async throws {
        defer { node.destroy() }
        let files = Dictionary(uniqueKeysWithValues: (1...20).map { ("usr/file\($0)", "old \($0)\n") })
        let src = try source(node, "m1", Crtest.m1, files: files)
        try node.repository().install(from: src)
        for i in 1...20 { try TestFiles.write(src + "/usr/file\(i)", "new \(i)\n") }
        await installDies(node, from: src, afterCopying: 10)
        for i in 1...20 {
            #expect(TestFiles.read(node.repositoryPath + "/redhat-crtest/0.0.1/usr/file\(i)") == "old \(i)\n")
        }
        let repository = node.repository()
        #expect(try repository.install(from: src).changed, "the interrupted change is redone")
        #expect(TestFiles.read(node.repositoryPath + "/redhat-crtest/0.0.1/usr/file20") == "new 20\n")
    }
}

/// Installs `src` in a child process that dies (exit 99) after copying `files` files: a crash
/// in the middle of a copy, observed from this process.
func installDies(_ node: ScratchNode, from src: String, afterCopying files: Int) async {
    let (repositoryPath, basePath) = (node.repositoryPath, node.basePath)
    await #expect(processExitsWith: .exitCode(99)) {
        [repositoryPath = repositoryPath as String, basePath = basePath as String, src = src as String, files = files as Int] in
        let configuration = CartridgeRepository.Configuration(path: repositoryPath, cartridgeBasePath: basePath)
        let repository = CartridgeRepository(configuration: configuration) { copied in
            if copied == files { _exit(99) }
        }
        try repository.install(from: src)
    }
}

func inode(_ path: String) -> UInt {
    var st = stat()
    lstat(path, &st)
    return UInt(st.st_ino)
}

func baseName(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }

/// What the gear manager answers before an erase, as a fixed table: "vendor:name:cartridgeVersion" -> gears.
struct FixedUsage: CartridgeUsage {
    var uses: [String: [String]]
    func gears(using vendor: String, name: String, cartridgeVersion: String) -> [String] { uses["\(vendor):\(name):\(cartridgeVersion)"] ?? [] }
}

/// A node without gears.
struct NoUsage: CartridgeUsage {
    func gears(using vendor: String, name: String, cartridgeVersion: String) -> [String] { [] }
}
