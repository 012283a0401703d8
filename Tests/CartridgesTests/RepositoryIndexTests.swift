import NodeConfig
import NodeTestSupport
import Testing

@testable import Cartridges

#if canImport(Glibc)
import Glibc
#endif

/// The persisted index (`<repository>/.index`) is a cache: whatever happens to it or behind its
/// back, a load gives what reading every manifest gives.
@Suite("repository index")
struct RepositoryIndexTests {
    let node = ScratchNode("index-test")

    /// A repository of `count` cartridges with overrides, installed by a rescan of the base path.
    private func populated(_ count: Int = 6) throws -> CartridgeRepository {
        for i in 0..<count {
            var builder = CartridgeBuilder(name: "idx\(i)", versions: ["1.0", "1.1", "2.0"], cartridgeVersion: "0.0.\(i % 3 + 1)")
            builder.endpoints = 2
            try builder.write(into: node.basePath)
        }
        let repository = node.repository()
        let report = repository.rescan()
        #expect(report.failed == 0 && report.installed == count)
        return repository
    }

    /// What a load gives with no index at all: every manifest parsed (in a second instance, so
    /// the index it writes is removed again).
    private func truth() throws -> [Manifest] {
        let saved = try? FileSystem.readBytes(indexPath, limit: 1 << 30)
        unlink(indexPath)
        let fresh = node.repository()
        try fresh.load()
        unlink(indexPath)
        if let saved { try TestFiles.write(indexPath, bytes: saved) }
        return fresh.snapshot.entries
    }

    var indexPath: String { node.repositoryPath + "/.index" }

    /// Entries are trusted only once their files are two seconds old.
    private func settle() { usleep(2_100_000) }

    @Test("once the files have settled, a load reads no manifest and gives what reading every manifest gives")
    func loadThroughIndex() throws {
        defer { node.destroy() }
        _ = try populated()
        #expect(TestFiles.exists(indexPath), "the rescan wrote the index")
        settle()
        let first = node.repository()
        let settling = try first.load()
        #expect(settling.manifestsRead == 6, "entries recorded within two seconds of their change are read again")
        let second = node.repository()
        let report = try second.load()
        #expect(report.manifestsRead == 0)
        #expect(report.entryCount == 18 && report.problems.isEmpty)
        #expect(second.snapshot.entries == (try truth()))
        // A restart rescan with nothing changed reads nothing either, and copies nothing.
        let rescan = node.repository().rescan()
        #expect(rescan.unchanged == 6 && rescan.installed == 0 && rescan.failed == 0)
    }

    @Test("a manifest changed behind the index's back, even to the same size, is read again")
    func changedBehindItsBack() throws {
        defer { node.destroy() }
        _ = try populated(3)
        settle()
        _ = try node.repository().load()
        let manifest = node.repositoryPath + "/redhat-idx1/0.0.2/metadata/manifest.yml"
        let text = try #require(TestFiles.read(manifest))
        #expect(text.contains("Display-Name: idx1"))
        // Same length, same second: only the ctime (and maybe not even the mtime) tells.
        try TestFiles.write(manifest, text.replacingOccurrences("Display-Name: idx1", with: "Display-Name: IDX1"))
        let repository = node.repository()
        let report = try repository.load()
        #expect(report.manifestsRead == 1)
        #expect(try repository.snapshot.select(vendor: "redhat", name: "idx1", version: "1.0").displayName == "IDX1 cartridge")
        #expect(repository.snapshot.entries == (try truth()))
    }

    @Test("a manifest changed right after the index recorded it is never hidden")
    func changedWithinTheTick() throws {
        defer { node.destroy() }
        _ = try populated(2)
        // No settling: the rescan recorded the entries a moment ago.
        let manifest = node.repositoryPath + "/redhat-idx0/0.0.1/metadata/manifest.yml"
        let text = try #require(TestFiles.read(manifest))
        try TestFiles.write(manifest, text.replacingOccurrences("Display-Name: idx0", with: "Display-Name: IDX0"))
        let repository = node.repository()
        _ = try repository.load()
        #expect(try repository.snapshot.select(vendor: "redhat", name: "idx0", version: "1.0").displayName == "IDX0 cartridge")
    }

    @Test("a corrupt, truncated, empty or foreign index is ignored whole and written anew", arguments: [
        "flip", "truncate", "empty", "version", "garbage", "directory",
    ])
    func corruptIndex(damage: String) throws {
        defer { node.destroy() }
        _ = try populated(4)
        settle()
        _ = try node.repository().load()
        var bytes = try FileSystem.readBytes(indexPath, limit: 1 << 30)
        switch damage {
        case "flip": bytes[bytes.count / 2] ^= 0x20
        case "truncate": bytes.removeLast(bytes.count / 3)
        case "empty": bytes = []
        case "version": bytes[8] = 99
        case "garbage": bytes = Array(repeating: 0x41, count: 4096)
        default: break
        }
        if damage == "directory" {
            unlink(indexPath)
            mkdir(indexPath, 0o755)
        } else {
            try TestFiles.write(indexPath, bytes: bytes)
        }
        let repository = node.repository()
        let report = try repository.load()
        #expect(report.manifestsRead == 4, "nothing of a damaged index is trusted")
        #expect(report.problems.isEmpty)
        if damage == "directory" {
            rmdir(indexPath)
        } else {
            let rewritten = try #require(RepositoryIndex.read(indexPath), "the load wrote a good index")
            #expect(rewritten.entries.count == 4)
        }
        #expect(repository.snapshot.entries == (try truth()))
    }

    @Test("every entry of a real repository survives encoding; any cut of the file is refused")
    func roundTrip() throws {
        defer { node.destroy() }
        let repository = CartridgeRepository(configuration: .init(path: node.repositoryPath, cartridgeBasePath: shippedCartridges))
        #expect(repository.rescan().failed == 0)
        let index = try #require(RepositoryIndex.read(indexPath))
        #expect(index.entries.count == 4)
        let bytes = index.encoded()
        #expect(RepositoryIndex.decode(bytes) == index)
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 200)) {
            #expect(RepositoryIndex.decode(Array(bytes[0..<cut])) == nil, "cut at \(cut)")
        }
    }

    @Test("an install or erase by another process is in the next current() of a running repository")
    func currentFollowsOtherProcesses() throws {
        defer { node.destroy() }
        let daemon = try populated(2)
        #expect(daemon.current().count == 6)
        // Another process (oo-admin-cartridge) installs and erases with its own instance.
        let admin = node.repository()
        try admin.install(from: try source(node, "m1", Crtest.m1))
        #expect(daemon.current().exists(vendor: "redhat", name: "crtest", version: "0.1", cartridgeVersion: "0.0.1"))
        try admin.erase(vendor: "redhat", name: "idx0", version: "1.0", cartridgeVersion: "0.0.1", force: true, usage: NoUsage())
        #expect(daemon.current().count == 4)
        let fresh = node.repository()
        try fresh.load()
        #expect(daemon.current().listing == fresh.snapshot.listing)
    }

    @Test("two writers at once: the index afterwards holds exactly what the disk holds")
    func concurrentWriters() async throws {
        defer { node.destroy() }
        let sources = try (0..<8).map { i -> String in
            var builder = CartridgeBuilder(name: "conc\(i)", versions: ["1.0"], cartridgeVersion: "0.0.1")
            builder.endpoints = 1
            return try builder.write(into: node.root + "/src")
        }
        let a = node.repository()
        let b = node.repository()
        await withTaskGroup(of: Void.self) { group in
            for (i, source) in sources.enumerated() {
                let writer = i % 2 == 0 ? a : b
                group.addTask { _ = try? writer.install(from: source) }
            }
        }
        settle()
        let check = node.repository()
        _ = try check.load()
        #expect(check.snapshot.count == 8)
        #expect(check.snapshot.entries == (try truth()))
        let index = try #require(RepositoryIndex.read(indexPath))
        #expect(Set(index.entries.keys) == Set((0..<8).map { "redhat-conc\($0)/0.0.1" }))
    }
}

/// The repository's shipped cartridges.
private let shippedCartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"
