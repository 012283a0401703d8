import ArgumentParser
import Frontend
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench frontend --gears N`: how fast a route change reaches a running Apache with N
/// gears already routed, and requests per second through Apache against direct to the backend.
struct FrontendBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "frontend", abstract: "Route change latency through a live Apache, and proxied vs direct throughput.")

    @Option(help: "Gears already routed before measuring.") var gears = 1000
    @Option(help: "Route changes measured.") var changes = 30
    @Option(name: .customLong("seconds"), help: "Seconds of load per throughput measurement.") var loadSeconds = 3.0
    @Option(help: "Client threads for the throughput measurement.") var threads = 4
    @Option(help: "Rounds of the side-by-side comparison with plain ProxyPass (a median is printed).") var rounds = 3
    @Flag(help: "Also count Apache's instructions per request with valgrind's callgrind: plain ProxyPass and the router.") var instructions = false

    func run() throws {
        guard access("/usr/sbin/apache2", X_OK) == 0 else { throw ValidationError("apache2 is not installed") }
        let dir = TestFiles.temporaryDirectory("frontend-bench")
        chmod(dir, 0o755)
        defer { TestFiles.remove(dir) }
        let backendPort = HTTPProbe.freePort()
        try TestFiles.write(dir + "/www/index.html", "ok\n")
        let backend = try ProcessRunner.spawn(["/usr/bin/python3", "-m", "http.server", "\(backendPort)", "--bind", "127.0.0.2",
                                               "--directory", dir + "/www"], stdout: dir + "/backend.log", stderr: dir + "/backend.err")
        defer {
            kill(backend, SIGKILL)
            _ = ProcessRunner.wait(backend)
        }
        // As the daemon does: a new backend's pooled worker is loaded by a graceful reload.
        let plugin = ApacheFrontend(directory: dir + "/maps", reload: ["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-k", "graceful"])
        let manager = FrontendManager(stateDirectory: dir + "/state", plugins: [plugin],
                                      cloudDomain: "example.com")
        let clock = ContinuousClock()
        let setup = try clock.measure {
            for i in 0..<gears {
                try manager.create(uuid: "g\(i)", appUUID: "a\(i)", gearName: "app\(i)", namespace: "bench")
                try manager.connect(uuid: "g\(i)", [Connection(path: "", target: "127.0.0.2:\(backendPort)")])
            }
        }
        let port = HTTPProbe.freePort()
        try TestFiles.write(dir + "/httpd.conf", ApacheConfiguration.standalone(
            serverRoot: dir, listen: "127.0.0.1", port: Int(port), mapDirectory: dir + "/maps", user: geteuid() == 0 ? "www-data" : nil))
        guard try ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-k", "start"]).status == 0 else {
            throw ValidationError("apache2 did not start: \(TestFiles.read(dir + "/error.log") ?? "")")
        }
        defer { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/httpd.conf", "-k", "stop"]) }
        for _ in 0..<200 where HTTPProbe.get(port: port, headers: ["Host: app0-bench.example.com"])?.status != 200 { usleep(20_000) }
        print("node-bench frontend: \(gears) gears routed in \(format(setup)); Apache on 127.0.0.1:\(port), backend python http.server")

        var latencies: [Double] = []
        for k in 0..<changes {
            let uuid = "new\(k)"
            try manager.create(uuid: uuid, appUUID: "n\(k)", gearName: uuid, namespace: "bench")
            let start = clock.now
            try manager.connect(uuid: uuid, [Connection(path: "", target: "127.0.0.2:\(backendPort)")])
            let returned = clock.now
            while HTTPProbe.get(port: port, headers: ["Host: \(uuid)-bench.example.com"])?.status != 200 {
                if clock.now - returned > .seconds(10) { throw ValidationError("route \(uuid) never became visible") }
            }
            latencies.append(seconds(clock.now - returned))
            _ = start
            let connectCost = seconds(returned - start)
            if k == 0 { print(pad("connect call", 28) + format(connectCost) + " (first change)") }
        }
        print(pad("connect -> first routed", 28) + "median \(format(median(latencies)))  max \(format(latencies.max() ?? 0))  (n=\(changes))")

        let viaApache = load(port: port, host: "app0-bench.example.com")
        let direct = load(port: backendPort, address: "127.0.0.2", host: "127.0.0.2")
        print(pad("through Apache", 28) + "\(format1(viaApache.rate)) req/s, median \(format(viaApache.median))")
        print(pad("direct to backend", 28) + "\(format1(direct.rate)) req/s, median \(format(direct.median))")
        print(pad("Apache / direct", 28) + "\(format1(viaApache.rate / max(direct.rate, 1) * 100))% of direct throughput")

        // Side by side with Apache's own ceiling: plain ProxyPass to the same backend, with
        // keep-alive clients (ab -k), for a fast static backend (an Apache serving a file) and
        // for the python one.
        guard access("/usr/bin/ab", X_OK) == 0 else {
            print("ab (apache2-utils) is not installed: no comparison with plain ProxyPass")
            return
        }
        /// A private Apache `name` on `listen` with the event MPM, `modules` and `body`.
        func apache(_ name: String, listen: String, modules: [String], body: String) throws {
            try TestFiles.write(dir + "/\(name).conf", Self.apacheText(name, root: dir, listen: listen, modules: modules, body: body, user: geteuid() == 0))
        }
        let staticPort = HTTPProbe.freePort()
        try apache("static", listen: "127.0.0.3:\(staticPort)", modules: [], body: """
            DocumentRoot "\(dir)/www"
            <Directory "\(dir)/www">
            Require all granted
            </Directory>
            """)
        // Plain ProxyPass bare, and with the access log the router's standalone configuration
        // writes (the same LogFormat and CustomLog): what differs then is the routing alone.
        let plainPort = HTTPProbe.freePort()
        let loggedPort = HTTPProbe.freePort()
        func proxyPass(root: String, logged: Bool) -> String {
            """
            ProxyPreserveHost On
            ProxyPass "/static/" "http://127.0.0.3:\(staticPort)/"
            ProxyPass "/python/" "http://127.0.0.2:\(backendPort)/"
            \(Self.standaloneLogFormat)
            \(logged ? "CustomLog \"\(root)/access.log\" oo" : "")
            """
        }
        for (name, port) in [("plain", plainPort), ("logged", loggedPort)] {
            try apache(name, listen: "127.0.0.1:\(port)", modules: ["proxy", "proxy_http"], body: proxyPass(root: dir, logged: name == "logged"))
        }
        let peers = ["static", "plain", "logged"]
        for conf in peers {
            guard try ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/\(conf).conf", "-k", "start"]).status == 0 else {
                throw ValidationError("apache2 (\(conf)) did not start: \(TestFiles.read(dir + "/\(conf)-error.log") ?? "")")
            }
        }
        defer { for conf in peers { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/\(conf).conf", "-k", "stop"]) } }
        try manager.create(uuid: "fast", appUUID: "fast", gearName: "fast", namespace: "bench")
        try manager.connect(uuid: "fast", [Connection(path: "", target: "127.0.0.3:\(staticPort)")])
        for _ in 0..<200 where HTTPProbe.get(port: port, path: "/index.html", headers: ["Host: fast-bench.example.com"])?.status != 200 { usleep(20_000) }
        // The connect's graceful reload: old children finish their requests and leave.
        sleep(2)
        print("ab -k -c \(threads), \(format1(loadSeconds)) s each, GET /index.html (3 bytes), in this order, \(rounds) rounds:")
        print("  (plain: ProxyPass, no log; logged: ProxyPass with the router's access log line; routed: the router, standalone)")
        var ratios: [String: (plain: [Double], logged: [Double])] = [:]
        for round in 1...max(rounds, 1) {
            for (backend, routedHost, plainPath, directURL) in [
                ("static", "fast-bench.example.com", "/static/index.html", "http://127.0.0.3:\(staticPort)/index.html"),
                ("python", "app0-bench.example.com", "/python/index.html", "http://127.0.0.2:\(backendPort)/index.html"),
            ] {
                let direct = ab(directURL, host: nil)
                let plain = ab("http://127.0.0.1:\(plainPort)\(plainPath)", host: nil)
                let logged = ab("http://127.0.0.1:\(loggedPort)\(plainPath)", host: nil)
                let routed = ab("http://127.0.0.1:\(port)/index.html", host: routedHost)
                ratios[backend, default: ([], [])].plain.append(routed / max(plain, 1) * 100)
                ratios[backend, default: ([], [])].logged.append(routed / max(logged, 1) * 100)
                print(pad("  \(backend) #\(round)", 14) + "direct \(format1(direct)) req/s, plain \(format1(plain)), logged \(format1(logged)), routed \(format1(routed))"
                      + " = \(format1(routed / max(plain, 1) * 100))% of plain, \(format1(routed / max(logged, 1) * 100))% of logged")
            }
        }
        for backend in ["static", "python"] {
            guard let ratio = ratios[backend] else { continue }
            print(pad("  \(backend) median", 14) + "routed = \(format1(median(ratio.plain)))% of plain ProxyPass, \(format1(median(ratio.logged)))% of ProxyPass with the same access log")
        }

        guard instructions else { return }
        guard Callgrind.available else {
            print("valgrind is not installed: no instruction counts")
            return
        }
        // A gear with a path route too, as a python gear has (/health): a request under it is
        // looked up in routes.txt, any other is proxied from the name's record.
        try manager.create(uuid: "deep", appUUID: "deep", gearName: "deep", namespace: "bench")
        try manager.connect(uuid: "deep", [Connection(path: "", target: "127.0.0.3:\(staticPort)"), Connection(path: "/api", target: "127.0.0.3:\(staticPort)")])
        let callgrind = Callgrind(directory: dir + "/callgrind")
        print("apache2 -X under callgrind, user-space instructions per request (ab -k -c 2; \(callgrind.large) requests minus \(callgrind.small)), static backend:")
        let cgPort = HTTPProbe.freePort()
        func plainText(_ logged: Bool) -> (String) -> String {
            { root in Self.apacheText("httpd", root: root, listen: "127.0.0.1:\(cgPort)", modules: ["proxy", "proxy_http"], body: proxyPass(root: root, logged: logged), user: geteuid() == 0) }
        }
        func routedText(_ root: String) -> String {
            ApacheConfiguration.standalone(serverRoot: root, listen: "127.0.0.1", port: Int(cgPort), mapDirectory: root + "/maps",
                                           user: geteuid() == 0 ? "www-data" : nil)
        }
        func copyMaps(_ root: String) throws {
            guard try ProcessRunner.run(["/bin/cp", "-a", dir + "/maps", root + "/maps"]).status == 0 else { throw ValidationError("could not copy the maps") }
        }
        let counts: [(String, Double?)] = [
            ("plain ProxyPass", try callgrind.perRequest("plain", port: cgPort, url: "/static/index.html", host: nil, config: plainText(false))),
            ("ProxyPass, logged", try callgrind.perRequest("logged", port: cgPort, url: "/static/index.html", host: nil, config: plainText(true))),
            ("routed, root only", try callgrind.perRequest("routed-root", port: cgPort, url: "/index.html", host: "fast-bench.example.com",
                                                            prepare: copyMaps, config: routedText)),
            ("routed, path routes", try callgrind.perRequest("routed-paths", port: cgPort, url: "/index.html", host: "deep-bench.example.com",
                                                              prepare: copyMaps, config: routedText)),
            ("routed, to a path route", try callgrind.perRequest("routed-to-path", port: cgPort, url: "/api/index.html", host: "deep-bench.example.com",
                                                                  prepare: copyMaps, config: routedText)),
        ]
        let floor = counts[0].1 ?? 0
        for (name, count) in counts {
            guard let count else {
                print(pad("  \(name)", 26) + "failed (see \(callgrind.directory))")
                continue
            }
            print(pad("  \(name)", 26) + "\(Int(count.rounded())) instructions" + (floor > 0 ? " = \(format1(count / floor * 100))% of plain ProxyPass" : ""))
        }
    }

    /// A private Apache configuration `name` under `root` on `listen` with the event MPM,
    /// `modules` and `body`; `user`: run its children as www-data.
    static func apacheText(_ name: String, root: String, listen: String, modules: [String], body: String, user: Bool) -> String {
        let loads = (["mpm_event", "authz_core"] + modules).map { "LoadModule \($0)_module /usr/lib/apache2/modules/mod_\($0).so" }
        return """
            ServerRoot "\(root)"
            PidFile "\(root)/\(name).pid"
            ServerName localhost
            Listen \(listen)
            \(loads.joined(separator: "\n"))
            \(user ? "User www-data\nGroup www-data" : "")
            ErrorLog "\(root)/\(name)-error.log"
            \(body)
            """
    }

    /// The router's standalone LogFormat, for the peer that logs as it does.
    static var standaloneLogFormat: String {
        ApacheConfiguration.standalone(serverRoot: "/", listen: "127.0.0.1", port: 80, mapDirectory: "/")
            .split(separator: "\n").first { $0.hasPrefix("LogFormat ") }.map(String.init) ?? ""
    }

    /// Requests per second of `ab -k -c threads -t seconds` (0 when ab fails or any request failed).
    func ab(_ url: String, host: String?) -> Double {
        let arguments = ["/usr/bin/ab", "-q", "-k", "-c", "\(threads)", "-t", "\(Int(loadSeconds.rounded(.up)))", "-n", "10000000"]
            + (host.map { ["-H", "Host: \($0)"] } ?? []) + [url]
        guard let result = try? ProcessRunner.run(arguments), result.status == 0 else { return 0 }
        let lines = result.stdout.split(separator: "\n")
        let failed = lines.first { $0.hasPrefix("Failed requests:") }.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        let non2xx = lines.contains { $0.hasPrefix("Non-2xx responses:") }
        guard failed == 0, !non2xx, let rate = lines.first(where: { $0.hasPrefix("Requests per second:") })?
            .split(separator: " ").dropFirst(3).first.flatMap({ Double($0) }) else { return 0 }
        return rate
    }

    /// Sequential HTTP/1.0 GETs from `threads` threads for `seconds`.
    func load(port: UInt16, address: String = "127.0.0.1", host: String) -> (rate: Double, median: Double) {
        let results = Counter()
        let samples = SampleBox()
        let deadline = monotonic() + loadSeconds
        var workers: [pthread_t] = []
        for _ in 0..<threads {
            let worker = Unmanaged.passRetained(Worker {
                var local: [Double] = []
                while monotonic() < deadline {
                    let begin = monotonic()
                    if HTTPProbe.get(port: port, host: address, headers: ["Host: \(host)"])?.status == 200 {
                        local.append(monotonic() - begin)
                        _ = results.increment()
                    }
                }
                samples.add(local)
            })
            var thread = pthread_t()
            pthread_create(&thread, nil, { raw in
                Unmanaged<Worker>.fromOpaque(raw!).takeRetainedValue().body()
                return nil
            }, worker.toOpaque())
            workers.append(thread)
        }
        for thread in workers { pthread_join(thread, nil) }
        return (Double(results.value) / loadSeconds, median(samples.values))
    }
}

final class SampleBox: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var all: [Double] = []
    init() { pthread_mutex_init(&mutex, nil) }
    func add(_ values: [Double]) {
        pthread_mutex_lock(&mutex)
        all += values
        pthread_mutex_unlock(&mutex)
    }
    var values: [Double] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return all
    }
}

func monotonic() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
