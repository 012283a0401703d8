import NIOCore

/// One connection of the local agent, with back-pressure: the channel runs with `autoRead` off
/// and this handler asks for more bytes only while fewer than `maxInFlight` of the connection's
/// requests are unanswered and its replies are being read (the channel is writable). So a client
/// that pipelines requests without reading the replies stalls itself, not the daemon.
///
/// Replies are written in request order: up to `maxInFlight` requests are answered at once,
/// and a reply that is ready waits for the ones before it. A line longer than `maxRequestBytes`
/// (with or without its newline) is answered with an error after the replies before it, and the
/// connection is closed. A connection with nothing in flight that completes no request within
/// `idleTimeout` is closed.
///
/// What a connection can hold: its unparsed input (at most `maxRequestBytes` plus one read of
/// at most 64 KiB: reading stops as soon as a whole line or too many bytes are there), at most
/// `maxInFlight` requests and their replies, and the replies the client has not read yet (the
/// channel stops being writable at 64 KiB of them, and then nothing more is read).
///
/// All state is confined to the channel's event loop.
final class LocalAgentConnection: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Limits: Sendable {
        var maxRequestBytes: Int
        var maxInFlight: Int
        var idleTimeout: TimeAmount
    }

    private let limits: Limits
    /// Answers one request line with one reply line (without the newline).
    private let answer: @Sendable (String) async -> String
    /// Bytes received and not yet taken as a request line.
    private var input = ByteBuffer()
    /// How far `input` has been searched for a newline.
    private var searched = 0
    /// Replies in request order; nil while that request is being answered.
    private var replies: [String?] = []
    /// The sequence number of `replies.first`; the next request gets `first + replies.count`.
    private var first = 0
    private var readPending = false
    private var inputClosed = false
    /// Set once the connection is to be closed when its replies are written (a too-long line).
    private var finishing = false
    private var active = false
    private var idle: Scheduled<Void>?

    init(limits: Limits, answer: @escaping @Sendable (String) async -> String) {
        self.limits = limits
        self.answer = answer
    }

    func channelActive(context: ChannelHandlerContext) {
        active = true
        armIdleTimer(context: context)
        pump(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        active = false
        idle?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !finishing else { return }
        input.discardReadBytes()
        input.writeBuffer(&bytes)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        readPending = false
        pump(context: context)
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event as? ChannelEvent == .inputClosed {
            inputClosed = true
            pump(context: context)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Starts what the buffered input and the limits allow, then reads more if they still allow.
    private func pump(context: ChannelHandlerContext) {
        guard active else { return }
        while !finishing, replies.count < limits.maxInFlight, let line = nextLine() {
            start(line, context: context)
        }
        if finishing || (inputClosed && replies.isEmpty) {
            writeReady(context: context)
            return
        }
        if !inputClosed, !readPending, replies.count < limits.maxInFlight, context.channel.isWritable {
            readPending = true
            context.read()
        }
    }

    /// The next request line, or nil if none is complete. Too long a line ends the connection.
    private func nextLine() -> String? {
        let view = input.readableBytesView
        let from = view.startIndex + searched
        if let newline = view[from...].firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            guard length <= limits.maxRequestBytes else { return tooLong() }
            let line = input.readString(length: length) ?? ""
            input.moveReaderIndex(forwardBy: 1)
            searched = 0
            return line
        }
        searched = view.count
        if view.count > limits.maxRequestBytes { return tooLong() }
        if inputClosed, view.count > 0 {
            // The last request may go without its newline.
            searched = 0
            return input.readString(length: view.count)
        }
        return nil
    }

    private func tooLong() -> String? {
        finishing = true
        input = ByteBuffer()
        searched = 0
        replies.append(LocalAgentService.replyLine(statuscode: 4, "a request is one line of at most \(limits.maxRequestBytes) bytes"))
        return nil
    }

    private func start(_ line: String, context: ChannelHandlerContext) {
        idle?.cancel()
        idle = nil
        let sequence = first + replies.count
        replies.append(nil)
        let promise = context.eventLoop.makePromise(of: String.self)
        let answer = self.answer
        promise.completeWithTask { await answer(line) }
        promise.futureResult.assumeIsolated().whenSuccess { [self] reply in
            guard active else { return }
            replies[sequence - first] = reply
            writeReady(context: context)
            pump(context: context)
        }
    }

    /// Writes the replies that are ready, in order; closes when a finishing or half-closed
    /// connection has nothing more to answer.
    private func writeReady(context: ChannelHandlerContext) {
        var wrote = false
        while let next = replies.first, let text = next {
            replies.removeFirst()
            first += 1
            var buffer = context.channel.allocator.buffer(capacity: text.utf8.count + 1)
            buffer.writeString(text)
            buffer.writeInteger(UInt8(ascii: "\n"))
            context.write(wrapOutboundOut(buffer), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
        guard replies.isEmpty else { return }
        if finishing || inputClosed {
            active = false
            context.close(promise: nil)
        } else {
            armIdleTimer(context: context)
        }
    }

    private func armIdleTimer(context: ChannelHandlerContext) {
        idle?.cancel()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        idle = context.eventLoop.scheduleTask(in: limits.idleTimeout) {
            loopBound.value.close(promise: nil)
        }
    }
}
