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
            let loads = (["mpm_event", "authz_core"] + modules).map { "LoadModule \($0)_module /usr/lib/apache2/modules/mod_\($0).so" }
            try TestFiles.write(dir + "/\(name).conf", """
                ServerRoot "\(dir)"
                PidFile "\(dir)/\(name).pid"
                ServerName localhost
                Listen \(listen)
                \(loads.joined(separator: "\n"))
                \(geteuid() == 0 ? "User www-data\nGroup www-data" : "")
                ErrorLog "\(dir)/\(name)-error.log"
                \(body)
                """)
        }
        let staticPort = HTTPProbe.freePort()
        try apache("static", listen: "127.0.0.3:\(staticPort)", modules: [], body: """
            DocumentRoot "\(dir)/www"
            <Directory "\(dir)/www">
            Require all granted
            </Directory>
            """)
        let plainPort = HTTPProbe.freePort()
        try apache("plain", listen: "127.0.0.1:\(plainPort)", modules: ["proxy", "proxy_http"], body: """
            ProxyPreserveHost On
            ProxyPass "/static/" "http://127.0.0.3:\(staticPort)/"
            ProxyPass "/python/" "http://127.0.0.2:\(backendPort)/"
            """)
        for conf in ["static", "plain"] {
            guard try ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/\(conf).conf", "-k", "start"]).status == 0 else {
                throw ValidationError("apache2 (\(conf)) did not start: \(TestFiles.read(dir + "/\(conf)-error.log") ?? "")")
            }
        }
        defer { for conf in ["static", "plain"] { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", dir + "/\(conf).conf", "-k", "stop"]) } }
        try manager.create(uuid: "fast", appUUID: "fast", gearName: "fast", namespace: "bench")
        try manager.connect(uuid: "fast", [Connection(path: "", target: "127.0.0.3:\(staticPort)")])
        for _ in 0..<200 where HTTPProbe.get(port: port, path: "/index.html", headers: ["Host: fast-bench.example.com"])?.status != 200 { usleep(20_000) }
        // The connect's graceful reload: old children finish their requests and leave.
        sleep(2)
        print("ab -k -c \(threads), \(format1(loadSeconds)) s each, GET /index.html (3 bytes), in this order, twice:")
        for round in 1...2 {
            for (backend, routedHost, plainPath, directURL) in [
                ("static", "fast-bench.example.com", "/static/index.html", "http://127.0.0.3:\(staticPort)/index.html"),
                ("python", "app0-bench.example.com", "/python/index.html", "http://127.0.0.2:\(backendPort)/index.html"),
            ] {
                let direct = ab(directURL, host: nil)
                let plain = ab("http://127.0.0.1:\(plainPort)\(plainPath)", host: nil)
                let routed = ab("http://127.0.0.1:\(port)/index.html", host: routedHost)
                print(pad("  \(backend) #\(round)", 14) + "direct \(format1(direct)) req/s, plain ProxyPass \(format1(plain)), routed \(format1(routed))"
                      + " = \(format1(routed / max(plain, 1) * 100))% of ProxyPass")
            }
        }
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
