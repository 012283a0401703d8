import NodeConfig
import NodeTestSupport
import Testing

@testable import Containment

#if canImport(Glibc)
import Glibc
#endif

/// `GearHome`, the one way root works in a gear's home: every path is resolved beneath the
/// home's descriptor, never through a link, reads are bounded and never block.
@Suite("gear home")
struct GearHomeTests {
    let base = TestFiles.temporaryDirectory("gear-home")
    let outside: String

    init() throws {
        outside = base + "/outside"
        try TestFiles.write(outside + "/secret", "outside\n")
    }

    func home(_ name: String = "g1") throws -> GearHome {
        try GearHome.create(base: base, name: name, ownership: .init(uid: getuid(), gid: getgid(), label: nil, enforced: false))
    }

    @Test("a link anywhere on a path is refused, for reads, writes, listings, owners and removal")
    func linksAreNeverFollowed() throws {
        defer { TestFiles.remove(base) }
        let home = try home()
        try home.makeDirectory("cart", mode: 0o755, owner: .gear)
        #expect(symlink(outside, base + "/g1/cart/env") == 0)
        #expect(symlink(outside + "/secret", base + "/g1/cart/file") == 0)
        #expect(throws: ContainmentError.self) { try home.read("cart/env/secret") }
        #expect(throws: ContainmentError.self) { try home.read("cart/file") }
        #expect(home.readText("cart/file") == nil && home.entries("cart/env") == nil)
        #expect(home.environment("cart/env").isEmpty)
        #expect(throws: ContainmentError.self) { try home.write("cart/env/X", "forged", mode: 0o644, owner: .gear) }
        #expect(throws: ContainmentError.self) { try home.setOwner("cart/env/secret", .gear) }
        #expect(throws: ContainmentError.self) { try home.setMode("cart/env/secret", 0o777) }
        #expect(throws: ContainmentError.self) { try home.makeDirectory("cart/env/sub", mode: 0o755, owner: .gear) }
        // A link planted where a directory is to be made (the last component) is neither
        // followed nor given the directory's owner or mode.
        var before = stat()
        #expect(stat(outside, &before) == 0)
        #expect(throws: ContainmentError.self) { try home.makeDirectory("cart/env", mode: 0o700, owner: .gear) }
        var after = stat()
        #expect(stat(outside, &after) == 0 && after.st_mode == before.st_mode && after.st_uid == before.st_uid)
        try home.remove("cart")
        #expect(TestFiles.read(outside + "/secret") == "outside\n", "the link was removed, not what it points at")
        #expect(!home.exists("cart"))
    }

    @Test("'..', absolute paths and empty components are refused before anything is opened", arguments: [
        "../outside/secret", "cart/../../outside", "/etc/passwd", "a//b", "./x", "x/.",
    ])
    func pathsStayInside(_ path: String) throws {
        defer { TestFiles.remove(base) }
        let home = try home()
        #expect(throws: ContainmentError.self) { try home.read(path) }
        #expect(throws: ContainmentError.self) { try home.write(path, "x", mode: 0o644, owner: .gear) }
        #expect(throws: ContainmentError.self) { try home.remove(path) }
        #expect(TestFiles.read(outside + "/secret") == "outside\n")
    }

    @Test("reads take regular files only, bounded, and a FIFO never blocks them")
    func boundedReads() throws {
        defer { TestFiles.remove(base) }
        let home = try home()
        #expect(mkfifo(base + "/g1/fifo", 0o644) == 0)
        #expect(throws: ContainmentError.self) { try home.read("fifo") }
        try TestFiles.write(base + "/g1/big", String(repeating: "x", count: 4096))
        #expect(throws: ContainmentError.self) { try home.read("big", limit: 1024) }
        #expect(try home.read("big").count == 4096)
        try TestFiles.makeDirectories(base + "/g1/env")
        try TestFiles.write(base + "/g1/env/GOOD", "value\n")
        try TestFiles.write(base + "/g1/env/bad-name", "x")
        try TestFiles.write(base + "/g1/env/HUGE", String(repeating: "y", count: GearHome.environmentValueLimit + 1))
        #expect(mkfifo(base + "/g1/env/PIPE", 0o644) == 0)
        #expect(home.environment("env") == ["GOOD": "value"])
    }

    @Test("writes are atomic replacements that never follow a planted link, even at the last component")
    func atomicWrites() throws {
        defer { TestFiles.remove(base) }
        let home = try home()
        #expect(symlink(outside + "/secret", base + "/g1/state") == 0)
        try home.write("state", "new\n", mode: 0o640, owner: .gear)
        #expect(TestFiles.read(outside + "/secret") == "outside\n")
        #expect(TestFiles.read(base + "/g1/state") == "new\n")
        #expect(TestFiles.list(base + "/g1", includeHidden: true) == ["state"], "no temporary file is left")
    }

    @Test("a tree is removed by descriptor even while a directory in it is swapped for a link")
    func removalRace() async throws {
        defer { TestFiles.remove(base) }
        let home = try home()
        for round in 0..<20 {
            for index in 0..<200 { try TestFiles.write(base + "/g1/tree/d\(index % 4)/f\(index)", "x") }
            let swapping = Task.detached {
                let d = base + "/g1/tree/d1"
                for _ in 0..<2000 {
                    rename(d, d + ".real")
                    symlink(outside, d)
                    unlink(d)
                    rename(d + ".real", d)
                }
            }
            try? home.remove("tree")
            await swapping.value
            #expect(TestFiles.read(outside + "/secret") == "outside\n", "round \(round)")
            TestFiles.remove(base + "/g1/tree")
            TestFiles.remove(base + "/g1/tree/d1.real")
        }
    }

    @Test("copy-in creates every entry afresh: a link already at the target is refused, the source copied whole")
    func copyIn() throws {
        defer { TestFiles.remove(base) }
        let home = try home()
        try TestFiles.write(base + "/source/bin/control", "#!/bin/sh\n", mode: 0o755)
        try TestFiles.write(base + "/source/env/A", "a")
        #expect(symlink("env/A", base + "/source/link") == 0)
        try home.copyIn(from: base + "/source", to: "cart", owner: .gear)
        #expect(TestFiles.read(base + "/g1/cart/env/A") == "a")
        #expect(mode(base + "/g1/cart/bin/control")?.mode == 0o755)
        #expect(home.status("cart/link").map { $0.st_mode & S_IFMT } == S_IFLNK)
        #expect(symlink(outside, base + "/g1/planted") == 0)
        #expect(throws: ContainmentError.self) { try home.copyIn(from: base + "/source", to: "planted", owner: .gear) }
        #expect(throws: ContainmentError.self) { try home.copyIn(from: base + "/source", to: "planted/cart", owner: .gear) }
        #expect(TestFiles.list(outside) == ["secret"])
    }
}

func mode(_ path: String) -> (owner: UInt32, group: UInt32, mode: UInt32)? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return (st.st_uid, st.st_gid, UInt32(st.st_mode & 0o7777))
}
