import Agent
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// The node's MCollective server: one STOMP connection (reconnecting), the activemq connector's
/// subscriptions, and the request pipeline. Requests are processed concurrently, at most
/// `maxInFlight` at once; further frames wait, in arrival order, in the STOMP client's buffer
/// (which keeps reading, so heart-beats flow) instead of getting a task or thread each.
public final class MCollectiveServer: Sendable {
    public let processor: RequestProcessor
    let client: STOMPClient
    let slots: AsyncSlots
    let logger: Logger

    public init(processor: RequestProcessor, maxInFlight: Int = 64, logger: Logger) {
        let configuration = processor.configuration
        self.processor = processor
        self.logger = logger
        slots = AsyncSlots(maxInFlight)
        var stomp = STOMPClientConfiguration(hosts: configuration.hosts.map { (host: $0.host, port: $0.port) },
                                             login: configuration.hosts.first?.user ?? "",
                                             passcode: configuration.hosts.first?.password ?? "")
        stomp.heartbeatInterval = configuration.heartbeatInterval
        stomp.maxFrameBytes = configuration.maxMessageBytes
        stomp.credentials = configuration.hosts.map { (login: $0.user, passcode: $0.password) }
        stomp.randomize = configuration.reconnect.randomize
        stomp.initialBackoff = configuration.reconnect.initialDelay
        stomp.maxBackoff = configuration.reconnect.maxDelay
        stomp.backOffMultiplier = configuration.reconnect.exponential ? configuration.reconnect.multiplier : 1
        stomp.connectTimeout = configuration.reconnect.connectTimeout
        client = STOMPClient(configuration: stomp, subscriptions: Self.subscriptions(configuration, agents: processor.agentNames),
                             logger: logger)
    }

    /// `/topic/<c>.<agent>.agent` for every agent in every collective, and the directed queue
    /// with this node's selector.
    static func subscriptions(_ configuration: ServerConfiguration, agents: [String]) -> [STOMPSubscription] {
        var subscriptions: [STOMPSubscription] = []
        for collective in configuration.collectives {
            if configuration.directAddressing {
                subscriptions.append(STOMPSubscription(destination: "/queue/\(collective).nodes", id: "\(collective)_directed_to_identity",
                                                       headers: ["selector": "mc_identity = '\(configuration.identity)'"]))
            }
            for agent in agents {
                let destination = "/topic/\(collective).\(agent).agent"
                subscriptions.append(STOMPSubscription(destination: destination, id: destination, headers: [:]))
            }
        }
        return subscriptions
    }

    public var isConnected: Bool { client.isConnected }

    public func waitUntilSubscribed(timeout: Double) async -> Bool { await client.waitUntilSubscribed(timeout: timeout) }

    /// Runs until the task is cancelled.
    public func run() async {
        let identity = processor.configuration.identity
        logger.notice("mcollective connector starting", metadata: [
            "identity": "\(identity)",
            "brokers": "\(processor.configuration.hosts.map { "\($0.host):\($0.port)" }.joined(separator: ","))",
            "collectives": "\(processor.configuration.collectives.joined(separator: ","))",
        ])
        await client.run { [self] frame in
            await slots.acquire()
            Task { [self] in
                defer { slots.release() }
                await handle(frame)
            }
        }
    }

    func handle(_ frame: STOMPFrame) async {
        let now = Int(Date().timeIntervalSince1970)
        guard case .reply(let reply) = await processor.process(body: frame.body, replyTo: frame[header: "reply-to"], now: now) else {
            return
        }
        let millis = Int64(Date().timeIntervalSince1970 * 1000)
        do {
            try await client.send(destination: reply.destination, headers: [
                (name: "timestamp", value: String(millis)),
                (name: "expires", value: String(millis + 70_000)),
                (name: "mc_sender", value: processor.configuration.identity),
            ], body: reply.body)
        } catch {
            logger.warning("reply lost", metadata: ["destination": "\(reply.destination)", "error": "\(error)"])
        }
    }
}

/// A counting semaphore for async code: `acquire` suspends while all slots are taken.
final class AsyncSlots: Sendable {
    struct State {
        var free: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    let state: Mutex<State>

    init(_ count: Int) { state = Mutex(State(free: max(1, count))) }

    func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let granted = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.free += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
