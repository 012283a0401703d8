import Agent
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The agent's local transport: a Unix socket speaking JSON lines. Each request line is
/// `{"agent": "openshift", "action": "...", "data": {...}}`; each reply line is
/// `{"statuscode": n, "statusmsg": "...", "data": {...}}`, in request order per connection.
/// The same handlers and validation as MCollective serve it; admin tools and tests use it
/// when no message bus is around (sandbox mode).
public struct LocalAgentService: Service {
    let path: String
    let handlers: [String: any AgentHandler]
    let logger: Logger

    public init(path: String, handlers: [any AgentHandler], logger: Logger) {
        self.path = path
        self.handlers = Dictionary(handlers.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.logger = logger
    }

    public func run() async throws {
        let directory = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        unlink(path)
        let handlers = self.handlers
        let logger = self.logger
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineDecoder(maxLength: 4 << 20)))
                    try channel.pipeline.syncOperations.addHandler(LocalAgentHandler(handlers: handlers, logger: logger))
                }
            }
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true)
            .get()
        chmod(path, 0o600)
        logger.notice("local agent listening", metadata: ["socket": "\(path)"])
        try await gracefulShutdown()
        try? await channel.close()
        unlink(path)
    }
}

/// Splits a byte stream into lines (without the newline); a line over `maxLength` is an error.
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maxLength: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            if buffer.readableBytes > maxLength { throw LineTooLong() }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }

    struct LineTooLong: Error {}
}

final class LocalAgentHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let handlers: [String: any AgentHandler]
    let logger: Logger

    init(handlers: [String: any AgentHandler], logger: Logger) {
        self.handlers = handlers
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = String(buffer: unwrapInboundIn(data))
        let channel = context.channel
        let handlers = self.handlers
        // Replies keep request order on a connection: each waits for the previous one's write.
        let promise = channel.eventLoop.makePromise(of: String.self)
        promise.completeWithTask { await Self.answer(line, handlers) }
        promise.futureResult.whenSuccess { text in
            var buffer = channel.allocator.buffer(capacity: text.utf8.count + 1)
            buffer.writeString(text + "\n")
            channel.writeAndFlush(buffer, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.warning("local agent connection closed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    static func answer(_ line: String, _ handlers: [String: any AgentHandler]) async -> String {
        let reply: AgentReply
        if let request = try? AgentValue.parse(json: line), case .hash = request, let action = request["action"]?.string {
            let agent = request["agent"]?.string ?? "openshift"
            if let handler = handlers[agent] {
                reply = await handler.handle(AgentRequest(agent: agent, action: action, data: (request["data"] ?? .hash([])).symbolizingKeys(),
                                                          caller: "local", requestID: request["requestid"]?.string ?? "",
                                                          sender: "local"))
            } else {
                reply = .failure(2, "Unknown agent '\(agent)'")
            }
        } else {
            reply = .failure(4, "a request is one JSON object per line: {\"agent\": \"openshift\", \"action\": \"...\", \"data\": {...}}")
        }
        return AgentValue.symbols(["statuscode": .int(reply.statuscode), "statusmsg": .string(reply.statusmsg), "data": reply.data]).jsonText()
    }
}
