import Frontend
import NodeTestSupport
import Testing

/// One contract for every `FrontendPlugin`: run against the in-memory plugin and the Apache
/// plugin's maps, so the fake cannot drift from the real thing.
enum Plugins: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case memory, apache
    var testDescription: String { rawValue }

    func make(_ directory: String) -> any FrontendPlugin {
        switch self {
        case .memory: return InMemoryFrontend()
        case .apache: return ApacheFrontend(directory: directory + "/httpd")
        }
    }
}

func makeManager(_ plugin: any FrontendPlugin, _ directory: String) -> FrontendManager {
    FrontendManager(stateDirectory: directory + "/state", plugins: [plugin], cloudDomain: "example.com")
}

@Suite("frontend plugin contract")
struct FrontendContractTests {
    @Test("create, connect, alias, idle, sts, disconnect and destroy are served as stored", arguments: Plugins.allCases)
    func lifecycle(kind: Plugins) throws {
        let dir = TestFiles.temporaryDirectory("frontend-contract")
        defer { TestFiles.remove(dir) }
        let plugin = kind.make(dir)
        let manager = makeManager(plugin, dir)
        try manager.create(uuid: "g1", appUUID: "a1", gearName: "shop", namespace: "acme")
        try manager.create(uuid: "g2", appUUID: "a2", gearName: "blog", namespace: "acme")
        try manager.connect(uuid: "g1", [Connection(path: "", target: "127.1.244.1:8080"),
                                         Connection(path: "/api", target: "127.1.244.2:8080/v1")])
        try manager.connect(uuid: "g2", [Connection(path: "", target: "127.1.244.129:8080")])
        try manager.connect(uuid: "g1", [Connection(path: "/api", target: "127.1.244.2:8081/v1")])
        try manager.addAlias(uuid: "g1", "WWW.Shop.COM")
        try manager.addAlias(uuid: "g1", "www.shop.com")
        try manager.idle(uuid: "g2")
        try manager.sts(uuid: "g1", maxAge: 3600)

        let served = try #require(try plugin.served("g1"))
        #expect(served.fqdn == "shop-acme.example.com")
        #expect(Set(served.connections) == Set([Connection(path: "", target: "127.1.244.1:8080"),
                                                Connection(path: "/api", target: "127.1.244.2:8081/v1")]))
        #expect(served.aliases == ["www.shop.com"], "aliases are cleaned and not duplicated")
        #expect(!served.idle && served.sts == 3600)
        #expect(try plugin.served("g2")?.idle == true)

        try manager.unidle(uuid: "g2")
        try manager.removeAlias(uuid: "g1", "www.shop.com")
        try manager.disconnect(uuid: "g1", paths: ["/api"])
        let after = try #require(try plugin.served("g1"))
        #expect(after.connections == [Connection(path: "", target: "127.1.244.1:8080")] && after.aliases.isEmpty)
        #expect(try plugin.served("g2")?.idle == false)

        try manager.destroy(uuid: "g1")
        #expect(try plugin.served("g1") == nil)
        #expect(try plugin.served("g2")?.connections.count == 1, "other gears are untouched")
        #expect(throws: FrontendError.self) { try manager.connect(uuid: "g1", [Connection(path: "", target: "127.0.0.1:1")]) }
    }

    @Test("an alias that belongs to another gear is refused", arguments: Plugins.allCases)
    func aliasOwnership(kind: Plugins) throws {
        let dir = TestFiles.temporaryDirectory("frontend-alias")
        defer { TestFiles.remove(dir) }
        let manager = makeManager(kind.make(dir), dir)
        try manager.create(uuid: "g1", appUUID: "a1", gearName: "one", namespace: "ns")
        try manager.create(uuid: "g2", appUUID: "a2", gearName: "two", namespace: "ns")
        try manager.addAlias(uuid: "g1", "custom.example.org")
        #expect(throws: FrontendError.aliasTaken(alias: "custom.example.org", owner: "g1")) {
            try manager.addAlias(uuid: "g2", "custom.example.org")
        }
        #expect(throws: FrontendError.self) { try manager.addAlias(uuid: "g2", "one-ns.example.com") }
    }

    @Test("bad names and connections are refused with the field, and change nothing", arguments: [
        Connection(path: "/a/../b", target: "127.1.244.1:8080"),
        Connection(path: "a", target: "127.1.244.1:8080"),
        Connection(path: "/a/", target: "127.1.244.1:8080"),
        Connection(path: "/a\nb", target: "127.1.244.1:8080"),
        Connection(path: "/x", target: "10.0.0.1:8080"),
        Connection(path: "/x", target: "127.1.244.1:99999"),
        Connection(path: "/x", target: "127.1.244.1:8080/a b"),
        Connection(path: "/x", target: "127.1.244.1:8080|evil"),
        Connection(path: "/1/2/3/4/5/6/7/8/9", target: "127.1.244.1:8080"),
    ])
    func badConnections(connection: Connection) throws {
        let dir = TestFiles.temporaryDirectory("frontend-bad")
        defer { TestFiles.remove(dir) }
        let plugin = ApacheFrontend(directory: dir + "/httpd")
        let manager = makeManager(plugin, dir)
        try manager.create(uuid: "g1", appUUID: "a1", gearName: "app", namespace: "ns")
        #expect(throws: FrontendError.self) {
            try manager.connect(uuid: "g1", [connection], allowedIPs: ["127.1.244.1", "127.1.244.2"])
        }
        #expect(try manager.connections(uuid: "g1").isEmpty)
        #expect(TestFiles.read(dir + "/httpd/routes.txt") == "")
    }

    @Test("host names are cleaned as the original did, and the original's gaps are closed", arguments: [
        ("App-NS.Example.COM.", "app-ns.example.com"), ("a.b", "a.b"),
    ])
    func cleanNames(raw: String, clean: String) throws {
        #expect(try HostName.clean(raw) == clean)
    }

    @Test("bad host names are refused", arguments: ["../../../../etc/passwd", "-a.com", "a.com-", "a_b.com", "", "10.0.0.1", "a..b",
                                                     String(repeating: "a", count: 64) + ".com"])
    func badNames(raw: String) {
        #expect(throws: FrontendError.self) { try HostName.clean(raw) }
    }

    @Test("a failing plugin rolls the chain back: earlier plugins and the document keep the previous state")
    func chainRollback() throws {
        struct Failing: FrontendPlugin {
            let name = "failing"
            func apply(_ frontend: GearFrontend?, previous: GearFrontend?, uuid: String) throws(FrontendError) {
                if frontend?.aliases.contains("boom.example.org") == true { throw .plugin(name: name, reason: "injected") }
            }
            func served(_ uuid: String) throws(FrontendError) -> GearFrontend? { nil }
        }
        let dir = TestFiles.temporaryDirectory("frontend-chain")
        defer { TestFiles.remove(dir) }
        let apache = ApacheFrontend(directory: dir + "/httpd")
        let manager = FrontendManager(stateDirectory: dir + "/state", plugins: [apache, Failing()], cloudDomain: "example.com")
        try manager.create(uuid: "g1", appUUID: "a1", gearName: "app", namespace: "ns")
        try manager.connect(uuid: "g1", [Connection(path: "", target: "127.1.244.1:8080")])
        #expect(throws: FrontendError.self) { try manager.addAlias(uuid: "g1", "boom.example.org") }
        #expect(try apache.served("g1")?.aliases == [])
        #expect(try manager.frontend("g1")?.aliases == [])
        #expect(TestFiles.read(dir + "/httpd/aliases.txt") == "")
    }

    @Test("backup and restore: the routes come back on another node, checked again", arguments: Plugins.allCases)
    func backupRestore(kind: Plugins) throws {
        let dir = TestFiles.temporaryDirectory("frontend-backup")
        defer { TestFiles.remove(dir) }
        let source = makeManager(InMemoryFrontend(), dir + "/a")
        try source.create(uuid: "g1", appUUID: "a1", gearName: "app", namespace: "ns")
        try source.connect(uuid: "g1", [Connection(path: "", target: "127.1.244.1:8080"), Connection(path: "/x", target: "127.1.244.1:8081")])
        try source.addAlias(uuid: "g1", "www.app.org")
        try source.sts(uuid: "g1", maxAge: 60)
        let document = try source.backup(uuid: "g1")
        let plugin = kind.make(dir + "/b")
        let target = makeManager(plugin, dir + "/b")
        try target.restore(uuid: "g1", appUUID: "a1", gearName: "app", namespace: "ns", document: document)
        let served = try #require(try plugin.served("g1"))
        #expect(Set(served.connections) == Set(try source.connections(uuid: "g1")))
        #expect(served.aliases == ["www.app.org"] && served.sts == 60)
        let hostile = document.replacingOccurrences("127.1.244.1:8081", with: "127.1.244.1:8081|x")
        #expect(throws: FrontendError.self) {
            try target.restore(uuid: "g2", appUUID: "a2", gearName: "two", namespace: "ns", document: hostile)
        }
        #expect(try target.frontend("g2") == nil)
    }

    @Test("a corrupt document is an error, never read as empty")
    func corrupt() throws {
        let dir = TestFiles.temporaryDirectory("frontend-corrupt")
        defer { TestFiles.remove(dir) }
        let manager = makeManager(InMemoryFrontend(), dir)
        try manager.create(uuid: "g1", appUUID: "a1", gearName: "app", namespace: "ns")
        try TestFiles.write(dir + "/state/g1.json", "{ not json")
        #expect(throws: FrontendError.self) { try manager.connect(uuid: "g1", [Connection(path: "", target: "127.0.0.2:80")]) }
        #expect(TestFiles.read(dir + "/state/g1.json") == "{ not json")
    }

    @Test("a crash between writing a map and renaming it leaves the previous map intact and complete")
    func crashBeforeRename() async throws {
        let dir = TestFiles.temporaryDirectory("frontend-crash")
        defer { TestFiles.remove(dir) }
        let manager = makeManager(ApacheFrontend(directory: dir + "/httpd"), dir)
        for i in 0..<50 {
            try manager.create(uuid: "g\(i)", appUUID: "a\(i)", gearName: "app\(i)", namespace: "ns")
            try manager.connect(uuid: "g\(i)", [Connection(path: "", target: "127.0.0.\(i + 2):8080")])
        }
        let before = try #require(TestFiles.read(dir + "/httpd/routes.txt"))
        await #expect(processExitsWith: .exitCode(99)) { [dir = dir as String] in
            let plugin = ApacheFrontend(directory: dir + "/httpd") { _ in _exit(99) }
            let manager = FrontendManager(stateDirectory: dir + "/state", plugins: [plugin], cloudDomain: "example.com")
            try manager.connect(uuid: "g7", [Connection(path: "/new", target: "127.0.0.9:8080")])
        }
        #expect(TestFiles.read(dir + "/httpd/routes.txt") == before)
        #expect(before.split(separator: "\n").count == 50)
    }
}

extension String {
    func replacingOccurrences(_ target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

#if canImport(Glibc)
import Glibc
#endif
