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
        let manager = FrontendManager(stateDirectory: dir + "/state", plugins: [ApacheFrontend(directory: dir + "/maps")],
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
