import ArgumentParser
import Dispatch
import Logging
import MCollective
import NodeTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench agent --calls N`: `openshift echo` round trips through a private ActiveMQ, as an
/// MCollective client written in Swift (the project's STOMPClient, RubyMarshal and PSK) sends
/// them: direct requests to `/queue/mcollective.nodes` with `mc_identity`, replies on the
/// client's own reply queue, matched by requestid and checked (psk hash, statuscode 0, msg).
///
/// Three answerers share the broker: our `openshift-node run` (release build, sandbox), Ruby
/// `mcollectived` with the test bed's one-action echo agent, and a baseline reflector (this
/// executable in a child process) that answers every request with a precomputed reply. The
/// reflector goes through the same client, broker and STOMP code, so the node's median minus
/// the reflector's median is what the node itself adds (decode, checks, agent, encode).
struct AgentBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "echo round trips through ActiveMQ: openshift-node against Ruby mcollectived (calls/s, median, p99, RSS).")

    @Option(help: "Sequential calls per node; each concurrent client makes half as many.") var calls = 2000
    @Option(help: "Concurrent clients (separate STOMP connections, each with one call outstanding).") var clients = 4
    @Option(help: "Warm-up calls per node before measuring (not counted).") var warmup = 200
    @Option(help: "Seconds after which a call counts as lost.") var timeout = 10.0
    @Flag(name: .customLong("no-ruby"), help: "Leave out the Ruby mcollectived.") var noRuby = false
    @Option(help: "The requests' :ttl, seconds (the node remembers every requestid that long, against replays).") var ttl = 60

    /// Internal: run as the baseline reflector against the broker on this port.
    @Option(name: .customLong("reflector-port"), help: .hidden) var reflectorPort: Int?

    static let psk = "node-bench-psk"
    static let message = "hello from node-bench"
    static let reflectorIdentity = "reflector.bench"
    /// The requestid inside the reflector's precomputed reply; the client then matches by the
    /// `bench-id` header the reflector copies from the request.
    static let reflectorRequestID = String(repeating: "0", count: 32)

    func run() throws {
        if let reflectorPort {
            try Reflector.serve(port: reflectorPort)
            return
        }
        guard calls > 0, clients > 0, warmup >= 0, timeout > 0, ttl > 0 else { throw ValidationError("calls, clients, timeout and ttl must be positive") }
        guard ActiveMQ.isInstalled else { throw ValidationError("ActiveMQ is not installed (apt-get install --no-install-recommends activemq)") }
        let nodeExecutable = siblingPath("openshift-node")
        guard access(nodeExecutable, X_OK) == 0 else {
            throw ValidationError("\(nodeExecutable) is missing: swift build --product openshift-node -c release")
        }
        let withRuby = !noRuby
        if withRuby && access("/usr/sbin/mcollectived", X_OK) != 0 { throw ValidationError("/usr/sbin/mcollectived is not installed (or use --no-ruby)") }
        SignalCleanup.install()

        let work = TestFiles.temporaryDirectory("agent-bench")
        chmod(work, 0o755)
        let workCleanup = SignalCleanup.add { TestFiles.remove(work) }
        defer {
            TestFiles.remove(work)
            SignalCleanup.remove(workCleanup)
        }
        let clock = ContinuousClock()
        let started = clock.now
        let broker = try ActiveMQ.start()
        let brokerCleanup = SignalCleanup.add { broker.stop() }
        defer {
            broker.stop()
            SignalCleanup.remove(brokerCleanup)
        }
        let brokerReady = clock.now - started

        // The answerers, side by side on the broker.
        let cartridges = String(#filePath.split(separator: "/Sources/", omittingEmptySubsequences: false)[0]) + "/cartridges"
        let node = try startNode(executable: nodeExecutable, root: work + "/node", cartridges: cartridges, port: broker.port)
        defer { node.stop() }
        let ruby = withRuby ? try startRuby(directory: work + "/ruby", port: broker.port) : nil
        defer { ruby?.stop() }
        let reflector = try Child(name: "reflector", argv: [selfExecutable(), "agent", "--reflector-port", "\(broker.port)"],
                                  log: work + "/reflector.log")
        defer { reflector.stop() }

        // The client connections: one sequential, `clients` concurrent.
        let pid = getpid()
        let ttl = self.ttl
        let all = (0...clients).map { BenchClient(port: broker.port, replyQueue: "/queue/mcollective.reply.bench_\(pid)_\($0)", ttl: ttl) }
        // On a signal, the connections go first, so that the broker's end is not reported as lost.
        let clientsCleanup = SignalCleanup.add {
            all.forEach { $0.close() }
            usleep(100_000)
        }
        defer {
            all.forEach { $0.close() }
            SignalCleanup.remove(clientsCleanup)
        }
        try blocking { for client in all { try await client.open() } }
        let sequential = all[0]
        let concurrent = Array(all.dropFirst())

        var targets: [(label: String, identity: String, child: Child)] = [
            ("reflector (baseline)", Self.reflectorIdentity, reflector),
            ("openshift-node", "swiftnode.bench", node),
        ]
        if let ruby { targets.append(("ruby mcollectived", "rubynode.bench", ruby)) }
        var idle: [String: Memory] = [:]
        for target in targets {
            try waitUntilAnswering(target.identity, child: target.child, client: sequential)
            idle[target.label] = target.child.memory()
        }
        let perClient = max(1, calls / 2)
        print("node-bench agent: ActiveMQ on 127.0.0.1:\(broker.port) (up in \(format(brokerReady))), all answerers ready after "
            + "\(format(clock.now - started)); echo msg=\"\(Self.message)\" as direct requests (psk, ttl \(ttl))")
        print("\(calls) sequential calls, \(clients) clients x \(perClient) concurrent calls, \(warmup) warm-up calls per node; "
            + "round trip = client SEND -> broker -> node -> broker -> reply decoded and checked;")
        print("cpu/call = user+system CPU of the answering process (/proc/<pid>/stat) per call; idle RSS = after start-up and one call")
        print(pad("node", 22) + pad("mode", 14) + pad("calls/s", 10) + pad("median", 10) + pad("p99", 10) + pad("max", 10)
            + pad("cpu/call", 10) + "lost")

        var medians: [String: Double] = [:]
        var concurrentMedians: [String: Double] = [:]
        var rates: [String: (Double, Double)] = [:]
        var cpuPerCall: [String: Double] = [:]
        for target in targets {
            let identity = target.identity
            let timeout = self.timeout
            let warm = warmup
            let calls = self.calls
            try blocking {
                for _ in 0..<warm { _ = try await sequential.call(identity, timeout: timeout) }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for client in concurrent { group.addTask { for _ in 0..<min(warm, 20) { _ = try await client.call(identity, timeout: timeout) } } }
                    try await group.waitForAll()
                }
            }
            all.forEach { $0.resetCounters() }
            var cpu = target.child.cpuSeconds()
            var one = try blocking { try await Self.measure(clients: [sequential], callsEach: calls, identity: identity, timeout: timeout) }
            one.cpu = target.child.cpuSeconds() - cpu
            print(pad(target.label, 22) + pad("sequential", 14) + one.row)
            cpu = target.child.cpuSeconds()
            var many = try blocking { try await Self.measure(clients: concurrent, callsEach: perClient, identity: identity, timeout: timeout) }
            many.cpu = target.child.cpuSeconds() - cpu
            print(pad("", 22) + pad("\(concurrent.count) clients", 14) + many.row)
            for problem in (one.problems + many.problems).prefix(3) { print(pad("", 22) + "! " + problem) }
            let strays = all.reduce(0) { $0 + $1.strays }
            if strays > 0 { print(pad("", 22) + "! \(strays) replies matched no outstanding call") }
            medians[target.label] = one.medianLatency
            concurrentMedians[target.label] = many.medianLatency
            rates[target.label] = (one.rate, many.rate)
            cpuPerCall[target.label] = (one.cpu + many.cpu) / Double(max(one.samples.count + one.lost + many.samples.count + many.lost, 1))
        }

        print("memory: RSS = file-backed (program text, libraries) + anonymous; PSS shares each page among the processes")
        print("  mapping it; private = pages no other process maps. The kernel maps file pages 64 KB around each fault.")
        print(pad("memory", 22) + pad("idle RSS", 10) + pad("file", 9) + pad("anon", 9) + pad("PSS", 9) + pad("private", 10)
            + pad("after load", 12) + "peak (VmHWM)")
        for target in targets {
            let after = target.child.memory()
            let before = idle[target.label] ?? Memory(rss: 0, hwm: 0)
            print(pad(target.label, 22) + pad(megabytes(before.rss), 10) + pad(megabytes(before.file), 9) + pad(megabytes(before.anon), 9)
                + pad(megabytes(before.pss), 9) + pad(megabytes(before.privateKB), 10) + pad(megabytes(after.rss), 12) + megabytes(after.hwm))
        }

        let baseline = medians[targets[0].label] ?? 0
        let baselineConcurrent = concurrentMedians[targets[0].label] ?? 0
        let baselineCPU = cpuPerCall[targets[0].label] ?? 0
        print("added by the node: median round trip minus the reflector's, and CPU per call minus the reflector's (the reflector")
        print("  is a separate Swift process on the same STOMP client that answers every request with a precomputed reply, so")
        print("  client, broker and network costs cancel out; on a busy machine the latency difference is within the noise)")
        for target in targets.dropFirst() {
            let added = (medians[target.label] ?? 0) - baseline
            let addedConcurrent = (concurrentMedians[target.label] ?? 0) - baselineConcurrent
            let addedCPU = (cpuPerCall[target.label] ?? 0) - baselineCPU
            print(pad("  " + target.label, 22) + "latency sequential \(milliseconds(added)), \(concurrent.count) clients "
                + "\(milliseconds(addedConcurrent)); CPU \(milliseconds(addedCPU)) per call")
        }
        if withRuby, let swift = rates["openshift-node"], let rubyRates = rates["ruby mcollectived"], rubyRates.0 > 0, rubyRates.1 > 0 {
            print("openshift-node / mcollectived: \(format1(swift.0 / rubyRates.0))x calls/s sequential, "
                + "\(format1(swift.1 / rubyRates.1))x with \(concurrent.count) clients")
        }
        for target in targets where !target.child.isRunning {
            print("! \(target.label) is no longer running: \(target.child.logTail())")
        }
    }

    // MARK: Measurement

    struct Measurement: Sendable {
        var samples: [Double]
        var elapsed: Double
        var lost: Int
        var problems: [String]
        /// CPU time (user + system) the answering process used meanwhile.
        var cpu: Double = 0

        var rate: Double { Double(samples.count) / max(elapsed, 1e-9) }
        var medianLatency: Double { median(samples) }
        var row: String {
            let sorted = samples.sorted()
            let p99 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.99).rounded(.up)) - 1)]
            return pad(format1(rate), 10) + pad(milliseconds(medianLatency), 10) + pad(milliseconds(p99), 10)
                + pad(milliseconds(sorted.last ?? 0), 10) + pad(milliseconds(cpu / Double(max(samples.count + lost, 1))), 10) + "\(lost)"
        }
    }

    /// Every client makes `callsEach` calls one after the other, all clients at once.
    static func measure(clients: [BenchClient], callsEach: Int, identity: String, timeout: Double) async throws -> Measurement {
        let start = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: ([Double], [String]).self) { group in
            for client in clients {
                group.addTask {
                    var samples: [Double] = []
                    var problems: [String] = []
                    samples.reserveCapacity(callsEach)
                    for _ in 0..<callsEach {
                        switch try await client.call(identity, timeout: timeout) {
                        case .ok(let seconds): samples.append(seconds)
                        case .failed(let problem): problems.append(problem)
                        }
                    }
                    return (samples, problems)
                }
            }
            var all: [([Double], [String])] = []
            for try await result in group { all.append(result) }
            return all
        }
        let elapsed = seconds(ContinuousClock.now - start)
        let problems = results.flatMap(\.1)
        return Measurement(samples: results.flatMap(\.0), elapsed: elapsed, lost: problems.count, problems: problems)
    }

    /// Calls until the node answers (it may still be connecting), up to 60 s.
    func waitUntilAnswering(_ identity: String, child: Child, client: BenchClient) throws {
        let deadline = ContinuousClock.now + .seconds(60)
        var last = ""
        while ContinuousClock.now < deadline {
            guard child.isRunning else { throw BenchFailure("\(child.name) exited during start-up:\n\(child.logTail())") }
            switch try blocking({ try await client.call(identity, timeout: 1) }) {
            case .ok: return
            case .failed(let problem): last = problem
            }
        }
        throw BenchFailure("\(identity) did not answer within 60 s (\(last)):\n\(child.logTail())")
    }

    // MARK: The answerers

    func startNode(executable: String, root: String, cartridges: String, port: Int) throws -> Child {
        try TestFiles.write(root + "/etc/mcollective/server.cfg", MCollectiveConfig.text(identity: "swiftnode.bench", port: port, psk: Self.psk))
        // The default configuration file of the sandbox, so the command line is the plain one.
        try TestFiles.write(root + "/etc/openshift/node.conf", """
            FRONTEND_WAKE_PORT=0
            OPENSHIFT_FRONTEND_HTTP_PLUGINS=
            AGENT_TRANSPORTS=mcollective

            """)
        return try Child(name: "openshift-node", argv: [executable, "run", "--root", root, "--cartridge-base-path", cartridges],
                         log: root + "/daemon.log")
    }

    /// mcollectived with the test bed's `openshift` agent (one action, echo) and its DDL.
    func startRuby(directory: String, port: Int) throws -> Child {
        try Self.startRuby(directory: directory, port: port, identity: "rubynode.bench")
    }

    /// The test bed's `openshift` agent for mcollectived (one action, echo) and its DDL, in `lib`.
    static func writeEchoAgent(into lib: String) throws {
        try TestFiles.write(lib + "/mcollective/agent/openshift.rb", """
            module MCollective
              module Agent
                # Minimal stand-in for the OpenShift node agent: one "echo" action.
                class Openshift < RPC::Agent
                  action "echo" do
                    validate :msg, String
                    reply[:msg] = request[:msg]
                    reply[:time] = Time.now.utc.to_i
                  end
                end
              end
            end

            """)
        try TestFiles.write(lib + "/mcollective/agent/openshift.ddl", """
            metadata :name        => "openshift",
                     :description => "Test stand-in for the OpenShift node agent",
                     :author      => "testbed",
                     :license     => "ASL 2.0",
                     :version     => "0.1",
                     :url         => "https://example.invalid/",
                     :timeout     => 30

            action "echo", :description => "Echo the msg argument back" do
              display :always

              input :msg,
                    :prompt      => "Message",
                    :description => "Text to echo back",
                    :type        => :string,
                    :validation  => '.*',
                    :optional    => false,
                    :maxlength   => 0

              output :msg,
                     :description => "The echoed text",
                     :display_as  => "Message"

              output :time,
                     :description => "Server time (unix seconds)",
                     :display_as  => "Time"
            end

            """)
    }

    static func startRuby(directory: String, port: Int, identity: String, extra: [String] = []) throws -> Child {
        try writeEchoAgent(into: directory + "/lib")
        try TestFiles.write(directory + "/facts.yaml", "---\ntestbed: \"true\"\n")
        try TestFiles.write(directory + "/classes.txt", "")
        try TestFiles.write(directory + "/server.cfg", MCollectiveConfig.text(identity: identity, port: port, psk: Self.psk, extra: [
            "libdir = \(directory)/lib", "logfile = \(directory)/mcollectived.log", "loglevel = warn", "daemonize = 0",
            "registerinterval = 0", "factsource = yaml", "plugin.yaml = \(directory)/facts.yaml",
            "classesfile = \(directory)/classes.txt",
        ] + extra))
        return try Child(name: "mcollectived", argv: ["/usr/sbin/mcollectived", "--config", directory + "/server.cfg"],
                         log: directory + "/mcollectived.out", extraLog: directory + "/mcollectived.log")
    }
}

func milliseconds(_ seconds: Double) -> String {
    let ms = seconds * 1000
    if abs(ms) >= 100 { return format1(ms) + " ms" }
    let hundredths = Int((ms * 100).rounded())
    let sign = hundredths < 0 ? "-" : ""
    return "\(sign)\(abs(hundredths) / 100).\(String(abs(hundredths) % 100 + 100).dropFirst()) ms"
}

/// A failure while running (reported without the usage text a ValidationError brings).
struct BenchFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func megabytes(_ kilobytes: Int) -> String { "\(format1(Double(kilobytes) / 1024)) MB" }

func selfExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    return n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}

// MARK: - Child processes

struct Memory: Sendable {
    /// VmRSS and VmHWM, kB.
    var rss: Int
    var hwm: Int
    /// RSS split: file-backed pages (program text and data, shared libraries) and anonymous (heap,
    /// stacks, written data), kB.
    var file = 0
    var anon = 0
    /// From smaps_rollup, kB: the proportional share (each shared page divided by the processes
    /// mapping it) and the pages no other process maps, what the process alone costs the machine.
    var pss = 0
    var privateKB = 0
}

/// A child process with its output in files; stopped with SIGTERM (SIGKILL after 10 s), also
/// from the signal handler when the bench itself is interrupted.
final class Child: Sendable {
    let name: String
    let pid: pid_t
    let log: String
    let extraLog: String?
    private let status = Mutex<Int32?>(nil)
    private let cleanup: Int

    init(name: String, argv: [String], log: String, extraLog: String? = nil) throws {
        self.name = name
        self.log = log
        self.extraLog = extraLog
        let pid = try ProcessRunner.spawn(argv, stdout: log, stderr: log + ".err")
        self.pid = pid
        cleanup = SignalCleanup.add {
            kill(pid, SIGKILL)
            _ = ProcessRunner.wait(pid)
        }
    }

    var isRunning: Bool {
        status.withLock { status in
            if status != nil { return false }
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = raw
                return false
            }
            return true
        }
    }

    func memory() -> Memory {
        let text = TestFiles.read("/proc/\(pid)/status") ?? ""
        func field(_ name: String) -> Int {
            let line = text.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        let rollup = TestFiles.read("/proc/\(pid)/smaps_rollup") ?? ""
        func rolled(_ name: String) -> Int {
            let line = rollup.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
        }
        return Memory(rss: field("VmRSS"), hwm: field("VmHWM"), file: field("RssFile"), anon: field("RssAnon"),
                      pss: rolled("Pss"), privateKB: rolled("Private_Clean") + rolled("Private_Dirty"))
    }

    /// User + system CPU seconds so far, from /proc/<pid>/stat.
    func cpuSeconds() -> Double {
        let text = TestFiles.read("/proc/\(pid)/stat") ?? ""
        guard let close = text.lastIndex(of: ")") else { return 0 }
        // After "pid (comm)": state is field 3, utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    func logTail(lines: Int = 12) -> String {
        let text = [log + ".err", log, extraLog].compactMap { $0 }.map { TestFiles.read($0) ?? "" }.joined(separator: "\n")
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }

    /// SIGTERM, SIGKILL after `grace` seconds; idempotent.
    func stop(grace: Double = 10) {
        status.withLock { status in
            guard status == nil else { return }
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .milliseconds(Int64(grace * 1000))
            var raw: Int32 = 0
            while waitpid(pid, &raw, WNOHANG) == 0 {
                if ContinuousClock.now >= deadline {
                    kill(pid, SIGKILL)
                    waitpid(pid, &raw, 0)
                    break
                }
                usleep(10_000)
            }
            status = raw
        }
        SignalCleanup.remove(cleanup)
    }
}

/// What to undo when the bench gets SIGINT, SIGTERM or SIGHUP (defers do not run then).
enum SignalCleanup {
    static let actions = Mutex<(next: Int, all: [Int: @Sendable () -> Void])>((0, [:]))
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []

    static func install() {
        for number in [SIGINT, SIGTERM, SIGHUP] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                let all = actions.withLock { $0.all.sorted { $0.key > $1.key }.map(\.value) }
                for action in all { action() }
                exit(128 + number)
            }
            source.resume()
            sources.append(source)
        }
    }

    static func add(_ action: @escaping @Sendable () -> Void) -> Int {
        actions.withLock {
            $0.next += 1
            $0.all[$0.next] = action
            return $0.next
        }
    }

    static func remove(_ id: Int) { _ = actions.withLock { $0.all.removeValue(forKey: id) } }
}

/// Runs async work from the synchronous `run()`, on the global executor, and waits for it.
func blocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        do { box.result = .success(try await body()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try box.result!.get()
}

/// Written by the task before it signals, read by the waiting thread after.
final class ResultBox<T: Sendable>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

// MARK: - The MCollective client

enum CallOutcome: Sendable {
    /// The round trip, in seconds.
    case ok(Double)
    case failed(String)
}

/// One outstanding call: the reply (or the failure) and the task waiting for it.
final class PendingCall: Sendable {
    let deadline: ContinuousClock.Instant
    private let state = Mutex<(outcome: CallOutcome?, waiter: CheckedContinuation<CallOutcome, Never>?)>((nil, nil))

    init(deadline: ContinuousClock.Instant) { self.deadline = deadline }

    /// The first outcome wins; later ones are ignored.
    func fulfill(_ outcome: CallOutcome) {
        let waiter = state.withLock { state -> CheckedContinuation<CallOutcome, Never>? in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: outcome)
    }

    func wait() async -> CallOutcome {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> CallOutcome? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// An MCollective client on its own STOMP connection and reply queue, one call at a time.
final class BenchClient: Sendable {
    let replyQueue: String
    let stomp: STOMPClient
    private let pending = Mutex<[String: (call: PendingCall, sent: ContinuousClock.Instant)]>([:])
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let strayCount = Mutex(0)
    /// The inner body is the same for every call (it holds no requestid), and so is its hash.
    private let inner: [UInt8]
    private let innerHash: String
    private let ttl: Int

    init(port: Int, replyQueue: String, ttl: Int) {
        self.replyQueue = replyQueue
        self.ttl = ttl
        var logger = Logger(label: "node-bench.client")
        logger.logLevel = .warning
        stomp = STOMPClient(configuration: .init(hosts: [(host: "127.0.0.1", port: port)], login: "mcollective", passcode: "marionette"),
                            subscriptions: [STOMPSubscription(destination: replyQueue, id: "")], logger: logger)
        let data: RubyHash = [.symbol("msg"): .str(AgentBench.message), .symbol("process_results"): .bool(true)]
        let body: RubyHash = [.symbol("agent"): .str("openshift"), .symbol("action"): .str("echo"), .symbol("caller"): .str("uid=0"),
                              .symbol("data"): .hash(data)]
        inner = RubyMarshal.dump(.hash(body))
        innerHash = PSK.hash(body: inner, psk: AgentBench.psk)
    }

    var strays: Int { strayCount.withLock { $0 } }
    func resetCounters() { strayCount.withLock { $0 = 0 } }

    func open() async throws {
        let reader = Task { [self] in await stomp.run { frame in self.receive(frame) } }
        let watchdog = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(100))
                let now = ContinuousClock.now
                let expired = pending.withLock { pending in
                    let gone = pending.filter { $0.value.call.deadline <= now }
                    for key in gone.keys { pending.removeValue(forKey: key) }
                    return gone.values.map(\.call)
                }
                for call in expired { call.fulfill(.failed("no reply within the timeout")) }
            }
        }
        tasks.withLock { $0 += [reader, watchdog] }
        guard await stomp.waitUntilSubscribed(timeout: 20) else {
            throw BenchFailure("the bench client could not subscribe to \(replyQueue)")
        }
    }

    func close() {
        tasks.withLock { tasks in
            tasks.forEach { $0.cancel() }
            tasks = []
        }
    }

    /// One `openshift echo` to `identity`; the outcome once the reply is checked.
    func call(_ identity: String, timeout: Double) async throws -> CallOutcome {
        let requestID = Self.newRequestID()
        let now = Int(time(nil))
        let filter: RubyHash = [.str("fact"): .array([]), .str("cf_class"): .array([]), .str("agent"): .array([.str("openshift")]),
                                .str("identity"): .array([.str(identity)]), .str("compound"): .array([])]
        let envelope: RubyHash = [
            .symbol("body"): .string(inner, .binary),
            .symbol("senderid"): .str("bench.client"),
            .symbol("requestid"): .string(Array(requestID.utf8), .usASCII),
            .symbol("filter"): .hash(filter),
            .symbol("collective"): .str("mcollective"),
            .symbol("agent"): .str("openshift"),
            .symbol("callerid"): .str("uid=0"),
            .symbol("ttl"): .int(ttl),
            .symbol("msgtime"): .int(now),
            .symbol("hash"): .string(Array(innerHash.utf8), .usASCII),
        ]
        let bytes = RubyMarshal.dump(.hash(envelope))
        let millis = now * 1000
        var headers: [(name: String, value: String)] = [
            ("timestamp", "\(millis)"), ("expires", "\(millis + (ttl + 10) * 1000)"), ("reply-to", replyQueue),
            ("mc_identity", identity), ("mc_sender", "bench.client"),
        ]
        if identity == AgentBench.reflectorIdentity { headers.append(("bench-id", requestID)) }
        let call = PendingCall(deadline: .now + .milliseconds(Int64(timeout * 1000)))
        let sent = ContinuousClock.now
        pending.withLock { $0[requestID] = (call, sent) }
        do {
            try await stomp.send(destination: "/queue/mcollective.nodes", headers: headers, body: bytes)
        } catch {
            _ = pending.withLock { $0.removeValue(forKey: requestID) }
            return .failed("send failed: \(error)")
        }
        return await call.wait()
    }

    /// A reply: decode, check the psk hash, match by requestid, check statuscode and msg.
    func receive(_ frame: STOMPFrame) {
        let arrived = ContinuousClock.now
        guard let envelope = (try? RubyMarshal.load(frame.body))?.dictionary,
              var requestID = envelope[symbol: "requestid"]?.stringValue else {
            strayCount.withLock { $0 += 1 }
            return
        }
        if requestID == AgentBench.reflectorRequestID, let id = frame[header: "bench-id"] { requestID = id }
        guard let entry = pending.withLock({ $0.removeValue(forKey: requestID) }) else {
            strayCount.withLock { $0 += 1 }
            return
        }
        let sender = envelope[symbol: "senderid"]?.stringValue ?? "?"
        guard let body = envelope[symbol: "body"]?.bytes, let hash = envelope[symbol: "hash"]?.stringValue,
              PSK.hash(body: body, psk: AgentBench.psk) == hash else {
            return entry.call.fulfill(.failed("\(sender): reply without a valid psk hash"))
        }
        guard let reply = (try? RubyMarshal.load(body))?.dictionary else {
            return entry.call.fulfill(.failed("\(sender): undecodable reply body"))
        }
        let status = reply[symbol: "statuscode"]?.intValue
        let message = reply[symbol: "data"]?.dictionary?[symbol: "msg"]?.stringValue
        guard status == 0, message == AgentBench.message else {
            return entry.call.fulfill(.failed("\(sender): statuscode \(status.map(String.init) ?? "?") "
                + "(\(reply[symbol: "statusmsg"]?.stringValue ?? "")), msg \(message ?? "nil")"))
        }
        entry.call.fulfill(.ok(seconds(arrived - entry.sent)))
    }

    static func newRequestID() -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for var word in [UInt64.random(in: .min ... .max), UInt64.random(in: .min ... .max)] {
            for _ in 0..<16 {
                out.append(digits[Int(word & 0xF)])
                word >>= 4
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: - The baseline reflector

/// A trivial MCollective "node": subscribed like a node to its directed queue, it answers every
/// request at once with one precomputed, correctly signed echo reply, copying only the
/// request's `bench-id` header; no decoding, no checks, no agent. Runs until killed.
enum Reflector {
    static func serve(port: Int) throws {
        var logger = Logger(label: "node-bench.reflector")
        logger.logLevel = .warning
        let client = STOMPClient(
            configuration: .init(hosts: [(host: "127.0.0.1", port: port)], login: "mcollective", passcode: "marionette"),
            subscriptions: [STOMPSubscription(destination: "/queue/mcollective.nodes", id: "mcollective_directed_to_identity",
                                              headers: ["selector": "mc_identity = '\(AgentBench.reflectorIdentity)'"])],
            logger: logger)
        let now = Int(time(nil))
        let data: RubyHash = [.symbol("msg"): .str(AgentBench.message), .symbol("time"): .int(now)]
        let body = RubyMarshal.dump(.hash([.symbol("statuscode"): .int(0), .symbol("statusmsg"): .str("OK"), .symbol("data"): .hash(data)]))
        let reply = RubyMarshal.dump(.hash([
            .symbol("senderid"): .str(AgentBench.reflectorIdentity),
            .symbol("requestid"): .string(Array(AgentBench.reflectorRequestID.utf8), .usASCII),
            .symbol("senderagent"): .str("openshift"),
            .symbol("msgtime"): .int(now),
            .symbol("body"): .string(body, .binary),
            .symbol("hash"): .string(Array(PSK.hash(body: body, psk: AgentBench.psk).utf8), .usASCII),
        ]))
        let headers: [(name: String, value: String)] = [
            ("timestamp", "\(now * 1000)"), ("expires", "\(now * 1000 + 70_000)"), ("mc_sender", AgentBench.reflectorIdentity),
        ]
        try blocking {
            // A task per request, as the node's server does, so that replies to concurrent
            // clients do not wait for each other's write.
            await client.run { frame in
                guard let replyTo = frame[header: "reply-to"] else { return }
                let all = headers + [("bench-id", frame[header: "bench-id"] ?? "")]
                Task { try? await client.send(destination: replyTo, headers: all, body: reply) }
            }
        }
    }
}
