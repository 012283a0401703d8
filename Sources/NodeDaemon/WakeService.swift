import Frontend
import Gears
import Logging
import NodeConfig
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Wakes idle gears on their first request.
///
/// Apache sends requests for an idle host name here (127.0.0.1:`FRONTEND_WAKE_PORT`). The
/// service finds the gear by the Host header (its fqdn or an alias, never a header a client could
/// forge to pick another gear), starts it, waits until its root route accepts connections, and
/// answers `307 Temporary Redirect` to the same URL: the client repeats the request, method and
/// body included, and Apache now routes it to the running gear. No fixed sleep; nothing is lost.
///
/// Any local user (every gear) can connect to the port, so no client can hold what others need:
/// request heads are read on SwiftNIO's event loops (an idle or slow client holds no thread), each
/// within `headTimeout` of connecting and at most `maxHeadBytes` (read 64 KiB at a time, so a
/// connection holds at most twice that); when `maxWaitingHeads` connections are still sending
/// their head, a new one evicts the oldest of them; at most `maxConnections` are open (one more
/// evicts the oldest still sending its head, or, when none is, is answered 503). Only looking the host up (file reads) and starting a gear run on worker threads
/// (`wakeThreads` of them); waiting for the gear's listener holds none, and concurrent requests
/// for one gear share one start. Every descriptor is close-on-exec.
///
/// A port that cannot be bound is logged, not fatal: the daemon's other work goes on and
/// idle gears answer 503 meanwhile.
public struct WakeService: Service {
    public static let headTimeout = TimeAmount.seconds(5)
    public static let maxHeadBytes = 64 << 10
    public static let maxWaitingHeads = 256
    public static let maxConnections = 512
    public static let wakeThreads = 16
    /// How long a started gear has to accept connections on its root route.
    public static let listenerTimeout = Duration.seconds(20)

    private let port: UInt16
    private let gears: GearManager
    private let frontend: FrontendManager
    private let logger: Logger
    /// Called once the port is listening, or was given up on (and logged).
    private let settled: @Sendable () -> Void

    public init(port: UInt16, gears: GearManager, frontend: FrontendManager, logger: Logger,
                settled: @escaping @Sendable () -> Void = {}) {
        self.settled = settled
        self.port = port
        self.gears = gears
        self.frontend = frontend
        self.logger = logger
    }

    public func run() async throws {
        let fd: Int32
        do {
            fd = try ListeningSocket.loopback(port: port)
        } catch {
            logger.error("idle gears will not be woken: \(error)")
            settled()
            try? await gracefulShutdown()
            return
        }
        let workers = NIOThreadPool(numberOfThreads: Self.wakeThreads)
        workers.start()
        let waker = Waker(gears: gears, frontend: frontend, workers: workers, logger: logger)
        let waiting = WaitingHeads(limit: Self.maxWaitingHeads)
        let listener = SocketListener(
            fd: fd, name: "wake", maxConnections: Self.maxConnections,
            rejection: WakeResponse(status: "503 Service Unavailable", body: "Too many requests are waiting; try again.\n").text,
            logger: logger, makeRoom: { waiting.evictOldest() }
        ) { socket in
            let ticket = waiting.admit()
            let channel = SocketListener.adoptIntoNIO(socket) {
                WakeConnection(waiting: waiting, ticket: ticket) { head in await waker.respond(to: head) }
            }
            channel.whenFailure { _ in waiting.remove(ticket) }
            return channel
        }
        logger.info("waking idle gears", metadata: ["listen": "127.0.0.1:\(port)"])
        settled()
        await listener.run()
        try? await workers.shutdownGracefully()
    }
}

/// The request head's parts the service uses.
struct WakeRequest: Sendable, Equatable {
    var target: String
    /// The Host header, lowercased, without a port; empty when there is none.
    var host: String

    init(head: String) {
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        target = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let hostLine = lines.dropFirst().first { $0.lowercased().hasPrefix("host:") }
        host = hostLine.map { $0.dropFirst(5).trimmed(while: { $0 == " " || $0 == "\t" }).lowercased() }
            .map { String($0.split(separator: ":").first ?? "") } ?? ""
    }
}

struct WakeResponse: Sendable {
    var status: String
    var headers: [String] = []
    var body: String

    var text: String {
        "HTTP/1.1 \(status)\r\n" + (headers + ["Content-Length: \(body.utf8.count)", "Connection: close", "Content-Type: text/plain"])
            .map { $0 + "\r\n" }.joined() + "\r\n" + body
    }
}

/// Finds the gear for a request, starts it (once, however many requests for it arrive
/// meanwhile) and waits for its listener.
final class Waker: Sendable {
    private let gears: GearManager
    private let frontend: FrontendManager
    private let workers: NIOThreadPool
    private let logger: Logger
    /// Starts in progress, by gear uuid.
    private let starts = Mutex<[String: Task<Bool, Never>]>([:])

    init(gears: GearManager, frontend: FrontendManager, workers: NIOThreadPool, logger: Logger) {
        self.gears = gears
        self.frontend = frontend
        self.workers = workers
        self.logger = logger
    }

    func respond(to head: String) async -> WakeResponse {
        let request = WakeRequest(head: head)
        let host = request.host
        let frontend = self.frontend
        let found = try? await workers.runIfActive {
            frontend.gear(serving: host)
        }
        guard let gear = found else {
            return WakeResponse(status: "404 Not Found", body: "No application is configured for this host name.\n")
        }
        guard await start(gear, host: host) else {
            return WakeResponse(status: "503 Service Unavailable", body: "This application could not be started.\n")
        }
        let location = request.target.hasPrefix("/") ? request.target : "/"
        return WakeResponse(status: "307 Temporary Redirect", headers: ["Location: \(location)", "Retry-After: 0"], body: "")
    }

    /// Whether the gear is started and its root route listens.
    private func start(_ gear: GearFrontend, host: String) async -> Bool {
        let task = starts.withLock { running in
            if let start = running[gear.uuid] { return start }
            let task = Task { [self] in
                defer { _ = starts.withLock { $0.removeValue(forKey: gear.uuid) } }
                if gear.idle {
                    logger.info("waking idle gear", metadata: ["gear.uuid": "\(gear.uuid)", "host": "\(host)"])
                    let gears = self.gears
                    do {
                        _ = try await workers.runIfActive { try gears.unidle(gear.uuid) }
                    } catch {
                        logger.warning("cannot wake gear", metadata: ["gear.uuid": "\(gear.uuid)", "error": "\(error)"])
                        return false
                    }
                }
                if let root = gear.connections.first(where: { $0.path.isEmpty && $0.isProxy }) {
                    await Self.waitForListener(root.target, timeout: WakeService.listenerTimeout)
                }
                return true
            }
            running[gear.uuid] = task
            return task
        }
        return await task.value
    }

    /// Waits (at most `timeout`) until `ip:port` accepts a connection, trying every 50 ms
    /// without holding a thread (non-blocking connects, checked after the pause).
    static func waitForListener(_ target: String, timeout: Duration) async {
        let hostPort = target.split(separator: "/").first.map(String.init) ?? target
        let parts = hostPort.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, String(parts[0]), &address.sin_addr) == 1 else { return }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { return }
            defer { close(fd) }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected == 0 { return }
            let pending = errno == EINPROGRESS
            do { try await Task.sleep(for: .milliseconds(50)) } catch { return }
            if pending {
                var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                var failure: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if poll(&writable, 1, 0) == 1, getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0, failure == 0 { return }
            }
        }
    }
}

/// The connections still sending their request head, oldest first, from the moment they are
/// accepted (a ticket each, before NIO has made a channel of them). One more than `limit` evicts
/// (closes) the oldest, and `evictOldest` makes room for a connection over the listener's limit:
/// a client that opens connections without sending can then never keep a real request out, even
/// when the accepts run ahead of the event loops (an evicted connection whose channel is not
/// active yet is closed as soon as it is).
final class WaitingHeads: Sendable {
    private struct State {
        var next = 0
        /// ticket -> its channel once active.
        var waiting: [Int: (any Channel)?] = [:]
        /// Evicted before their channel became active.
        var evictedEarly: Set<Int> = []
    }
    private let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = limit }

    /// A connection just accepted: its ticket.
    func admit() -> Int {
        let (ticket, evicted) = state.withLock { state -> (Int, (any Channel)?) in
            state.next += 1
            state.waiting[state.next] = .some(nil)
            return (state.next, state.waiting.count > limit ? Self.evictOldest(&state) : nil)
        }
        evicted?.close(promise: nil)
        return ticket
    }

    /// Evicts the oldest waiting connection; false when none is waiting.
    func evictOldest() -> Bool {
        let (found, channel) = state.withLock { state -> (Bool, (any Channel)?) in
            guard !state.waiting.isEmpty else { return (false, nil) }
            return (true, Self.evictOldest(&state))
        }
        channel?.close(promise: nil)
        return found
    }

    private static func evictOldest(_ state: inout State) -> (any Channel)? {
        guard let oldest = state.waiting.keys.min() else { return nil }
        let channel = state.waiting.removeValue(forKey: oldest) ?? nil
        if channel == nil { state.evictedEarly.insert(oldest) }
        return channel
    }

    /// The connection's channel is active; false if it was evicted meanwhile (close it).
    func attach(_ ticket: Int, _ channel: any Channel) -> Bool {
        state.withLock { state in
            if state.evictedEarly.remove(ticket) != nil { return false }
            guard state.waiting[ticket] != nil else { return true }
            state.waiting[ticket] = .some(channel)
            return true
        }
    }

    /// The connection has its head (or is gone).
    func remove(_ ticket: Int) {
        state.withLock { state in
            state.waiting[ticket] = nil
            state.evictedEarly.remove(ticket)
        }
    }
}

/// One connection to the wake port: reads the request head (autoRead off, on demand), then
/// stops reading, answers, closes its output and discards what the client still sends for a
/// moment (so that closing does not reset the connection before the client read the answer).
final class WakeConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase { case head, answering, draining, done }

    private let waiting: WaitingHeads
    private let ticket: Int
    private let respond: @Sendable (String) async -> WakeResponse
    private var phase = Phase.head
    private var head = ByteBuffer()
    private var deadline: Scheduled<Void>?
    private var drained = 0

    init(waiting: WaitingHeads, ticket: Int, respond: @escaping @Sendable (String) async -> WakeResponse) {
        self.waiting = waiting
        self.ticket = ticket
        self.respond = respond
    }

    func channelActive(context: ChannelHandlerContext) {
        guard waiting.attach(ticket, context.channel) else {
            phase = .done
            context.close(promise: nil)
            return
        }
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: WakeService.headTimeout) { loopBound.value.close(promise: nil) }
        context.read()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .done
        deadline?.cancel()
        waiting.remove(ticket)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        switch phase {
        case .head:
            head.writeBuffer(&bytes)
        case .draining:
            drained += bytes.readableBytes
        case .answering, .done:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch phase {
        case .head:
            if !examineHead(context: context) { context.read() }
        case .draining:
            if drained < WakeService.maxHeadBytes { context.read() } else { context.close(promise: nil) }
        case .answering, .done:
            break
        }
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event as? ChannelEvent == .inputClosed {
            switch phase {
            case .head:
                if !examineHead(context: context) { context.close(promise: nil) }
            case .draining:
                context.close(promise: nil)
            case .answering, .done:
                break
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Answers a complete (or too large) head; false if more is needed.
    private func examineHead(context: ChannelHandlerContext) -> Bool {
        let view = head.readableBytesView
        if let end = view.firstRange(of: [13, 10, 13, 10]), end.lowerBound - view.startIndex <= WakeService.maxHeadBytes {
            answer(String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self), context: context)
        } else if view.count > WakeService.maxHeadBytes {
            finish(WakeResponse(status: "431 Request Header Fields Too Large", body: "The request head is too large.\n"), context: context)
        } else {
            return false
        }
        return true
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func answer(_ text: String, context: ChannelHandlerContext) {
        phase = .answering
        deadline?.cancel()
        waiting.remove(ticket)
        head = ByteBuffer()
        let promise = context.eventLoop.makePromise(of: WakeResponse.self)
        let respond = self.respond
        promise.completeWithTask { await respond(text) }
        promise.futureResult.assumeIsolated().whenSuccess { [self] response in
            guard phase == .answering else { return }
            finish(response, context: context)
        }
    }

    private func finish(_ response: WakeResponse, context: ChannelHandlerContext) {
        phase = .draining
        waiting.remove(ticket)
        deadline?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: .seconds(2)) { loopBound.value.close(promise: nil) }
        var buffer = context.channel.allocator.buffer(capacity: response.text.utf8.count)
        buffer.writeString(response.text)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(mode: .output, promise: nil)
        }
        context.read()
    }
}
