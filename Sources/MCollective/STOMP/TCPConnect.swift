import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Connects a TCP socket that is close-on-exec from its first instant, for
/// `ClientBootstrap.withConnectedSocket`.
///
/// NIO's `ClientBootstrap.connect` creates its socket without `SOCK_CLOEXEC` (NIOPosix 2.101), so
/// every process the daemon spawns meanwhile (hooks, as gear users) would inherit the connection
/// to the broker and could speak on it as the node.
enum TCPConnect {
    /// Resolves `host` (on NIO's thread pool: `getaddrinfo` blocks), then tries its addresses in
    /// turn with non-blocking connects, within `timeout` in all; cancellation stops the wait.
    static func connect(host: String, port: Int, timeout: Duration) async throws -> Int32 {
        let target = "\(host):\(port)"
        let addresses = try await NIOThreadPool.singleton.runIfActive { try resolve(host: host, port: port) }
        let deadline = ContinuousClock.now + timeout
        var failure = "no address"
        for address in addresses {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else { throw STOMPError.connectFailed("socket for \(target): \(String(cString: strerror(errno)))") }
            var connected = address.bytes.withUnsafeBytes {
                Glibc.connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count))
            } == 0
            var code = connected ? 0 : errno
            if !connected, code == EINPROGRESS {
                do {
                    (connected, code) = try await waitUntilConnected(fd, deadline: deadline)
                } catch {
                    close(fd)
                    throw error
                }
            }
            if connected { return fd }
            close(fd)
            failure = code == ETIMEDOUT ? "timed out" : String(cString: strerror(code))
            if ContinuousClock.now >= deadline { break }
        }
        throw STOMPError.connectFailed("connect to \(target): \(failure)")
    }

    /// Polls the connecting socket, pausing 1 ms, then twice as long each time up to 50 ms.
    private static func waitUntilConnected(_ fd: Int32, deadline: ContinuousClock.Instant) async throws -> (Bool, Int32) {
        var pause = 1
        while true {
            var writable = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            if poll(&writable, 1, 0) == 1 {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) == 0 else { return (false, errno) }
                return (code == 0, code)
            }
            guard ContinuousClock.now < deadline else { return (false, ETIMEDOUT) }
            try await Task.sleep(for: .milliseconds(pause))
            pause = min(pause * 2, 50)
        }
    }

    private struct Address: Sendable {
        var family: Int32
        var bytes: [UInt8]
    }

    private static func resolve(host: String, port: Int) throws -> [Address] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0 else {
            throw STOMPError.connectFailed("cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var next = list
        while let entry = next {
            if let raw = entry.pointee.ai_addr {
                let bytes = UnsafeRawBufferPointer(start: raw, count: Int(entry.pointee.ai_addrlen))
                addresses.append(Address(family: entry.pointee.ai_family, bytes: Array(bytes)))
            }
            next = entry.pointee.ai_next
        }
        return addresses
    }
}
