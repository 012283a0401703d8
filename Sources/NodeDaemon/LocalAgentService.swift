import Agent
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// The agent's local transport: a Unix socket speaking JSON lines. Each request line is
/// `{"agent": "openshift", "action": "...", "data": {...}, "requestid": "..."}` (`agent` and
/// `requestid` optional); each reply line is `{"statuscode": n, "statusmsg": "...", "data": {...}}`
/// plus the request's `requestid` when it had one. Replies on a connection come in request order.
/// The same handlers and validation as MCollective serve it; admin tools and tests use it when no
/// message bus is around (sandbox mode).
///
/// Every byte on the socket is untrusted, and the socket bounds what it holds: a request line is
/// at most `maxRequestBytes`, a connection has at most `maxInFlightPerConnection` requests being
/// answered and reads nothing more while it has that many or does not read its replies
/// (`LocalAgentConnection`), and at most `maxConnections` are open (one more is told so and
/// closed). So what all clients together can make the daemon hold is bounded: with every limit
/// reached (64 connections, each with 4 requests of 256 KiB of dense JSON being answered) the
/// daemon measured about 140 MB resident; 200 clients sending endless lines, about 50 MB.
/// The socket is created with mode 0600 under any umask (`ListeningSocket.unix`), and every
/// descriptor is close-on-exec (`SocketListener`).
///
/// A socket that cannot be created is logged and the daemon runs on without it (until SIGTERM).
public struct LocalAgentService: Service {
    /// A request is a small JSON object: the largest the broker sends (a cartridge manifest, an
    /// SSL certificate chain) are tens of KiB.
    public static let maxRequestBytes = 256 << 10
    public static let maxInFlightPerConnection = 4
    public static let maxConnections = 64
    /// A connection that has nothing being answered and sends no whole request for this long is closed.
    public static let idleTimeout = TimeAmount.seconds(60)

    let path: String
    let handlers: [String: any AgentHandler]
    let logger: Logger
    /// Called once the socket is listening, or was given up on (and logged).
    let settled: @Sendable () -> Void

    public init(path: String, handlers: [any AgentHandler], logger: Logger, settled: @escaping @Sendable () -> Void = {}) {
        self.settled = settled
        self.path = path
        self.handlers = Dictionary(handlers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
    }

    public func run() async throws {
        let fd: Int32
        do {
            fd = try ListeningSocket.unix(path: path, mode: 0o600, backlog: Int32(Self.maxConnections))
        } catch {
            logger.error("the local agent is off: \(error)", metadata: ["socket": "\(path)"])
            settled()
            try? await gracefulShutdown()
            return
        }
        var bound = stat()
        fstat(fd, &bound)
        let handlers = self.handlers
        let limits = LocalAgentConnection.Limits(maxRequestBytes: Self.maxRequestBytes, maxInFlight: Self.maxInFlightPerConnection,
                                                 idleTimeout: Self.idleTimeout)
        let listener = SocketListener(
            fd: fd, name: "local-agent", maxConnections: Self.maxConnections,
            rejection: Self.replyLine(statuscode: 5, "the daemon has \(Self.maxConnections) local agent connections open; try again") + "\n",
            logger: logger
        ) { socket in
            SocketListener.adoptIntoNIO(socket) { LocalAgentConnection(limits: limits) { line in await Self.answer(line, handlers) } }
        }
        logger.notice("local agent listening", metadata: ["socket": "\(path)"])
        settled()
        await listener.run()
        // Remove the socket only if it is still ours (another daemon may have replaced it).
        var current = stat()
        if lstat(path, &current) == 0, current.st_ino == bound.st_ino, current.st_dev == bound.st_dev { unlink(path) }
    }

    /// One reply line (without the newline).
    static func replyLine(statuscode: Int, _ statusmsg: String, data: AgentValue = .hash([]), requestID: AgentValue? = nil) -> String {
        var pairs: [AgentValue.Pair] = [
            .init(.symbol("statuscode"), .int(statuscode)), .init(.symbol("statusmsg"), .string(statusmsg)), .init(.symbol("data"), data),
        ]
        if let requestID { pairs.append(.init(.symbol("requestid"), requestID)) }
        return AgentValue.hash(pairs).jsonText()
    }

    static func answer(_ line: String, _ handlers: [String: any AgentHandler]) async -> String {
        guard let request = try? AgentValue.parse(json: line), case .hash = request, let action = request["action"]?.string else {
            return replyLine(statuscode: 4, "a request is one JSON object per line: {\"agent\": \"openshift\", \"action\": \"...\", \"data\": {...}}")
        }
        let requestID = request["requestid"]
        let agent = request["agent"]?.string ?? "openshift"
        guard let handler = handlers[agent] else {
            return replyLine(statuscode: 2, "Unknown agent '\(agent)'", requestID: requestID)
        }
        let reply = await handler.handle(AgentRequest(agent: agent, action: action, data: (request["data"] ?? .hash([])).symbolizingKeys(),
                                                      caller: "local", requestID: requestID?.string ?? "", sender: "local"))
        return replyLine(statuscode: reply.statuscode, reply.statusmsg, data: reply.data, requestID: requestID)
    }
}
