import CLinux
import Dispatch
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Accepts connections on a listening socket and hands each to SwiftNIO, at most
/// `maxConnections` open at once.
///
/// Why not `ServerBootstrap`: NIO accepts with `accept4(SOCK_NONBLOCK)` only (NIOPosix 2.101,
/// `ServerSocket.accept`), so every accepted socket would be inherited by whatever the daemon
/// spawns meanwhile. This listener accepts with `accept4(SOCK_CLOEXEC | SOCK_NONBLOCK)` and gives
/// the socket to `ClientBootstrap.withConnectedSocket`: close-on-exec from its first instant.
///
/// A connection over the limit is accepted, sent `rejection` and closed at once: the client
/// learns why instead of waiting in the backlog, and the daemon holds nothing for it.
/// `run` accepts until a graceful shutdown (or cancellation), then closes the listening socket
/// and every open connection.
final class SocketListener: Sendable {
    private let fd: Int32
    private let name: String
    private let maxConnections: Int
    private let rejection: [UInt8]
    private let adopt: @Sendable (Int32) -> EventLoopFuture<any Channel>
    private let makeRoom: (@Sendable () -> Bool)?
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        /// Accepted and not yet closed (including those still being handed to NIO).
        var count = 0
        var open: [ObjectIdentifier: any Channel] = [:]
        var stopped = false
    }

    /// Takes ownership of `fd`, a non-blocking listening socket (`ListeningSocket`); `adopt`
    /// makes a channel of an accepted socket (`ClientBootstrap.withConnectedSocket`).
    /// `makeRoom`, when given, is asked to close an expendable connection (one still sending its
    /// request) before a connection over the limit is refused; if it did, the new one is admitted
    /// (the count exceeds the limit only until that close completes).
    init(fd: Int32, name: String, maxConnections: Int, rejection: String, logger: Logger,
         makeRoom: (@Sendable () -> Bool)? = nil,
         adopt: @escaping @Sendable (Int32) -> EventLoopFuture<any Channel>) {
        self.fd = fd
        self.name = name
        self.maxConnections = maxConnections
        self.rejection = Array(rejection.utf8)
        self.adopt = adopt
        self.makeRoom = makeRoom
        self.logger = logger
    }

    /// Connections open now.
    var openConnections: Int { state.withLock { $0.count } }

    func run() async {
        let queue = DispatchQueue(label: "openshift.node.accept.\(name)")
        let source = SourceBox(DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue))
        let (closed, listenerClosed) = AsyncStream<Void>.makeStream()
        let fd = self.fd
        source.source.setEventHandler { [self] in acceptAll(source, queue) }
        source.source.setCancelHandler {
            close(fd)
            listenerClosed.finish()
        }
        source.source.resume()
        // Returns on a graceful shutdown, throws on cancellation: either way, stop.
        try? await gracefulShutdown()
        source.source.cancel()
        for await _ in closed {}
        let channels = state.withLock { state in
            state.stopped = true
            return Array(state.open.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }

    private func acceptAll(_ source: SourceBox, _ queue: DispatchQueue) {
        while true {
            let client = cl_accept_cloexec_nonblock(fd)
            if client >= 0 {
                admit(client)
                continue
            }
            switch errno {
            case EAGAIN, EWOULDBLOCK:
                return
            case EINTR, ECONNABORTED, EPROTO:
                continue
            case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                // The listener stays readable: pause instead of spinning until a descriptor frees up.
                logger.warning("cannot accept a connection now", metadata: ["listener": "\(name)", "errno": "\(errno)"])
                source.source.suspend()
                queue.asyncAfter(deadline: .now() + .milliseconds(200)) { source.source.resume() }
                return
            default:
                logger.warning("accept failed", metadata: ["listener": "\(name)", "errno": "\(errno)"])
                return
            }
        }
    }

    private func admit(_ client: Int32) {
        enum Admission { case admitted, full, stopped }
        let admission = state.withLock { state -> Admission in
            guard !state.stopped else { return .stopped }
            guard state.count < maxConnections else { return .full }
            state.count += 1
            return .admitted
        }
        var admitted = admission == .admitted
        if admission == .full, let makeRoom, makeRoom() {
            state.withLock { $0.count += 1 }
            admitted = true
        }
        guard admitted else {
            _ = rejection.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            close(client)
            logger.debug("connection refused: too many open", metadata: ["listener": "\(name)", "limit": "\(maxConnections)"])
            return
        }
        adopt(client).whenComplete { [self] result in
            switch result {
            case .success(let channel):
                let id = ObjectIdentifier(channel)
                let stopped = state.withLock { state in
                    state.open[id] = channel
                    return state.stopped
                }
                channel.closeFuture.whenComplete { [self] _ in
                    state.withLock { state in
                        state.open[id] = nil
                        state.count -= 1
                    }
                }
                if stopped { channel.close(promise: nil) }
            case .failure:
                state.withLock { $0.count -= 1 }
            }
        }
    }

    private final class SourceBox: @unchecked Sendable {
        let source: any DispatchSourceRead
        init(_ source: any DispatchSourceRead) { self.source = source }
    }
}

extension SocketListener {
    /// How both services adopt an accepted socket into NIO: reads only when the handler asks
    /// (back-pressure), one message per read, half-closure seen by the handler.
    static func adoptIntoNIO(_ socket: Int32, _ handler: @escaping @Sendable () -> any ChannelHandler) -> EventLoopFuture<any Channel> {
        ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(handler()) }
            }
            .withConnectedSocket(socket)
    }
}
