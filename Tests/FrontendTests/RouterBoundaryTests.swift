import Foundation
import Frontend
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The router as a hostile tenant and a careful operator meet it, through the real Apache of
/// `ApacheRoutingTests.Lab` (same serialized suite: the labs share backend addresses).
extension ApacheRoutingTests {
    /// The request-target (path and query) the backend saw, from the echo's first line.
    static func target(_ response: HTTPProbe.Response?) -> String? {
        response?.body.split(separator: "\n").first?.split(separator: " ").dropFirst().first.map(String.init)
    }

    @Test("the gear receives exactly the path and query of the request line it would receive directly", .timeLimit(.minutes(3)))
    func exactPath() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        try lab.echo(on: "127.0.0.5")
        try lab.manager.create(uuid: "g5", appUUID: "a5", gearName: "raw", namespace: "ns")
        try lab.manager.connect(uuid: "g5", [Connection(path: "", target: "127.0.0.5:8080"),
                                             Connection(path: "/sub", target: "127.0.0.5:8080/x")])
        // A gear with its root route alone is proxied from its hosts.txt record by the first rule.
        try lab.manager.create(uuid: "g6", appUUID: "a6", gearName: "flat", namespace: "ns")
        try lab.manager.connect(uuid: "g6", [Connection(path: "", target: "127.0.0.5:8080")])
        #expect(await eventually(within: 10) { HTTPProbe.get(port: 8080, host: "127.0.0.5", path: "/")?.status == 200 })
        let paths = ["/a%20b", "/a%3Fb", "/a%2541", "/%252e%252e/secret", "/a%23b", "/a%2Fb", "/caf%C3%A9", "/q?x=a%20b&y=%3F",
                     "/a%3Fb?c%3Fd=1", "/plain", "/"]
        for host in ["raw-ns.example.com", "flat-ns.example.com", "Flat-NS.Example.COM.:\(lab.port)"] {
            for path in paths {
                let direct = Self.target(HTTPProbe.get(port: 8080, host: "127.0.0.5", path: path))
                let routed = Self.target(lab.get(host, path))
                #expect(direct == path, "the echo itself")
                #expect(routed == direct, "\(host)\(path): through the frontend \(routed ?? "nothing"), directly \(direct ?? "nothing")")
            }
        }
        // A path route swaps its prefix for the target's path and keeps the rest byte for byte.
        #expect(Self.target(lab.get("raw-ns.example.com", "/sub/x%20y?q=%2F")) == "/x/x%20y?q=%2F")
        #expect(Self.target(lab.get("raw-ns.example.com", "/sub")) == "/x" && Self.target(lab.get("raw-ns.example.com", "/sub?q")) == "/x?q")
        // A first segment that only begins like a path route's is the root route's.
        #expect(Self.target(lab.get("raw-ns.example.com", "/subway/sub")) == "/subway/sub")
        #expect(Self.target(lab.get("raw-ns.example.com", "http://raw-ns.example.com/sub/y")) == "/x/y", "absolute form")
        // Routes three deep and one deep: the longest matching prefix wins, at every depth.
        try lab.manager.connect(uuid: "g5", [Connection(path: "/a/b/c", target: "127.0.0.5:8080/three"),
                                             Connection(path: "/a", target: "127.0.0.5:8080/one")])
        for (path, expected) in [("/a/b/c/d?q", "/three/d?q"), ("/a/b/c", "/three"), ("/a/b/x", "/one/b/x"), ("/a/b", "/one/b"),
                                 ("/a", "/one"), ("/ab/b/c", "/ab/b/c"), ("/sub/a/b/c", "/x/a/b/c"), ("/z/a/b/c", "/z/a/b/c")] {
            #expect(Self.target(lab.get("raw-ns.example.com", path)) == expected, "\(path)")
        }
        // A host with the trailing dot of a fully qualified name is the same host.
        #expect(Self.target(lab.get("raw-ns.example.com.", "/dot")) == "/dot")
    }

    @Test("forwarded headers: X-Client-IP is the peer, never '(null)' or the client's own, with and without mod_ssl",
          .timeLimit(.minutes(3)), arguments: [false, true])
    func forwardedHeaders(ssl: Bool) async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab(ssl: ssl)
        try lab.echo(on: "127.0.0.5")
        try lab.manager.create(uuid: "g5", appUUID: "a5", gearName: "raw", namespace: "ns")
        try lab.manager.connect(uuid: "g5", [Connection(path: "", target: "127.0.0.5:8080")])
        #expect(await eventually(within: 10) { lab.get("raw-ns.example.com")?.status == 200 })
        let seen = lab.get("raw-ns.example.com", "/h", headers: ["X-Client-IP: 6.6.6.6", "X-OpenShift-Host: other-ns.example.com"])?.body ?? ""
        let headers = seen.split(separator: "\n").map(String.init)
        #expect(headers.contains("X-Client-IP: 127.0.0.1"), "\(headers)")
        #expect(!seen.contains("(null)") && !seen.contains("6.6.6.6") && !seen.contains("X-OpenShift-Host"))
        #expect(headers.contains("X-Forwarded-Proto: http") && headers.contains("X-Forwarded-Port: \(lab.port)"))
        #expect(headers.contains { $0.hasPrefix("X-Request-Start: t=") && $0.count == "X-Request-Start: t=".count + 16 })
        #expect(headers.contains("X-Forwarded-For: 127.0.0.1") && headers.contains("X-Forwarded-Host: raw-ns.example.com"))
    }

    @Test("every connection option does what the reference says, through Apache", .timeLimit(.minutes(3)))
    func connectionOptions() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        try lab.echo(on: "127.0.0.5")
        try TestFiles.write(lab.dir + "/maps/files/maintenance.html", "down for maintenance\n")
        try TestFiles.write(lab.dir + "/maps/files/noproxy/index.html", "the node's own page\n")
        func options(_ names: String...) -> Connection.Options {
            var result = Connection.Options()
            for name in names { result.set(name) }
            return result
        }
        var tlsOnly = Connection.Options()
        tlsOnly.protocols = ["tls"]
        var httpsOnly = Connection.Options()
        httpsOnly.protocols = ["https"]
        try lab.manager.create(uuid: "g5", appUUID: "a5", gearName: "opts", namespace: "ns")
        try lab.manager.connect(uuid: "g5", [
            Connection(path: "", target: "127.0.0.5:8080"),
            Connection(path: "/health", target: "", options: options("health")),
            Connection(path: "/gone", target: "", options: options("gone")),
            Connection(path: "/forbidden", target: "", options: options("forbidden")),
            Connection(path: "/noproxy", target: "", options: options("noproxy")),
            Connection(path: "/redirect", target: "http://elsewhere.example.org/dest", options: options("redirect")),
            Connection(path: "/file", target: lab.dir + "/maps/files/maintenance.html", options: options("file")),
            Connection(path: "/secure", target: "127.0.0.5:8080/s", options: options("tohttps")),
            Connection(path: "/tls", target: "127.0.0.5:8080/t", options: tlsOnly),
            Connection(path: "/httpsonly", target: "127.0.0.5:8080/h", options: httpsOnly),
        ])
        #expect(await eventually(within: 10) { lab.get("opts-ns.example.com")?.status == 200 })
        let host = "opts-ns.example.com"
        let health = lab.get(host, "/health")
        #expect(health?.status == 200 && health?.body == "1\n", "\(String(describing: health))")
        #expect(lab.get(host, "/gone/x")?.status == 410)
        #expect(lab.get(host, "/forbidden")?.status == 403)
        #expect(lab.get(host, "/noproxy/index.html")?.body == "the node's own page\n", "Apache serves it from its own document root")
        let redirect = lab.get(host, "/redirect/more?q=1")
        #expect(redirect?.status == 302 && redirect?.headers.contains("Location: http://elsewhere.example.org/dest/more?q=1") == true)
        let file = lab.get(host, "/file")
        #expect(file?.status == 200 && file?.body == "down for maintenance\n")
        let secure = lab.get(host, "/secure/x")
        #expect(secure?.status == 302 && secure?.headers.contains("Location: https://\(host)/secure/x") == true)
        #expect(Self.target(lab.get(host, "/tls/x")) == "/tls/x", "a tls-only endpoint is not an HTTP route: the root route takes it")
        let httpsOnlyAnswer = lab.get(host, "/httpsonly")
        #expect(httpsOnlyAnswer?.status == 302, "an https-only endpoint is reached over https only")

        // A file route may name only the operator's static files: anything else changes nothing.
        let before = try lab.manager.frontend("g5")
        for target in ["/etc/passwd", lab.dir + "/maps/routes.txt", lab.dir + "/maps/files/../routes.txt"] {
            #expect(throws: FrontendError.self) {
                try lab.manager.connect(uuid: "g5", [Connection(path: "/leak", target: target, options: options("file"))])
            }
        }
        #expect(try lab.manager.frontend("g5") == before)
        #expect(Self.target(lab.get(host, "/leak")) == "/leak", "no file route was made")
        // Planted into the map behind the node's back, such a route is still refused by Apache.
        // (Apache looks up routes.txt for the first segments the name's record lists: /file is one.)
        let routes = TestFiles.read(lab.dir + "/maps/routes.txt") ?? ""
        let planted = routes.replacingOccurrences("\(host)/file FILE:\(lab.dir)/maps/files/maintenance.html|", with: "\(host)/file FILE:/etc/passwd|")
        #expect(planted != routes)
        try TestFiles.write(lab.dir + "/maps/routes.txt", planted)
        #expect(await eventually(within: 5) { lab.get(host, "/file")?.status == 403 })
    }

    @Test("a stopped gear is 'unavailable', an idle one 'idle'; a fresh lab's access log is written", .timeLimit(.minutes(3)))
    func stoppedIsNotIdle() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        try lab.manager.create(uuid: "g5", appUUID: "a5", gearName: "down", namespace: "ns")
        try lab.manager.connect(uuid: "g5", [Connection(path: "", target: "127.0.0.5:8081")])
        let down = lab.get("down-ns.example.com")
        #expect(down?.status == 503 && down?.body == "This application is unavailable.\n", "\(String(describing: down))")
        try lab.manager.idle(uuid: "g5")
        let idle = lab.get("down-ns.example.com")
        #expect(idle?.status == 503 && idle?.body == "This application is idle.\n", "\(String(describing: idle))")
        #expect(await eventually(within: 5) { (TestFiles.read(lab.dir + "/access.log") ?? "").contains("down-ns.example.com") })
    }

    @Test("aliases: one owner under any race, none inside the cloud domain, removed only by their owner", .timeLimit(.minutes(3)))
    func aliasRaces() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        try lab.manager.connect(uuid: "g2", [Connection(path: "", target: "127.0.0.3:8080")])
        #expect(await eventually(within: 10) { lab.get("two-ns.example.com")?.body == "backend two\n" })

        // A name that is, or may become, a gear's host name is no alias.
        for name in ["victim-ns.example.com", "two-ns.example.com", "example.com", "Victim-NS.Example.COM."] {
            #expect(throws: FrontendError.self, "\(name)") { try lab.manager.addAlias(uuid: "g1", name) }
        }
        #expect(TestFiles.read(lab.dir + "/maps/aliases.txt") == "")
        try lab.manager.create(uuid: "g6", appUUID: "a6", gearName: "victim", namespace: "ns")
        try lab.manager.connect(uuid: "g6", [Connection(path: "", target: "127.0.0.3:8080")])
        #expect(lab.get("victim-ns.example.com")?.body == "backend two\n", "the new gear gets its own traffic")
        // A second gear with a host name already routed is refused, and the first keeps it.
        #expect(throws: FrontendError.hostTaken(host: "victim-ns.example.com", owner: "g6")) {
            try lab.manager.create(uuid: "g7", appUUID: "a7", gearName: "victim", namespace: "ns")
        }
        #expect(try lab.manager.frontend("g7") == nil)
        #expect(lab.get("victim-ns.example.com")?.body == "backend two\n")

        // Two gears claim one alias at once, 30 times: exactly one wins each time, and the
        // loser can neither remove it nor its certificate.
        for round in 0..<30 {
            let name = "race\(round).shop.org"
            let manager = lab.manager
            var outcome: [String: Bool] = [:]
            try await withThrowingTaskGroup(of: (String, Bool).self) { group in
                for uuid in ["g1", "g2"] {
                    group.addTask { (uuid, try await onThread { (try? manager.addAlias(uuid: uuid, name)) != nil }) }
                }
                for try await (uuid, won) in group { outcome[uuid] = won }
            }
            #expect(outcome.values.filter { $0 }.count == 1, "round \(round): \(outcome)")
            guard let winner = outcome.first(where: { $0.value })?.key else { continue }
            let loser = winner == "g1" ? "g2" : "g1"
            #expect(throws: FrontendError.notOwner(name: name, uuid: loser)) { try lab.manager.removeAlias(uuid: loser, name) }
            #expect(throws: FrontendError.notOwner(name: name, uuid: loser)) { try lab.manager.removeSSLCert(uuid: loser, alias: name) }
            #expect(try lab.manager.frontend(winner)?.aliases.contains(name) == true)
            #expect(lab.get(name)?.body == (winner == "g1" ? "backend one\n" : "backend two\n"), "round \(round)")
        }
        // The owner removes its alias; then another gear may take it.
        try lab.manager.removeAlias(uuid: try #require(lab.manager.owner(of: "race0.shop.org")), "race0.shop.org")
        try lab.manager.addAlias(uuid: "g2", "race0.shop.org")
        #expect(lab.get("race0.shop.org")?.body == "backend two\n")
    }

    @Test("SSL: another gear cannot remove an owner's certificate; a change whose reload fails is undone whole", .timeLimit(.minutes(3)))
    func sslOwnership() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        #expect(await eventually(within: 10) { lab.get("one-ns.example.com")?.body == "backend one\n" })
        try lab.manager.addAlias(uuid: "g1", "secure.one.org")
        let good = try Self.certificate(for: "secure.one.org", in: lab.dir)
        try lab.manager.addSSLCert(uuid: "g1", chain: good.chain, key: good.key, alias: "secure.one.org")
        let key = lab.dir + "/state/ssl/secure.one.org.key"
        #expect(throws: FrontendError.notOwner(name: "secure.one.org", uuid: "g2")) {
            try lab.manager.removeSSLCert(uuid: "g2", alias: "secure.one.org")
        }
        #expect(throws: FrontendError.self) { try lab.manager.addSSLCert(uuid: "g2", chain: good.chain, key: good.key, alias: "secure.one.org") }
        #expect(TestFiles.exists(key) && TestFiles.exists(lab.dir + "/maps/ssl-vhosts/secure.one.org.conf"))
        #expect(lab.configurationLoads, "Apache's configuration still loads")
        #expect(try ProcessRunner.run(["/usr/sbin/apache2", "-f", lab.dir + "/httpd.conf", "-k", "graceful"]).status == 0)

        // The same node with a reload that fails: the new certificate, its VirtualHost and the
        // document's record of it are all undone; the first certificate is untouched.
        let failing = FrontendManager(stateDirectory: lab.dir + "/state", plugins: [ApacheFrontend(
            directory: lab.dir + "/maps", reload: ["/bin/false"],
            ssl: .init(listen: "127.0.0.1:\(lab.sslPort)", certificateDirectory: lab.dir + "/state/ssl"))],
                                      cloudDomain: "example.com")
        try failing.addAlias(uuid: "g1", "second.one.org")
        let second = try Self.certificate(for: "second.one.org", in: lab.dir)
        let before = try failing.frontend("g1")
        let firstKey = TestFiles.read(key)
        #expect(throws: FrontendError.self) { try failing.addSSLCert(uuid: "g1", chain: second.chain, key: second.key, alias: "second.one.org") }
        #expect(try failing.frontend("g1") == before)
        #expect(!TestFiles.exists(lab.dir + "/state/ssl/second.one.org.key") && !TestFiles.exists(lab.dir + "/state/ssl/second.one.org.crt"))
        #expect(!TestFiles.exists(lab.dir + "/maps/ssl-vhosts/second.one.org.conf"))
        // Replacing the first certificate fails too, and leaves the old one in place.
        try TestFiles.makeDirectories(lab.dir + "/replacement")
        let replacement = try Self.certificate(for: "secure.one.org", in: lab.dir + "/replacement")
        #expect(throws: FrontendError.self) {
            try failing.addSSLCert(uuid: "g1", chain: replacement.chain, key: replacement.key, alias: "secure.one.org")
        }
        #expect(TestFiles.read(key) == firstKey)
        #expect(lab.configurationLoads)
    }

    @Test("a corrupt gear document is that gear's problem: others add aliases, are routed and found by host", .timeLimit(.minutes(3)))
    func corruptDocument() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        try lab.manager.connect(uuid: "g2", [Connection(path: "", target: "127.0.0.3:8080")])
        try lab.manager.idle(uuid: "g1")
        try TestFiles.write(lab.dir + "/state/g2.json", "{ not json")
        try lab.manager.create(uuid: "g8", appUUID: "a8", gearName: "eight", namespace: "ns")
        try lab.manager.connect(uuid: "g8", [Connection(path: "", target: "127.0.0.2:8080")])
        try lab.manager.addAlias(uuid: "g8", "www.eight.org")
        #expect(await eventually(within: 10) { lab.get("www.eight.org")?.body == "backend one\n" })
        #expect(await eventually(within: 10) { lab.get("two-ns.example.com")?.body == "backend two\n" }, "the corrupt gear keeps what it was served")
        #expect(lab.manager.gear(serving: "one-ns.example.com")?.uuid == "g1", "an idle gear is found by its host to be woken")
        #expect(lab.manager.gear(serving: "www.eight.org")?.uuid == "g8")
        let found = try lab.manager.reconcile(repair: false)
        #expect(found.corrupt.keys.sorted() == ["g2"], "reported")
        #expect(found.drift.isEmpty, "\(found.drift)")
        #expect(throws: FrontendError.self) { try lab.manager.addAlias(uuid: "g2", "www.two.org") }
    }

    @Test("a lost or emptied map is rebuilt from the documents, atomically, without a reload", .timeLimit(.minutes(3)))
    func rebuildMaps() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        try lab.manager.addAlias(uuid: "g1", "www.one.org")
        #expect(await eventually(within: 10) { lab.get("www.one.org")?.body == "backend one\n" })
        let pid = lab.apachePID
        let routes = TestFiles.read(lab.dir + "/maps/routes.txt")
        let aliases = TestFiles.read(lab.dir + "/maps/aliases.txt")
        let hosts = TestFiles.read(lab.dir + "/maps/hosts.txt")
        try TestFiles.write(lab.dir + "/maps/routes.txt", "")
        unlink(lab.dir + "/maps/aliases.txt")
        try TestFiles.write(lab.dir + "/maps/sts.txt", "stale-ns.example.com 60\n")
        try TestFiles.write(lab.dir + "/maps/hosts.txt", "")
        #expect(lab.get("one-ns.example.com")?.status == 404)
        #expect(lab.get("www.one.org")?.status == 404)
        let check = try lab.manager.reconcile(repair: false)
        #expect(check.drift.count == 4, "\(check.drift)")
        #expect(TestFiles.read(lab.dir + "/maps/routes.txt") == "", "a check changes nothing")
        let repaired = try lab.manager.reconcile(repair: true)
        #expect(repaired.drift.count == 4)
        #expect(TestFiles.read(lab.dir + "/maps/routes.txt") == routes && TestFiles.read(lab.dir + "/maps/aliases.txt") == aliases)
        func sorted(_ text: String?) -> [Substring] { (text ?? "").split(separator: "\n").sorted() }
        #expect(sorted(TestFiles.read(lab.dir + "/maps/hosts.txt")) == sorted(hosts), "the same records, in the documents' order")
        #expect(TestFiles.read(lab.dir + "/maps/sts.txt") == "")
        #expect(await eventually(within: 5) { lab.get("www.one.org")?.body == "backend one\n" })
        #expect(try lab.manager.reconcile(repair: false).clean)
        #expect(lab.apachePID == pid)
    }
}
