import Logging
import NodeTestSupport
import Synchronization
import Testing

@testable import MCollective

/// Log lines kept in memory, for checking what a client reported.
private final class LogCapture: Sendable {
    struct Line: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let store = Mutex<[Line]>([])

    var lines: [Line] { store.withLock { $0 } }

    func count(_ message: String) -> Int { lines.filter { $0.message.contains(message) }.count }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label) { _ in Handler(capture: self) }
        logger.logLevel = .debug
        return logger
    }

    func append(_ line: Line) { store.withLock { $0.append(line) } }

    struct Handler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        var metadataProvider: Logger.MetadataProvider?

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            capture.append(Line(level: event.level, message: "\(event.message)", metadata: all.mapValues { "\($0)" }))
        }
    }
}

/// Frames received by a client's `run`.
private final class Inbox: Sendable {
    private let store = Mutex<[STOMPFrame]>([])
    var frames: [STOMPFrame] { store.withLock { $0 } }
    func append(_ frame: STOMPFrame) { store.withLock { $0.append(frame) } }
    func first(where predicate: (STOMPFrame) -> Bool) -> STOMPFrame? { frames.first(where: predicate) }
}

/// A client running in a task of its own, with its inbox and its log.
private struct RunningClient {
    let client: STOMPClient
    let inbox = Inbox()
    let log = LogCapture()
    let task: Task<Void, Never>

    init(port: Int, subscriptions: [STOMPSubscription] = [], password: String = "marionette",
         configure: (inout STOMPClientConfiguration) -> Void = { _ in }) {
        var configuration = STOMPClientConfiguration(hosts: [("127.0.0.1", port)], login: "mcollective", passcode: password)
        configuration.maxBackoff = 0.5
        configure(&configuration)
        let inbox = self.inbox
        client = STOMPClient(configuration: configuration, subscriptions: subscriptions, logger: log.logger("stomp-test"))
        let client = self.client
        task = Task { await client.run { inbox.append($0) } }
    }

    /// Whether the client is subscribed within `seconds`; if not, prints what it logged, so that
    /// a failure says whether it never connected, was refused, or waited for a receipt.
    func subscribed(within seconds: Double) async -> Bool {
        if await client.waitUntilSubscribed(timeout: seconds) { return true }
        for line in log.lines { print("stomp-test \(line.level): \(line.message) \(line.metadata)") }
        return false
    }

    /// Cancels `run` and waits until it has returned.
    func stop() async {
        task.cancel()
        await task.value
    }
}

@Suite("STOMP client against ActiveMQ", .serialized, .enabled(if: ActiveMQ.isInstalled || Prerequisites.inCI))
struct STOMPClientTests {
    static let binaryBody: [UInt8] = [0x04, 0x08, 0x7b, 0x06, 0x3a, 0x06, 0x61, 0x69, 0x00, 0x00, 0x5b, 0x00, 0x0a, 0xff, 0x00]

    init() throws {
        try #require(ActiveMQ.isInstalled, "ActiveMQ is not installed (apt-get install --no-install-recommends activemq)")
    }

    fileprivate static func node(_ port: Int, identity: String = "node1", configure: (inout STOMPClientConfiguration) -> Void = { _ in }) -> RunningClient {
        RunningClient(port: port, subscriptions: [
            STOMPSubscription(destination: "/topic/mcollective.openshift.agent", id: "/topic/mcollective.openshift.agent"),
            STOMPSubscription(destination: "/queue/mcollective.nodes", id: "mcollective_directed_to_identity",
                              headers: ["selector": "mc_identity = '\(identity)'"]),
        ], configure: configure)
    }

    @Test(.timeLimit(.minutes(8)))
    func topicAndQueueWithSelector() async throws {
        let started = ContinuousClock.now
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        print("ActiveMQ on port \(broker.port) accepting after \(ContinuousClock.now - started)")

        let node = Self.node(broker.port)
        let mco = RunningClient(port: broker.port, subscriptions: [
            STOMPSubscription(destination: "/queue/mcollective.reply.client1_1.1", id: "reply"),
        ])
        // Generous: on a loaded machine the broker's JVM can take tens of seconds to settle, and a
        // test process that starts 60 suites at once has been seen to run nothing for over a minute.
        #expect(await node.subscribed(within: 180))
        #expect(await mco.subscribed(within: 180))
        #expect(node.client.isConnected)

        // A broadcast on the agent topic, with a binary body.
        try await mco.client.send(destination: "/topic/mcollective.openshift.agent",
                                  headers: [("reply-to", "/queue/mcollective.reply.client1_1.1"), ("mc_sender", "client1")],
                                  body: Self.binaryBody)
        // Direct requests: one for another node (sent first), then one for this node.
        try await mco.client.send(destination: "/queue/mcollective.nodes", headers: [("mc_identity", "node2")], body: Array("for node2".utf8))
        try await mco.client.send(destination: "/queue/mcollective.nodes", headers: [("mc_identity", "node1")], body: Array("for node1\0!".utf8))

        #expect(await eventually(within: 10) { node.inbox.frames.count >= 2 })
        let broadcast = try #require(node.inbox.first { $0[header: "destination"] == "/topic/mcollective.openshift.agent" })
        #expect(broadcast.body == Self.binaryBody)
        #expect(broadcast[header: "reply-to"] == "/queue/mcollective.reply.client1_1.1")
        #expect(broadcast[header: "mc_sender"] == "client1")
        #expect(broadcast[header: "content-type"] == "text/plain; charset=UTF-8")
        #expect(broadcast[header: "message-id"] != nil)
        let direct = try #require(node.inbox.first { $0[header: "destination"] == "/queue/mcollective.nodes" })
        #expect(direct.body == Array("for node1\0!".utf8))
        // The message for node2 went first on the same connection: had the selector let it
        // through, it would have been delivered before the one for node1.
        #expect(!node.inbox.frames.contains { $0.body == Array("for node2".utf8) })
        #expect(node.inbox.frames.count == 2)

        // The node replies to reply-to; the client gets it.
        try await node.client.send(destination: try #require(broadcast[header: "reply-to"]), headers: [], body: Self.binaryBody + [1])
        #expect(await eventually(within: 10) { !mco.inbox.frames.isEmpty })
        #expect(mco.inbox.frames.first?.body == Self.binaryBody + [1])

        await node.stop()
        await mco.stop()
        #expect(!node.client.isConnected)
        #expect(node.log.count("STOMP disconnected") == 1)
        await #expect(throws: STOMPError.notConnected) {
            try await node.client.send(destination: "/topic/mcollective.openshift.agent", headers: [], body: [])
        }
    }

    @Test(.timeLimit(.minutes(8)))
    func aFrameOverTheLimitIsSkippedAndTheConnectionStays() async throws {
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        let node = Self.node(broker.port) { $0.maxFrameBytes = 4096 }
        let mco = RunningClient(port: broker.port)
        #expect(await node.subscribed(within: 180))
        #expect(await eventually(within: 60) { mco.client.isConnected })
        // A broadcast too large for the node, then one it takes: the second arrives, on the same connection.
        try await mco.client.send(destination: "/topic/mcollective.openshift.agent", headers: [], body: [UInt8](repeating: 0x41, count: 10_000))
        try await mco.client.send(destination: "/topic/mcollective.openshift.agent", headers: [], body: Array("after".utf8))
        #expect(await eventually(within: 20) { node.inbox.frames.contains { $0.body == Array("after".utf8) } })
        #expect(!node.inbox.frames.contains { $0.body.count == 10_000 }, "the large one was not delivered")
        #expect(node.log.count("STOMP frame over the size limit skipped") == 1)
        #expect(node.log.count("STOMP connected") == 1, "never reconnected: \(node.log.lines.map(\.message))")
        await node.stop()
        await mco.stop()
    }

    @Test(.timeLimit(.minutes(8)))
    func wrongPasswordIsRetriedAndLogged() async throws {
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        let node = RunningClient(port: broker.port, subscriptions: [
            STOMPSubscription(destination: "/topic/mcollective.openshift.agent", id: "a"),
        ], password: "wrong")
        #expect(await eventually(within: 20) { node.log.count("STOMP connection failed") >= 3 })
        let failure = try #require(node.log.lines.first { $0.message.contains("STOMP connection failed") })
        #expect(failure.level == .error)
        // ActiveMQ: "User name [mcollective] or password is invalid."
        #expect(failure.message.contains("refused"), "\(failure.message)")
        #expect(failure.message.contains("password is invalid"), "\(failure.message)")
        #expect(failure.metadata["stomp.broker"] == "127.0.0.1:\(broker.port)")
        #expect(!node.client.isConnected)
        #expect(!(await node.client.waitUntilSubscribed(timeout: 0.2)))
        await node.stop()
    }

    @Test(.timeLimit(.minutes(8)))
    func reconnectsAndResubscribesAfterTheBrokerRestarts() async throws {
        var broker = try ActiveMQ.start()
        defer { broker.stop() }
        let port = broker.port
        let node = Self.node(port)
        let mco = RunningClient(port: port)
        #expect(await node.subscribed(within: 120))
        #expect(await mco.subscribed(within: 120))
        try await mco.client.send(destination: "/queue/mcollective.nodes", headers: [("mc_identity", "node1")], body: [1, 0, 1])
        #expect(await eventually(within: 10) { node.inbox.frames.count == 1 })

        broker.stop()
        #expect(await eventually(within: 20) { !node.client.isConnected && !mco.client.isConnected })
        await #expect(throws: STOMPError.notConnected) {
            try await mco.client.send(destination: "/topic/mcollective.openshift.agent", headers: [], body: [])
        }
        let restarted = ContinuousClock.now
        broker = try ActiveMQ.start(port: port)
        #expect(await node.subscribed(within: 120))
        #expect(await mco.subscribed(within: 120))
        print("reconnected and resubscribed \(ContinuousClock.now - restarted) after the new broker was launched")

        try await mco.client.send(destination: "/topic/mcollective.openshift.agent", headers: [], body: Self.binaryBody)
        try await mco.client.send(destination: "/queue/mcollective.nodes", headers: [("mc_identity", "node1")], body: [2, 0, 2])
        #expect(await eventually(within: 10) { node.inbox.frames.count == 3 })
        #expect(node.inbox.frames.map(\.body) == [[1, 0, 1], Self.binaryBody, [2, 0, 2]])
        #expect(node.log.count("STOMP connection lost") >= 1)
        #expect(node.log.count("STOMP connected") >= 2)
        await node.stop()
        await mco.stop()
    }

    @Test(.timeLimit(.minutes(8)))
    func heartbeatsKeepAnIdleConnectionAlive() async throws {
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        // 2 s: CONNECT says heart-beat:2500,1500. (1 s works too, but leaves a CPU-starved test
        // machine only 1 s before the client gives up on a broker that beats every 500 ms.)
        let node = Self.node(broker.port) { $0.heartbeatInterval = 2 }
        #expect(await node.subscribed(within: 120))
        let connected = try #require(node.log.lines.first { $0.message == "STOMP connected" })
        #expect(connected.metadata["stomp.version"] == "1.1")
        let send = Int(connected.metadata["stomp.heartbeat_send_ms"] ?? "") ?? 0
        let receive = Int(connected.metadata["stomp.heartbeat_receive_timeout_ms"] ?? "") ?? 0
        print("heart-beats negotiated with ActiveMQ (CONNECTED heart-beat:\(connected.metadata["stomp.heartbeat_server"] ?? "?")): "
              + "send every \(send) ms, broker silent for \(receive) ms = dead")
        #expect(send >= 2500, "heart-beat negotiated: \(connected.metadata)")
        #expect(receive > 0 && receive <= 6000, "heart-beat negotiated: \(connected.metadata)")

        // Idle for several intervals: without our heart-beats the broker would drop us, and
        // without its heart-beats we would give up on it after `receive` ms.
        try await Task.sleep(for: .seconds(7))
        #expect(node.client.isConnected)
        #expect(node.log.count("STOMP connected") == 1)
        #expect(node.log.count("STOMP connection lost") == 0, "\(node.log.lines.map(\.message))")

        // And it still works (headers escaped/unescaped under STOMP 1.1).
        let mco = RunningClient(port: broker.port) { $0.heartbeatInterval = 2 }
        #expect(await mco.subscribed(within: 120))
        try await mco.client.send(destination: "/queue/mcollective.nodes",
                                  headers: [("mc_identity", "node1"), ("x-note", "a:b\\c")], body: Self.binaryBody)
        #expect(await eventually(within: 10) { node.inbox.frames.count == 1 })
        #expect(node.inbox.frames.first?.body == Self.binaryBody)
        #expect(node.inbox.frames.first?[header: "x-note"] == "a:b\\c")
        await mco.stop()
        await node.stop()
    }

    @Test(.timeLimit(.minutes(8)))
    func aSilentBrokerIsDetectedByHeartbeatsAndReconnected() async throws {
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        let node = Self.node(broker.port) {
            $0.heartbeatInterval = 1
            $0.connectTimeout = 2
        }
        #expect(await node.subscribed(within: 120))
        broker.pause()
        // The TCP connection stays up; only the missing heart-beats tell.
        #expect(await eventually(within: 20) { node.log.count("STOMP connection lost") >= 1 })
        broker.resume()
        let lost = try #require(node.log.lines.first { $0.message.contains("STOMP connection lost") })
        #expect(lost.message.contains("heart-beat"), "\(lost.message)")
        #expect(await node.subscribed(within: 120))
        let mco = RunningClient(port: broker.port)
        #expect(await mco.subscribed(within: 120))
        try await mco.client.send(destination: "/queue/mcollective.nodes", headers: [("mc_identity", "node1")], body: [0])
        #expect(await eventually(within: 10) { node.inbox.frames.count == 1 })
        await mco.stop()
        await node.stop()
    }

    @Test(.timeLimit(.minutes(8)))
    func brokerErrorOnAnEstablishedConnectionRestartsIt() async throws {
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        // Not authorized by the broker's configuration: it answers the SUBSCRIBE with ERROR.
        let node = RunningClient(port: broker.port, subscriptions: [
            STOMPSubscription(destination: "/topic/forbidden.agent", id: "forbidden"),
        ])
        #expect(await eventually(within: 20) { node.log.count("STOMP connected") >= 2 })
        let failure = try #require(node.log.lines.first { $0.message.contains("STOMP connection failed") })
        print("ActiveMQ's ERROR: \(failure.message)")
        #expect(failure.message.contains("broker sent ERROR"), "\(failure.message)")
        #expect(failure.message.contains("forbidden"), "\(failure.message)")
        #expect(!(await node.client.waitUntilSubscribed(timeout: 0.2)))
        await node.stop()
    }
}

@Suite("STOMP client without a broker")
struct STOMPClientOfflineTests {
    @Test func sendWhileNotConnectedThrows() async {
        let client = STOMPClient(configuration: .init(hosts: [("127.0.0.1", 1)], login: "u", passcode: "p"),
                                 subscriptions: [], logger: Logger(label: "test"))
        #expect(!client.isConnected)
        await #expect(throws: STOMPError.notConnected) { try await client.send(destination: "/queue/x", headers: [], body: []) }
        #expect(!(await client.waitUntilSubscribed(timeout: 0.05)))
    }

    @Test func connectionRefusedIsRetriedWithBackoffUntilCancelled() async {
        // Port 1 (tcpmux): nothing listens there, so every connect is refused at once. A "free"
        // port could be taken by a parallel test's server between the check and the connect.
        let port = 1
        let log = LogCapture()
        var configuration = STOMPClientConfiguration(hosts: [("127.0.0.1", port)], login: "u", passcode: "p")
        configuration.initialBackoff = 0.01
        configuration.maxBackoff = 0.08
        let client = STOMPClient(configuration: configuration, subscriptions: [], logger: log.logger("test"))
        let task = Task { await client.run { _ in } }
        // Generous: in a full parallel run on 2 cores, blocking tests can hold both cooperative
        // threads for a minute (a CI-like run saw 5 of 6 retries in 60 s); a client that stopped
        // retrying would never get there.
        #expect(await eventually(within: 300) { log.count("STOMP connection failed") >= 6 })
        task.cancel()
        await task.value
        let delays = log.lines.filter { $0.message.contains("STOMP connection failed") }.prefix(6).compactMap { $0.metadata["stomp.retry_in"] }
        #expect(delays == ["0.01", "0.02", "0.04", "0.08", "0.08", "0.08"])
    }
}
