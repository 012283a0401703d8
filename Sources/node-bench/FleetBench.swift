import ArgumentParser
import Foundation
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench fleet --nodes 10 --nodes 50`: a fleet on one machine and one broker. For each
/// size N, N sandbox `openshift-node` daemons, then (on the same broker, in the same run) N Ruby
/// `mcollectived` with the test bed's one-action echo agent; each fleet is measured the way an
/// admin meets it, with the real `mco`: broadcast discovery (`mco ping`, time until the last
/// node's pong), a broadcast `mco rpc openshift echo` (its "Finished processing N / N hosts in"
/// time, discovery excluded), and every daemon's RSS.
struct FleetBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet", abstract: "N nodes on one broker against N mcollectived: broadcast discovery and rpc times, RSS.")

    @Option(help: "Fleet sizes (repeat the option).") var nodes: [Int] = [10, 50]
    @Option(help: "Broadcasts measured per fleet (the median is reported).") var rounds = 5
    @Flag(name: .customLong("no-ruby"), help: "Leave out the Ruby mcollectived fleet.") var noRuby = false

    struct Figures {
        var ping: [Double] = []
        var rpc: [Double] = []
        var rss: [Int] = []
        var pss: [Int] = []
        var answered = 0
    }

    func run() throws {
        guard ActiveMQ.isInstalled else { throw ValidationError("ActiveMQ is not installed") }
        guard access("/usr/bin/mco", X_OK) == 0 else { throw ValidationError("mco is not installed (mcollective-client)") }
        let node = siblingPath("openshift-node")
        guard access(node, X_OK) == 0 else { throw ValidationError("\(node) is missing: swift build --product openshift-node -c release") }
        if !noRuby && access("/usr/sbin/mcollectived", X_OK) != 0 { throw ValidationError("/usr/sbin/mcollectived is not installed (or --no-ruby)") }
        SignalCleanup.install()
        let work = TestFiles.temporaryDirectory("fleet-bench")
        chmod(work, 0o755)
        let workCleanup = SignalCleanup.add { TestFiles.remove(work) }
        defer {
            TestFiles.remove(work)
            SignalCleanup.remove(workCleanup)
        }
        let broker = try ActiveMQ.start()
        let brokerCleanup = SignalCleanup.add { broker.stop() }
        defer {
            broker.stop()
            SignalCleanup.remove(brokerCleanup)
        }
        let cartridges = String(#filePath.split(separator: "/Sources/", omittingEmptySubsequences: false)[0]) + "/cartridges"
        print("node-bench fleet: ActiveMQ on 127.0.0.1:\(broker.port); per fleet: mco ping (time of the last pong) and "
            + "mco rpc openshift echo (Finished processing N / N hosts in), median of \(rounds); RSS and PSS after the broadcasts")
        print("(PSS total: the fleet's memory with the pages its members share, program text and libraries, counted once)")
        print(pad("fleet", 26) + pad("answered", 10) + pad("ping last", 12) + pad("rpc all", 12) + pad("RSS mean", 11) + pad("RSS total", 12)
            + "PSS total")
        for size in nodes where size > 0 {
            var results: [(String, Figures)] = []
            // The openshift-node fleet.
            let swiftClient = try clientConfig(work + "/client-swift-\(size)", port: broker.port, ddl: { lib in
                let install = try ProcessRunner.run([node, "ddl", "--install", lib])
                guard install.status == 0 else { throw BenchFailure("openshift-node ddl --install: \(install.stderr)") }
            })
            var swift: [Child] = []
            for index in 0..<size {
                let root = work + "/swift-\(size)-\(index)"
                try TestFiles.write(root + "/etc/mcollective/server.cfg",
                                    MCollectiveConfig.text(identity: "swift\(index).fleet", port: broker.port, psk: AgentBench.psk))
                try TestFiles.write(root + "/etc/openshift/node.conf", "FRONTEND_WAKE_PORT=0\nOPENSHIFT_FRONTEND_HTTP_PLUGINS=\nAGENT_TRANSPORTS=mcollective\n")
                swift.append(try Child(name: "openshift-node", argv: [node, "run", "--root", root, "--cartridge-base-path", cartridges],
                                       log: root + "/daemon.log"))
            }
            results.append(("openshift-node x \(size)", try measure(swift, client: swiftClient, size: size)))
            swift.forEach { $0.stop() }

            if !noRuby {
                let rubyClient = try clientConfig(work + "/client-ruby-\(size)", port: broker.port, ddl: AgentBench.writeEchoAgent(into:))
                var ruby: [Child] = []
                for index in 0..<size {
                    ruby.append(try AgentBench.startRuby(directory: work + "/ruby-\(size)-\(index)", port: broker.port, identity: "ruby\(index).fleet"))
                }
                results.append(("mcollectived x \(size)", try measure(ruby, client: rubyClient, size: size)))
                ruby.forEach { $0.stop() }
            }
            for (label, figures) in results {
                let total = figures.rss.reduce(0, +)
                print(pad(label, 26) + pad("\(figures.answered)/\(size)", 10) + pad(milliseconds(median(figures.ping)), 12)
                    + pad(milliseconds(median(figures.rpc)), 12) + pad(megabytes(total / max(figures.rss.count, 1)), 11)
                    + pad(megabytes(total), 12) + megabytes(figures.pss.reduce(0, +)))
            }
        }
    }

    /// A client directory with `client.cfg` and the openshift DDL its fleet answers to.
    func clientConfig(_ directory: String, port: Int, ddl: (String) throws -> Void) throws -> String {
        try ddl(directory + "/lib")
        let config = directory + "/client.cfg"
        try TestFiles.write(config, MCollectiveConfig.client(port: port, psk: AgentBench.psk, libdir: directory + "/lib"))
        return config
    }

    func mco(_ arguments: [String], config: String) throws -> ProcessRunner.Result {
        try ProcessRunner.run(["/usr/bin/mco"] + arguments + ["--config", config], environment: ["HOME": "/tmp", "PATH": "/usr/bin:/bin"])
    }

    /// Waits until every member answers a ping (up to 3 min), then measures.
    func measure(_ fleet: [Child], client: String, size: Int) throws -> Figures {
        var figures = Figures()
        let deadline = ContinuousClock.now + .seconds(180)
        var answered = 0
        while ContinuousClock.now < deadline {
            if let dead = fleet.first(where: { !$0.isRunning }) { throw BenchFailure("\(dead.name) exited:\n\(dead.logTail())") }
            answered = Set(try pongs(client).map(\.identity)).count
            if answered >= size { break }
        }
        figures.answered = answered
        guard answered >= size else { return figures }
        for _ in 0..<rounds {
            let times = try pongs(client).map(\.milliseconds)
            if times.count >= size, let last = times.max() { figures.ping.append(last / 1000) }
            let echo = try mco(["rpc", "openshift", "echo", "msg=fleet", "--dt", "2", "-t", "20", "--np"], config: client)
            // "Finished processing 50 / 50 hosts in 123.45 ms"
            if let line = echo.stdout.split(separator: "\n").first(where: { $0.contains("Finished processing") }),
               let parts = Optional(line.split(separator: " ")), let index = parts.firstIndex(of: "in"), index + 1 < parts.count,
               let value = Double(parts[index + 1]), parts.contains("\(size)") {
                figures.rpc.append(value / 1000)
            }
        }
        let memory = fleet.map { $0.memory() }
        figures.rss = memory.map(\.rss)
        figures.pss = memory.map(\.pss)
        return figures
    }

    /// `mco ping`'s replies: identity and time in ms.
    func pongs(_ client: String) throws -> [(identity: String, milliseconds: Double)] {
        try mco(["ping", "-t", "3"], config: client).stdout.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 2, fields[0].hasSuffix(".fleet"), fields[1].hasPrefix("time=") else { return nil }
            return (String(fields[0]), Double(fields[1].dropFirst(5)) ?? 0)
        }
    }
}
