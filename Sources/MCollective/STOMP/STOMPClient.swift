import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A destination the client subscribes to after every (re)connect, with auto-ack.
public struct STOMPSubscription: Sendable, Hashable {
    public var destination: String
    /// The subscription id (sent as `id`; required by STOMP 1.1, accepted by ActiveMQ in 1.0).
    /// Empty: no `id` header, like the Ruby server in STOMP 1.0.
    public var id: String
    /// Extra SUBSCRIBE headers, e.g. `["selector": "mc_identity = 'node1'"]`.
    public var headers: [String: String]

    public init(destination: String, id: String, headers: [String: String] = [:]) {
        self.destination = destination
        self.id = id
        self.headers = headers
    }
}

public struct STOMPClientConfiguration: Sendable {
    /// Brokers, tried in turn (the next one after every failed or lost connection).
    public var hosts: [(host: String, port: Int)]
    public var login: String
    public var passcode: String
    /// Per broker (same order as `hosts`) when the pool's brokers have credentials of their own.
    public var credentials: [(login: String, passcode: String)]? = nil
    /// Try the brokers in a random order, drawn again for every round through them.
    public var randomize = false
    /// The back-off grows by this factor after every failed attempt (1: constant).
    public var backOffMultiplier = 2
    /// The CONNECT `host` header.
    public var virtualHost: String = "mcollective"
    /// Seconds. nil (or 0): STOMP 1.0 without heart-beats, like the Ruby server by default.
    /// Otherwise `accept-version:1.1,1.0` and `heart-beat:<i*1000+500>,<i*1000-500>`.
    public var heartbeatInterval: Int? = nil
    /// Seconds to wait before reconnecting; multiplied by `backOffMultiplier` after every failed
    /// attempt, up to `maxBackoff`.
    public var initialBackoff: Double = 0.01
    public var maxBackoff: Double = 30
    /// Largest frame accepted from the broker (head and body).
    public var maxFrameBytes: Int = 16 << 20
    /// Seconds allowed for the TCP connect, and again for the broker's answer to CONNECT.
    public var connectTimeout: Double = 10

    public init(hosts: [(host: String, port: Int)], login: String, passcode: String) {
        self.hosts = hosts
        self.login = login
        self.passcode = passcode
    }
}

/// A STOMP 1.0/1.1 client for an MCollective server: it stays connected to one of the brokers,
/// keeps its subscriptions, hands over every MESSAGE frame and sends frames.
///
/// `run` owns the connection (one at a time; call it from one task only) and reconnects with
/// exponential back-off; `send`, `isConnected` and `waitUntilSubscribed` may be called from
/// any task meanwhile.
///
/// The pipeline of a connection is
/// `[IdleStateHandler, HeartbeatHandler]` (only once heart-beats are negotiated),
/// `ByteToMessageHandler(STOMPFrameDecoder)`, `ConnectionHandler` (encodes outgoing frames,
/// hands incoming ones to `run` through an `AsyncThrowingStream`).
public final class STOMPClient: Sendable {
    public let configuration: STOMPClientConfiguration
    public let subscriptions: [STOMPSubscription]
    private let eventLoopGroup: any EventLoopGroup
    private let logger: Logger

    private struct State {
        /// The channel, once the broker has answered CONNECTED, until the connection ends.
        var channel: (any Channel)?
        /// Whether the broker confirmed the subscriptions (RECEIPT for the last SUBSCRIBE).
        var subscribed = false
    }

    private let state = Mutex(State())
    /// The index in `configuration.hosts` of the broker being connected to (or last connected).
    private let connecting = Mutex(0)

    /// The broker this client is connected to (or trying), as `host:port`.
    public var currentBroker: String {
        let index = connecting.withLock { $0 }
        return "\(configuration.hosts[index].host):\(configuration.hosts[index].port)"
    }

    /// The credentials for the broker being connected to.
    private var credentials: (login: String, passcode: String) {
        let index = connecting.withLock { $0 }
        if let all = configuration.credentials, index < all.count { return all[index] }
        return (configuration.login, configuration.passcode)
    }

    public init(configuration: STOMPClientConfiguration, subscriptions: [STOMPSubscription],
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        precondition(!configuration.hosts.isEmpty, "STOMPClientConfiguration.hosts is empty")
        self.configuration = configuration
        self.subscriptions = subscriptions
        self.eventLoopGroup = eventLoopGroup
        self.logger = logger
    }

    public var isConnected: Bool { state.withLock { $0.channel != nil } }

    /// Connects, subscribes, and delivers each MESSAGE frame to `onMessage` until the calling
    /// task is cancelled. On connection loss or a failed connect it logs, waits the back-off,
    /// reconnects (to the next host) and resubscribes. It returns only on cancellation, after
    /// sending DISCONNECT on a live connection.
    ///
    /// `onMessage` is called sequentially, one frame at a time, from this task. Frames that
    /// arrive meanwhile are buffered without limit (reading and heart-beats go on), so it
    /// should hand long work off rather than do it inline.
    public func run(onMessage: @escaping @Sendable (STOMPFrame) async -> Void) async {
        var failures = 0
        var hostIndex = 0
        var order = Array(configuration.hosts.indices)
        while !Task.isCancelled {
            if hostIndex % order.count == 0 && configuration.randomize { order.shuffle() }
            let chosen = order[hostIndex % order.count]
            let (host, port) = configuration.hosts[chosen]
            connecting.withLock { $0 = chosen }
            var logger = self.logger
            logger[metadataKey: "stomp.broker"] = "\(host):\(port)"
            var failure: (any Error)?
            do {
                try await runConnection(host: host, port: port, logger: logger, onMessage: onMessage)
            } catch {
                failure = error
            }
            let wasSubscribed = state.withLock { state in
                defer { state = State() }
                return state.subscribed
            }
            if Task.isCancelled { return }

            failures = wasSubscribed ? 0 : failures + 1
            let growth = pow(Double(max(configuration.backOffMultiplier, 1)), Double(min(max(failures - 1, 0), 60)))
            let delay = min(configuration.initialBackoff * growth, configuration.maxBackoff)
            let reason = failure.map { "\($0)" } ?? "\(STOMPError.connectionClosed)"
            let metadata: Logger.Metadata = ["stomp.retry_in": "\(delay)", "stomp.attempt": "\(failures)"]
            // A connection that worked and dropped is a warning (it is being re-established);
            // a failed connect, or an ERROR from the broker, is an error.
            let brokerError: Bool
            switch failure as? STOMPError {
            case .brokerError, .connectRefused: brokerError = true
            default: brokerError = false
            }
            let level: Logger.Level = wasSubscribed && !brokerError ? .warning : .error
            logger.log(level: level, "STOMP connection \(wasSubscribed ? "lost" : "failed"): \(reason)", metadata: metadata)
            hostIndex += 1
            do {
                try await Task.sleep(for: .milliseconds(Int64(delay * 1000)))
            } catch {
                return
            }
        }
    }

    /// Sends a SEND frame with `content-type: text/plain; charset=UTF-8` (unless `headers`
    /// has one) and `content-length`. Throws `STOMPError.notConnected` if not connected now.
    public func send(destination: String, headers: [(name: String, value: String)], body: [UInt8]) async throws {
        guard let channel = state.withLock({ $0.channel }) else { throw STOMPError.notConnected }
        var all: [(name: String, value: String)] = [("destination", destination)] + headers
        if !headers.contains(where: { $0.name == "content-type" }) {
            all.append(("content-type", "text/plain; charset=UTF-8"))
        }
        do {
            try await channel.writeAndFlush(STOMPFrame(command: "SEND", headers: all, body: body)).get()
        } catch ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed {
            throw STOMPError.notConnected
        }
    }

    /// Waits until connected and the broker has confirmed the subscriptions (the last SUBSCRIBE
    /// carries a `receipt`). False if that did not happen within `timeout` seconds.
    public func waitUntilSubscribed(timeout: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int64(timeout * 1000))
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.subscribed }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return state.withLock { $0.subscribed }
    }

    // MARK: - One connection

    /// Runs one connection from TCP connect to its end. Returns normally only on cancellation.
    private func runConnection(host: String, port: Int, logger: Logger,
                               onMessage: @Sendable (STOMPFrame) async -> Void) async throws {
        let (frames, continuation) = AsyncThrowingStream<STOMPFrame, any Error>.makeStream()
        let maxFrameBytes = configuration.maxFrameBytes
        let timeout = TimeAmount.milliseconds(Int64(configuration.connectTimeout * 1000))
        // Connected by us, close-on-exec (see TCPConnect), then handed to NIO.
        let socket = try await TCPConnect.connect(host: host, port: port, timeout: .milliseconds(Int64(configuration.connectTimeout * 1000)))
        let channel = try await ClientBootstrap(group: eventLoopGroup)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(ByteToMessageHandler(STOMPFrameDecoder(maxFrameBytes: maxFrameBytes)))
                    try pipeline.addHandler(ConnectionHandler(frames: continuation))
                }
            }
            .withConnectedSocket(socket).get()
        defer { channel.close(promise: nil) }
        var incoming = frames.makeAsyncIterator()

        // CONNECT, and the broker's answer.
        let connected = try await connect(channel, &incoming, timeout: timeout)
        let version = connected[header: "version"] ?? "1.0"
        let heartbeats = try await startHeartbeats(channel, connected: connected)

        // Subscriptions; the broker confirms the last one with a RECEIPT.
        let receipt = "subscribed-\(UInt32.random(in: 0...UInt32.max))"
        for (index, subscription) in subscriptions.enumerated() {
            var headers: [(name: String, value: String)] = [("destination", subscription.destination)]
            if !subscription.id.isEmpty { headers.append(("id", subscription.id)) }
            headers += subscription.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            var frame = STOMPFrame(command: "SUBSCRIBE", headers: headers)
            if index < subscriptions.count - 1 {
                channel.write(frame, promise: nil)
            } else {
                frame.headers.append(("receipt", receipt))
                try await channel.writeAndFlush(frame).get()
            }
        }
        state.withLock {
            $0.channel = channel
            $0.subscribed = subscriptions.isEmpty
        }
        logger.info("STOMP connected", metadata: [
            "stomp.version": "\(version)",
            "stomp.server": "\(connected[header: "server"] ?? "?")",
            "stomp.heartbeat_server": "\(connected[header: "heart-beat"] ?? "-")",
            "stomp.heartbeat_send_ms": "\(heartbeats.send)",
            "stomp.heartbeat_receive_timeout_ms": "\(heartbeats.receiveTimeout)",
            "stomp.subscriptions": "\(subscriptions.count)",
        ])

        while let frame = try await incoming.next() {
            switch frame.command {
            case "MESSAGE":
                await onMessage(frame)
            case "RECEIPT" where frame[header: "receipt-id"] == receipt:
                state.withLock { $0.subscribed = true }
                logger.debug("STOMP subscriptions confirmed")
            case "ERROR":
                throw STOMPError.brokerError(Self.errorText(frame))
            case "SKIPPED":
                // The decoder dropped a frame over the size limit; the connection goes on.
                logger.warning("STOMP frame over the size limit skipped", metadata: [
                    "stomp.command": "\(frame[header: "command"] ?? "?")", "stomp.bytes": "\(frame[header: "bytes"] ?? "?")",
                    "stomp.limit": "\(frame[header: "limit"] ?? "?")"])
            default:
                logger.debug("STOMP frame ignored", metadata: ["stomp.command": "\(frame.command)"])
            }
        }
        guard Task.isCancelled else { throw STOMPError.connectionClosed }
        state.withLock { $0.channel = nil }
        try? await channel.writeAndFlush(STOMPFrame(command: "DISCONNECT")).get()
        logger.info("STOMP disconnected")
    }

    /// Sends CONNECT and waits for CONNECTED; an ERROR answer is `connectRefused`.
    private func connect(_ channel: any Channel, _ incoming: inout AsyncThrowingStream<STOMPFrame, any Error>.Iterator,
                         timeout: TimeAmount) async throws -> STOMPFrame {
        var headers: [(name: String, value: String)] = [
            ("accept-version", heartbeatInterval == nil ? "1.0" : "1.1,1.0"),
            ("host", configuration.virtualHost),
            ("login", credentials.login),
            ("passcode", credentials.passcode),
        ]
        if let interval = heartbeatInterval {
            headers.append(("heart-beat", "\(interval * 1000 + 500),\(interval * 1000 - 500)"))
        }
        let seconds = configuration.connectTimeout
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            channel.pipeline.fireErrorCaught(STOMPError.connectFailed("no answer to CONNECT within \(seconds) s"))
        }
        defer { timer.cancel() }
        try await channel.writeAndFlush(STOMPFrame(command: "CONNECT", headers: headers)).get()
        guard let answer = try await incoming.next() else {
            if Task.isCancelled { throw CancellationError() }
            throw STOMPError.connectFailed("connection closed before CONNECTED")
        }
        switch answer.command {
        case "CONNECTED": return answer
        case "ERROR": throw STOMPError.connectRefused(reason: Self.errorText(answer))
        default: throw STOMPError.connectFailed("expected CONNECTED, got \(answer.command)")
        }
    }

    /// The configured interval, if heart-beats are on.
    private var heartbeatInterval: Int? {
        configuration.heartbeatInterval.flatMap { $0 > 0 ? $0 : nil }
    }

    /// Negotiates heart-beats from our CONNECT and the broker's CONNECTED (STOMP 1.1 only) and
    /// installs the handlers that send and check them. Returns the intervals in ms (0: off).
    private func startHeartbeats(_ channel: any Channel, connected: STOMPFrame) async throws -> (send: Int, receiveTimeout: Int) {
        guard let interval = heartbeatInterval, (connected[header: "version"] ?? "1.0") != "1.0",
              let server = connected[header: "heart-beat"]?.split(separator: ",").compactMap({ Int($0.filter { $0 != " " }) }),
              server.count == 2 else { return (0, 0) }
        let (cx, cy) = (interval * 1000 + 500, interval * 1000 - 500)
        let (sx, sy) = (server[0], server[1])
        let send = cx > 0 && sy > 0 ? max(cx, sy) : 0
        let receiveTimeout = cy > 0 && sx > 0 ? 2 * max(cy, sx) : 0
        guard send > 0 || receiveTimeout > 0 else { return (0, 0) }
        try await channel.eventLoop.submit {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(HeartbeatHandler(receiveTimeout: receiveTimeout), position: .first)
            try pipeline.addHandler(IdleStateHandler(readTimeout: receiveTimeout > 0 ? .milliseconds(Int64(receiveTimeout)) : nil,
                                                     writeTimeout: send > 0 ? .milliseconds(Int64(send)) : nil),
                                    position: .first)
        }.get()
        return (send, receiveTimeout)
    }

    /// The `message` header of an ERROR frame, else the start of its body.
    static func errorText(_ frame: STOMPFrame) -> String {
        if let message = frame[header: "message"], !message.isEmpty { return message }
        let body = String(decoding: frame.body.prefix(300), as: UTF8.self)
        return body.split(separator: "\n").first.map(String.init) ?? "ERROR frame without message"
    }
}

// MARK: - Channel handlers

/// Encodes outgoing frames (escaping headers once the broker said STOMP 1.1, except in
/// CONNECT) and hands incoming frames, errors and the end of the connection to the stream
/// that `STOMPClient.run` reads.
private final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = STOMPFrame
    typealias OutboundIn = STOMPFrame
    typealias OutboundOut = ByteBuffer

    private let frames: AsyncThrowingStream<STOMPFrame, any Error>.Continuation
    private var escapeHeaders = false

    init(frames: AsyncThrowingStream<STOMPFrame, any Error>.Continuation) {
        self.frames = frames
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.command == "CONNECTED", let version = frame[header: "version"], version != "1.0" {
            escapeHeaders = true
        }
        frames.yield(frame)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let frame = unwrapOutboundIn(data)
        let bytes = frame.encoded(escapeHeaders: escapeHeaders && frame.command != "CONNECT")
        context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        frames.finish(throwing: error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        frames.finish()
        context.fireChannelInactive()
    }
}

/// Turns the `IdleStateHandler`'s events into heart-beats: a newline when nothing was written
/// for the send interval, and a dead connection when nothing was read for the timeout.
private final class HeartbeatHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let receiveTimeout: Int

    init(receiveTimeout: Int) {
        self.receiveTimeout = receiveTimeout
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event as? IdleStateHandler.IdleStateEvent {
        case .write:
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: STOMPFrame.heartbeat)), promise: nil)
        case .read:
            context.fireErrorCaught(STOMPError.heartbeatTimeout(milliseconds: receiveTimeout))
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }
}
