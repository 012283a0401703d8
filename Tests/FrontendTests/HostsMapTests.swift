import Frontend
import NodeTestSupport
import Testing

/// `hosts.txt` is what Apache reads first for every request: one record per name (a gear's host
/// name and each alias), derived from the other maps. A stale record misroutes a name, so each
/// change must rewrite exactly the records it affects, and a rebuild must restore them.
@Suite("hosts map")
struct HostsMapTests {
    static func hosts(_ dir: String) -> [String] {
        (TestFiles.read(dir + "/httpd/hosts.txt") ?? "").split(separator: "\n").map(String.init).sorted()
    }

    /// A scratch directory with the Apache plugin's maps and gear g1, shop-acme.example.com.
    static func shop(_ name: String) throws -> (String, FrontendManager) {
        let dir = TestFiles.temporaryDirectory(name)
        let manager = makeManager(ApacheFrontend(directory: dir + "/httpd"), dir)
        try manager.create(uuid: "g1", appUUID: "a1", gearName: "shop", namespace: "acme")
        return (dir, manager)
    }

    static func options(_ name: String) -> Connection.Options {
        var result = Connection.Options()
        result.set(name)
        return result
    }

    @Test("each name's record follows its gear: alias target, root backend, idle, STS max-age, deepest path, first segments")
    func records() throws {
        let (dir, manager) = try Self.shop("hosts-map")
        defer { TestFiles.remove(dir) }
        try manager.create(uuid: "g2", appUUID: "a2", gearName: "blog", namespace: "acme")
        #expect(Self.hosts(dir) == ["blog-acme.example.com blog-acme.example.com||0||0|g2|,",
                                    "shop-acme.example.com shop-acme.example.com||0||0|g1|,"], "no route: no root backend")
        try manager.connect(uuid: "g1", [Connection(path: "", target: "127.1.244.1:8080")])
        try manager.connect(uuid: "g2", [Connection(path: "", target: "127.1.244.129:8080")])
        try manager.addAlias(uuid: "g1", "www.shop.com")
        let blog = "blog-acme.example.com blog-acme.example.com|127.1.244.129:8080|0||0|g2|,"
        #expect(Self.hosts(dir) == [blog, "shop-acme.example.com shop-acme.example.com|127.1.244.1:8080|0||0|g1|,",
                                    "www.shop.com shop-acme.example.com|127.1.244.1:8080|0||0|g1|,"])

        // The deepest path sets the depth, each path route's first segment is listed once; an
        // endpoint that is no HTTP route counts for neither.
        var tls = Connection.Options()
        tls.protocols = ["tls"]
        try manager.connect(uuid: "g1", [Connection(path: "/api/v1/items", target: "127.1.244.2:8080"),
                                         Connection(path: "/api", target: "127.1.244.2:8080"),
                                         Connection(path: "/health", target: "", options: Self.options("health")),
                                         Connection(path: "/a/b/c/d/e", target: "127.1.244.3:8080", options: tls)])
        #expect(Self.hosts(dir).contains("www.shop.com shop-acme.example.com|127.1.244.1:8080|0||3|g1|,/api,/health,"))
        try manager.idle(uuid: "g1")
        try manager.sts(uuid: "g1", maxAge: 600)
        #expect(Self.hosts(dir) == [blog, "shop-acme.example.com shop-acme.example.com|127.1.244.1:8080|1|600|3|g1|,/api,/health,",
                                    "www.shop.com shop-acme.example.com|127.1.244.1:8080|1|600|3|g1|,/api,/health,"], "the alias carries its gear's state")

        // Undone: each record back, the other gear's never touched.
        try manager.disconnect(uuid: "g1", paths: ["/api/v1/items", "/api", "/health"])
        try manager.unidle(uuid: "g1")
        try manager.sts(uuid: "g1", maxAge: nil)
        try manager.removeAlias(uuid: "g1", "www.shop.com")
        #expect(Self.hosts(dir) == [blog, "shop-acme.example.com shop-acme.example.com|127.1.244.1:8080|0||0|g1|,"])
        try manager.connect(uuid: "g1", [Connection(path: "", target: "", options: Self.options("gone"))])
        #expect(Self.hosts(dir) == [blog, "shop-acme.example.com shop-acme.example.com||0||0|g1|,"], "a keyword destination is not a backend")
        try manager.destroy(uuid: "g1")
        #expect(Self.hosts(dir) == [blog])
    }

    @Test("a lost or tampered hosts map is reported as drift and rebuilt from the documents")
    func rebuilt() throws {
        let (dir, manager) = try Self.shop("hosts-map-rebuild")
        defer { TestFiles.remove(dir) }
        try manager.connect(uuid: "g1", [Connection(path: "", target: "127.1.244.1:8080"), Connection(path: "/api", target: "127.1.244.2:8080")])
        try manager.addAlias(uuid: "g1", "www.shop.com")
        let good = Self.hosts(dir)
        // A record planted for another name, and the gear's own made to skip its path route.
        try TestFiles.write(dir + "/httpd/hosts.txt", "shop-acme.example.com shop-acme.example.com|127.1.244.1:8080|0||0|g1|,\nevil.example.org shop-acme.example.com|127.1.244.1:8080|0||1|g1|,/api,\n")
        let check = try manager.reconcile(repair: false)
        #expect(check.drift == ["apache: hosts.txt: 2 line(s) missing, 2 line(s) that no document has"], "\(check.drift)")
        _ = try manager.reconcile(repair: true)
        #expect(Self.hosts(dir) == good)
        #expect(try manager.reconcile(repair: false).clean)
    }
}
