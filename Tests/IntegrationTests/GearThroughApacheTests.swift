import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A gear with the python cartridge, reached by its host name through a real Apache that the
/// test starts with `openshift-node apache-config --standalone`; routes change underneath it.
@Suite("gear through Apache", .enabled(if: access("/usr/sbin/apache2", X_OK) == 0 || Prerequisites.inCI))
struct GearThroughApacheTests {
    static let cartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"

    @Test("apache-config --output writes the rules and the empty maps a fresh node's Apache needs; existing maps are kept")
    func rulesFileAndMaps() throws {
        let node = ScratchNode("apache-output")
        defer { node.destroy() }
        let sandbox = ["--root", node.root + "/sandbox", "--cartridge-base-path", Self.cartridges]
        let maps = node.root + "/sandbox/etc/apache2/conf.d/openshift"
        let rules = node.root + "/routes.conf"
        let written = try ProcessRunner.node("openshift-node", ["apache-config", "--output", rules] + sandbox)
        #expect(written.status == 0 && written.stdout.isEmpty, "\(written)")
        let printed = try ProcessRunner.node("openshift-node", ["apache-config"] + sandbox)
        #expect(TestFiles.read(rules) == printed.stdout && printed.stdout.contains("RewriteMap oo_routes \"txt:\(maps)/routes.txt\""))
        for map in ["routes", "aliases", "idler", "sts", "hosts"] { #expect(TestFiles.read("\(maps)/\(map).txt") == "", "\(map).txt") }
        // A node with routes: writing the rules again leaves them alone.
        try TestFiles.write(maps + "/routes.txt", "shop-acme.example.com 127.1.2.3:8080|shop1|shop1\n")
        #expect(try ProcessRunner.node("openshift-node", ["apache-config", "--output", rules] + sandbox).status == 0)
        #expect(TestFiles.read(maps + "/routes.txt") == "shop-acme.example.com 127.1.2.3:8080|shop1|shop1\n")
        let refused = try ProcessRunner.node("openshift-node", ["apache-config", "--output", rules, "--standalone", "8080"] + sandbox)
        #expect(refused.status == 2 && refused.stderr.contains("--output writes the rules for the system Apache"), "\(refused)")
    }

    @Test("a fresh node's Apache starts before any gear and logs; a lost map is reported by oo-admin-ctl-gears routes, rebuilt by --repair and by the daemon at start",
          .timeLimit(.minutes(3)))
    func freshApacheAndRebuild() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let node = ScratchNode("apache-fresh")
        defer { node.destroy() }
        chmod(node.root, 0o755)
        let root = node.root + "/sandbox"
        let sandbox = ["--root", root, "--cartridge-base-path", Self.cartridges, "--config", try sandboxConfig(node)]
        func run(_ tool: String, _ arguments: [String], status: Int32 = 0) throws -> ProcessRunner.Result {
            let result = try ProcessRunner.node(tool, arguments + sandbox)
            #expect(result.status == status, "\(tool) \(arguments): \(result.stdout) \(result.stderr)")
            return result
        }
        let port = HTTPProbe.freePort()
        let serverRoot = node.root + "/httpd"
        try TestFiles.makeDirectories(serverRoot)
        let config = try run("openshift-node", ["apache-config", "--standalone", "\(port)", "--server-root", serverRoot]).stdout
        #expect(config.contains("ServerRoot \"\(serverRoot)\""))
        try TestFiles.write(node.root + "/httpd.conf", config)
        let started = try ProcessRunner.run(["/usr/sbin/apache2", "-f", node.root + "/httpd.conf", "-k", "start"])
        #expect(started.status == 0, "no gear yet, and Apache starts: \(started.stderr)")
        defer { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", node.root + "/httpd.conf", "-k", "stop"]) }
        func get(_ host: String) -> HTTPProbe.Response? { HTTPProbe.get(port: port, headers: ["Host: \(host)"]) }
        #expect(await eventually(within: 10) { get("nobody.example.com")?.status == 404 })
        #expect(await eventually(within: 5) { (TestFiles.read(serverRoot + "/access.log") ?? "").contains("nobody.example.com") },
                "the access log is written")

        _ = try run("openshift-node", ["rescan"])
        _ = try run("oo-devel-node", ["app-create", "--with-container-uuid", "shop1", "--with-app-name", "shop",
                                      "--with-container-name", "shop", "--with-namespace", "acme"])
        _ = try run("oo-devel-node", ["configure", "--with-container-uuid", "shop1", "--cart-name", "python"])
        #expect(try run("oo-admin-ctl-gears", ["routes"]).stdout == "routes match the documents of 1 gear(s)\n")
        let maps = try #require(config.split(separator: "\n").first { $0.hasPrefix("RewriteMap oo_routes") }
            .map { String($0.split(separator: "\"")[1].dropFirst(4).dropLast(11)) })
        let routes = try #require(TestFiles.read(maps + "/routes.txt"))
        #expect(routes.hasPrefix("shop-acme.example.com "))
        // The gear is not started: Apache says so, and does not call it idle.
        #expect(await eventually(within: 5) { get("shop-acme.example.com")?.body == "This application is unavailable.\n" })

        // The maps are lost: reported, then rebuilt on demand.
        let hosts = try #require(TestFiles.read(maps + "/hosts.txt"))
        try TestFiles.write(maps + "/routes.txt", "")
        try TestFiles.write(maps + "/hosts.txt", "")
        #expect(get("shop-acme.example.com")?.status == 404)
        let report = try run("oo-admin-ctl-gears", ["routes"], status: 1).stdout
        #expect(report.contains("apache: routes.txt: \(routes.split(separator: "\n").count) line(s) missing, 0 line(s) that no document has"), "\(report)")
        #expect(TestFiles.read(maps + "/routes.txt") == "", "a report changes nothing")
        _ = try run("oo-admin-ctl-gears", ["routes", "--repair"])
        #expect(TestFiles.read(maps + "/routes.txt") == routes && TestFiles.read(maps + "/hosts.txt") == hosts)
        #expect(await eventually(within: 5) { get("shop-acme.example.com")?.status == 503 })

        // Lost again: the daemon rebuilds them when it starts.
        try TestFiles.write(maps + "/routes.txt", "")
        try TestFiles.write(maps + "/hosts.txt", "")
        let daemon = try Daemon(root: root, basePath: Self.cartridges, extraArguments: ["--no-watch", "--no-wake"],
                                config: sandbox[5])
        #expect(await eventually(within: 60) { TestFiles.read(maps + "/routes.txt") == routes && TestFiles.read(maps + "/hosts.txt") == hosts },
                "\(daemon.logText)")
        #expect(daemon.logText.contains("routes drifted from the documents: apache: routes.txt: \(routes.split(separator: "\n").count) line(s) missing"))
        // Stopped once it runs its services (the check comes before they start).
        #expect(await eventually(within: 60) { daemon.logText.contains("local agent listening") }, "\(daemon.logText)")
        #expect(daemon.stop() == 0)
        _ = try run("oo-devel-node", ["app-destroy", "--with-container-uuid", "shop1"])
    }

    @Test("host name and alias reach the gear; disconnect gives the 404 page; idle and start; Apache never reloads",
          .timeLimit(.minutes(3)))
    func endToEnd() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let node = ScratchNode("gear-apache")
        defer { node.destroy() }
        chmod(node.root, 0o755)
        let root = node.root + "/sandbox"
        let wakePort = HTTPProbe.freePort()
        let config = try sandboxConfig(node, wakePort: wakePort)
        let sandbox = ["--root", root, "--cartridge-base-path", Self.cartridges, "--config", config]
        func run(_ tool: String, _ arguments: [String]) throws -> ProcessRunner.Result {
            let result = try ProcessRunner.node(tool, arguments + sandbox)
            #expect(result.status == 0, "\(tool) \(arguments): \(result.stderr)")
            return result
        }
        _ = try run("openshift-node", ["rescan"])
        _ = try run("oo-devel-node", ["app-create", "--with-container-uuid", "shop1", "--with-app-name", "shop",
                                      "--with-container-name", "shop", "--with-namespace", "acme"])
        _ = try run("oo-devel-node", ["configure", "--with-container-uuid", "shop1", "--cart-name", "python"])
        _ = try run("oo-devel-node", ["start", "--with-container-uuid", "shop1"])

        let port = HTTPProbe.freePort()
        let apacheConfig = try run("openshift-node", ["apache-config", "--standalone", "\(port)",
                                                      "--server-root", root + "/var/lib/openshift/.httpd"]).stdout
        try TestFiles.write(node.root + "/httpd.conf", apacheConfig)
        #expect(try ProcessRunner.run(["/usr/sbin/apache2", "-f", node.root + "/httpd.conf", "-k", "start"]).status == 0)
        defer { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", node.root + "/httpd.conf", "-k", "stop"]) }
        let pidFile = root + "/var/lib/openshift/.httpd/httpd.pid"
        func get(_ host: String) -> HTTPProbe.Response? { HTTPProbe.get(port: port, headers: ["Host: \(host)"]) }

        #expect(await eventually(within: 15) { get("shop-acme.example.com")?.body == "Hello from your python application\n" })
        let pid = TestFiles.read(pidFile)
        _ = try run("oo-devel-node", ["add-alias", "--with-container-uuid", "shop1", "--with-alias-name", "www.shop.example.org"])
        #expect(get("www.shop.example.org")?.body == "Hello from your python application\n")

        // Idle without the daemon: 503. Unidle by hand: served again.
        _ = try run("oo-devel-node", ["frontend-idle", "--with-container-uuid", "shop1"])
        #expect(get("shop-acme.example.com")?.status == 503)
        #expect(try run("oo-devel-node", ["frontend-check-idle", "--with-container-uuid", "shop1"]).stdout == "true\n")
        _ = try run("oo-devel-node", ["frontend-unidle", "--with-container-uuid", "shop1"])
        #expect(await eventually(within: 15) { get("shop-acme.example.com")?.body == "Hello from your python application\n" })

        // Idle with the daemon running: the first request wakes the gear (307 to itself), the
        // repeated request, POST body included, reaches the started gear.
        try TestFiles.write(root + "/var/lib/openshift/shop1/app-root/runtime/repo/wsgi.py", """
            def application(environ, start_response):
                size = int(environ.get("CONTENT_LENGTH") or 0)
                body = environ["wsgi.input"].read(size) if size else b""
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"got: " + body]
            """)
        let daemon = try Daemon(root: root, basePath: Self.cartridges, extraArguments: ["--no-watch"], config: config)
        #expect(await eventually(within: 20) { daemon.logText.contains("waking idle gears") }, "\(daemon.logText)")
        _ = try run("oo-devel-node", ["frontend-idle", "--with-container-uuid", "shop1"])
        let post = ["Host: shop-acme.example.com", "Content-Type: text/plain", "Content-Length: 11"]
        let wake = HTTPProbe.request(port: port, method: "POST", headers: post, body: "hello world")
        let wakeStatus = wake?.status ?? 0
        let log = daemon.logText
        #expect(wakeStatus == 307, "woken with \(wakeStatus): \(log)")
        let retry = HTTPProbe.request(port: port, method: "POST", headers: post, body: "hello world")
        let retryBody = retry?.body ?? ""
        #expect(retry?.status == 200 && retryBody == "got: hello world", "retried: \(retryBody)")
        #expect(try run("oo-devel-node", ["frontend-check-idle", "--with-container-uuid", "shop1"]).stdout == "false\n")
        #expect(daemon.stop() == 0)
        _ = try run("oo-devel-node", ["restart", "--with-container-uuid", "shop1"])

        _ = try run("oo-devel-node", ["frontend-disconnect", "--with-container-uuid", "shop1"])
        #expect(get("shop-acme.example.com")?.status == 404)
        #expect(get("www.shop.example.org")?.status == 404)
        #expect(TestFiles.read(pidFile) == pid, "no restart or reload of Apache")
        _ = try run("oo-devel-node", ["app-destroy", "--with-container-uuid", "shop1"])
        #expect(TestFiles.read(root + "/etc/apache2/conf.d/openshift/routes.txt") == "")
    }
}
