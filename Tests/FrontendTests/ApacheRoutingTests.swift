import Foundation
import Frontend
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Routing through a real Apache started by the test on a loopback port, with the generated
/// configuration, while the maps change underneath it.
@Suite("routing through Apache", .serialized, .enabled(if: access("/usr/sbin/apache2", X_OK) == 0 || Prerequisites.inCI))
struct ApacheRoutingTests {
    /// Two backends (python http.server) and an Apache in front of them.
    final class Lab {
        let dir: String
        let port: UInt16
        let sslPort: UInt16
        var backends: [pid_t] = []
        let manager: FrontendManager

        /// With `ssl: false`, Apache runs without mod_ssl (the case where `%{...}s` variables were "(null)").
        init(ssl withSSL: Bool = true, reload: [String]? = nil) throws {
            dir = TestFiles.temporaryDirectory("apache-lab")
            chmod(dir, 0o755)
            port = HTTPProbe.freePort()
            sslPort = HTTPProbe.freePort()
            let ssl = ApacheFrontend.SSL(listen: "127.0.0.1:\(sslPort)", certificateDirectory: dir + "/state/ssl")
            let plugin = ApacheFrontend(directory: dir + "/maps", reload: reload ?? ["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-k", "graceful"],
                                        ssl: withSSL ? ssl : nil)
            manager = FrontendManager(stateDirectory: dir + "/state", plugins: [plugin], cloudDomain: "example.com")
            for (name, ip) in [("one", "127.0.0.2"), ("two", "127.0.0.3")] {
                try TestFiles.write(dir + "/\(name)/index.html", "backend \(name)\n")
                try TestFiles.write(dir + "/\(name)/deep/index.html", "backend \(name) deep\n")
                backends.append(try ProcessRunner.spawn(
                    ["/usr/bin/python3", "-m", "http.server", "8080", "--bind", ip, "--directory", dir + "/" + name],
                    stdout: dir + "/\(name).log", stderr: dir + "/\(name).err"))
            }
            // Both backends listen before any test routes to them: under CI load a python server
            // took seconds to bind, and a first request before that was answered 503.
            for ip in ["127.0.0.2", "127.0.0.3"] {
                for _ in 0..<600 where HTTPProbe.get(port: 8080, host: ip)?.status != 200 { usleep(100_000) }
            }
            try manager.create(uuid: "g1", appUUID: "a1", gearName: "one", namespace: "ns")
            try manager.create(uuid: "g2", appUUID: "a2", gearName: "two", namespace: "ns")
            try manager.connect(uuid: "g1", [Connection(path: "", target: "127.0.0.2:8080")])
            let config = ApacheConfiguration.standalone(serverRoot: dir, listen: "127.0.0.1", port: Int(port), mapDirectory: dir + "/maps",
                                                        sslPort: withSSL ? Int(sslPort) : nil, user: geteuid() == 0 ? "www-data" : nil)
            try TestFiles.write(dir + "/httpd.conf", config)
            let check = try ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-t"])
            #expect(check.status == 0, "\(check.stderr)")
            let start = try ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-k", "start"])
            #expect(start.status == 0, "\(start.stderr)")
        }

        var apachePID: String? { TestFiles.read(dir + "/httpd.pid") }

        /// A backend on `ip`:8080 that answers with the request line and headers it received.
        func echo(on ip: String) throws {
            let script = String(#filePath[..<#filePath.lastIndex(of: "/")!]) + "/Support/request_echo.py"
            backends.append(try ProcessRunner.spawn(["/usr/bin/python3", script, ip, "8080"], stdout: dir + "/echo-\(ip).log",
                                                    stderr: dir + "/echo-\(ip).err"))
        }

        /// `apache2 -t` of the lab's configuration: whether a reload would load it.
        var configurationLoads: Bool {
            (try? ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-t"]))?.status == 0
        }

        func get(_ host: String, _ path: String = "/", headers: [String] = []) -> HTTPProbe.Response? {
            HTTPProbe.get(port: port, path: path, headers: ["Host: \(host)"] + headers)
        }

        deinit {
            _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-k", "stop"])
            for pid in backends {
                kill(pid, SIGKILL)
                _ = ProcessRunner.wait(pid)
            }
            TestFiles.remove(dir)
        }
    }

    /// A self-signed certificate and key for `name`, from openssl.
    static func certificate(for name: String, in dir: String) throws -> (chain: String, key: String) {
        let result = try ProcessRunner.run(["/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                                            "-keyout", dir + "/\(name).key", "-out", dir + "/\(name).crt", "-subj", "/CN=\(name)",
                                            "-addext", "subjectAltName=DNS:\(name)"])
        #expect(result.status == 0, "\(result.stderr)")
        return (TestFiles.read(dir + "/\(name).crt") ?? "", TestFiles.read(dir + "/\(name).key") ?? "")
    }

    @Test("an SSL certificate for an alias: checked, served over HTTPS after one graceful reload; bad ones change nothing",
          .timeLimit(.minutes(3)))
    func ssl() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        #expect(await eventually(within: 10) { lab.get("one-ns.example.com")?.body == "backend one\n" })
        let pid = lab.apachePID
        try lab.manager.addAlias(uuid: "g1", "secure.one.org")
        let good = try Self.certificate(for: "secure.one.org", in: lab.dir)
        let other = try Self.certificate(for: "other.one.org", in: lab.dir)

        // Refused: a key that is not the certificate's, a certificate for another name, an alias the gear lacks, garbage.
        for (chain, key, alias) in [(good.chain, other.key, "secure.one.org"), (other.chain, other.key, "secure.one.org"),
                                    (good.chain, good.key, "nothere.one.org"), ("junk", good.key, "secure.one.org"),
                                    (good.chain, "junk", "secure.one.org")] {
            #expect(throws: FrontendError.self) { try lab.manager.addSSLCert(uuid: "g1", chain: chain, key: key, alias: alias) }
        }
        #expect(TestFiles.list(lab.dir + "/maps/ssl-vhosts").isEmpty)

        try lab.manager.addSSLCert(uuid: "g1", chain: good.chain, key: good.key, alias: "secure.one.org")
        #expect(try lab.manager.frontend("g1")?.sslAliases == ["secure.one.org"])
        func https() -> String? {
            let result = try? ProcessRunner.run(["/usr/bin/curl", "-sk", "--max-time", "3", "--resolve", "secure.one.org:\(lab.sslPort):127.0.0.1",
                                                 "https://secure.one.org:\(lab.sslPort)/"])
            return result?.status == 0 ? result?.stdout : nil
        }
        #expect(await eventually(within: 15) { https() == "backend one\n" }, "\(TestFiles.read(lab.dir + "/error.log") ?? "")")
        #expect(lab.apachePID == pid, "a graceful reload keeps the parent")

        // Strict-Transport-Security: the header over HTTPS, a redirect to https over plain HTTP,
        // and neither for a gear without it.
        func httpsHeaders() -> String {
            let result = try? ProcessRunner.run(["/usr/bin/curl", "-sk", "-D", "-", "-o", "/dev/null", "--max-time", "3",
                                                 "--resolve", "secure.one.org:\(lab.sslPort):127.0.0.1", "https://secure.one.org:\(lab.sslPort)/"])
            return result?.stdout ?? ""
        }
        #expect(!httpsHeaders().lowercased().contains("strict-transport-security"))
        try lab.manager.sts(uuid: "g1", maxAge: 600)
        #expect(httpsHeaders().contains("Strict-Transport-Security: max-age=600"), "\(httpsHeaders())")
        let plain = lab.get("secure.one.org", "/x?y=1")
        #expect(plain?.status == 302 && plain?.headers.contains("Location: https://secure.one.org/x?y=1") == true)
        #expect(lab.get("two-ns.example.com")?.headers.contains { $0.lowercased().hasPrefix("strict-transport-security") } == false)
        try lab.manager.sts(uuid: "g1", maxAge: nil)
        #expect(!httpsHeaders().lowercased().contains("strict-transport-security"))

        try lab.manager.removeAlias(uuid: "g1", "secure.one.org")
        #expect(TestFiles.list(lab.dir + "/maps/ssl-vhosts").isEmpty)
        #expect(!TestFiles.exists(lab.dir + "/state/ssl/secure.one.org.key"))
    }

    @Test("each routed request records its gear's last access; gears nobody asked for have none", .timeLimit(.minutes(3)))
    func lastAccess() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        #expect(await eventually(within: 10) { lab.get("one-ns.example.com")?.body == "backend one\n" })
        let records = LastAccess(mapDirectory: lab.dir + "/maps", directory: lab.dir + "/last_access")
        let now = Int(Date().timeIntervalSince1970)
        #expect(try records.update() >= 1)
        #expect(abs((records.lastAccess("g1") ?? 0) - now) <= 5)
        #expect(records.lastAccess("g2") == nil, "g2 has no route and was never requested")
        #expect(try records.update() == 0, "lines are read once")
        _ = lab.get("nosuch.example.com")
        #expect(try records.update() == 0, "an unrouted request names no gear")
    }

    @Test("a WebSocket upgrade is tunnelled to the gear and frames flow both ways", .timeLimit(.minutes(3)))
    func websocket() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let lab = try Lab()
        let script = String(#filePath[..<#filePath.lastIndex(of: "/")!]) + "/Support/ws_echo.py"
        let echo = try ProcessRunner.spawn(["/usr/bin/python3", script, "127.0.0.4", "8080"], stdout: lab.dir + "/ws.log", stderr: lab.dir + "/ws.err")
        defer {
            kill(echo, SIGKILL)
            _ = ProcessRunner.wait(echo)
        }
        var options = Connection.Options()
        options.websocket = true
        options.protocols = ["http", "ws"]
        try lab.manager.create(uuid: "g3", appUUID: "a3", gearName: "chat", namespace: "ns")
        try lab.manager.connect(uuid: "g3", [Connection(path: "", target: "127.0.0.4:8080", options: options)])
        #expect(await eventually(within: 10) { lab.get("chat-ns.example.com")?.body == "plain\n" })
        let exchange = WebSocketProbe.echo(port: lab.port, host: "chat-ns.example.com", message: "hello gear")
        #expect(exchange.handshake.hasPrefix("HTTP/1.1 101"), "\(exchange.handshake)")
        #expect(exchange.handshake.contains("Sec-WebSocket-Accept: \(WebSocketProbe.expectedAccept)"))
        #expect(exchange.reply == "hello gear")
    }

    @Test("a gear's backend gets pooled connections once Apache has reloaded its workers; routing never waits for that",
          .timeLimit(.minutes(3)))
    func pooledConnections() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        // A node without HTTPS: the reload belongs to the plugin, not to its SSL settings (it was
        // once skipped when there were none).
        let lab = try Lab(ssl: false)
        let script = String(#filePath[..<#filePath.lastIndex(of: "/")!]) + "/Support/connection_count.py"
        lab.backends.append(try ProcessRunner.spawn(["/usr/bin/python3", script, "127.0.0.5", "8080"],
                                                    stdout: lab.dir + "/count.log", stderr: lab.dir + "/count.err"))
        try lab.manager.create(uuid: "g5", appUUID: "a5", gearName: "pool", namespace: "ns")
        try lab.manager.connect(uuid: "g5", [Connection(path: "", target: "127.0.0.5:8080")])
        let workers = try #require(TestFiles.read(lab.dir + "/maps/workers.conf"))
        #expect(workers.contains("<Proxy \"http://127.0.0.5:8080\">") && workers.contains("<Proxy \"http://127.0.0.2:8080\">"))
        // The connect reloaded Apache gracefully; the route works throughout.
        #expect(await eventually(within: 10) { lab.get("pool-ns.example.com")?.body.hasPrefix("connection ") == true })
        #expect(await eventually(within: 20) {
            (TestFiles.read(lab.dir + "/error.log") ?? "").components(separatedBy: "resuming normal operations").count >= 3
        }, "the graceful reload happened")
        usleep(500_000)
        var seen = Set<String>()
        for _ in 0..<40 {
            let body = lab.get("pool-ns.example.com")?.body
            #expect(body?.hasPrefix("connection ") == true)
            seen.insert(body ?? "")
        }
        // Without a pooled worker each request opens its own connection (40 here); with one, a
        // connection per Apache thread that served them at most.
        #expect(seen.count <= 8, "40 requests came on \(seen.count) backend connections")
        // A backend no route names any more leaves the file.
        try lab.manager.disconnect(uuid: "g5", paths: [""])
        #expect(TestFiles.read(lab.dir + "/maps/workers.conf")?.contains("127.0.0.5") == false)
        #expect(lab.configurationLoads)
    }

    @Test("host names, aliases, paths and disconnects take effect on the next request, with no reload", .timeLimit(.minutes(3)))
    func routing() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        // Nothing reloads Apache here (a new backend would, for its pooled worker): every change
        // must be routed without one.
        let lab = try Lab(reload: ["/bin/true"])
        #expect(await eventually(within: 10) { lab.get("one-ns.example.com")?.body == "backend one\n" })
        let pid = try #require(lab.apachePID)
        #expect(lab.get("ONE-NS.Example.com:8080")?.body == "backend one\n", "Host is case-insensitive, port ignored")

        // An alias reaches the same gear.
        try lab.manager.addAlias(uuid: "g1", "www.one.org")
        #expect(lab.get("www.one.org")?.body == "backend one\n")

        // Two gears on different paths of one host: the most specific path wins.
        try lab.manager.connect(uuid: "g2", [Connection(path: "", target: "127.0.0.3:8080")])
        // The second backend may still be starting on a busy machine.
        #expect(await eventually(within: 10) { lab.get("two-ns.example.com")?.body == "backend two\n" })
        try lab.manager.connect(uuid: "g1", [Connection(path: "/deep", target: "127.0.0.3:8080/deep")])
        #expect(lab.get("one-ns.example.com", "/deep/")?.body == "backend two deep\n")
        #expect(lab.get("one-ns.example.com", "/")?.body == "backend one\n")
        #expect(lab.get("two-ns.example.com")?.body == "backend two\n")

        // A forged routing header does not reach another gear.
        let forged = lab.get("nobody.example.com", headers: ["X-OpenShift-Host: one-ns.example.com"])
        #expect(forged?.status == 404)

        // Unknown host: a plain 404 page, not a redirect.
        let unknown = lab.get("unknown.example.com")
        #expect(unknown?.status == 404 && unknown?.body.contains("No application is configured") == true)

        // Disconnect: the 404 page on the next request.
        try lab.manager.disconnect(uuid: "g1", paths: ["", "/deep"])
        #expect(lab.get("one-ns.example.com")?.status == 404)
        #expect(lab.get("www.one.org")?.status == 404)

        // Idle: 503 until unidled, by its host name and by its alias.
        try lab.manager.addAlias(uuid: "g2", "www.two.org")
        #expect(lab.get("www.two.org")?.body == "backend two\n")
        try lab.manager.idle(uuid: "g2")
        #expect(lab.get("two-ns.example.com")?.status == 503)
        #expect(lab.get("www.two.org")?.status == 503)
        try lab.manager.unidle(uuid: "g2")
        #expect(lab.get("two-ns.example.com")?.body == "backend two\n")
        #expect(lab.get("www.two.org")?.body == "backend two\n")

        // Strict-Transport-Security: plain HTTP is sent to https.
        try lab.manager.sts(uuid: "g2", maxAge: 600)
        let secure = lab.get("two-ns.example.com", "/page")
        #expect(secure?.status == 302 && secure?.headers.contains("Location: https://two-ns.example.com/page") == true)
        try lab.manager.sts(uuid: "g2", maxAge: nil)
        #expect(lab.get("two-ns.example.com")?.body == "backend two\n")

        #expect(lab.apachePID == pid, "Apache was neither restarted nor reloaded")
        let errors = TestFiles.read(lab.dir + "/error.log") ?? ""
        #expect(errors.components(separatedBy: "resuming normal operations").count == 2, "started once, never reloaded: \(errors)")
    }
}
