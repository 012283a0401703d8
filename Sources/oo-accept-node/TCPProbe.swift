#if canImport(Glibc)
import Glibc
#endif

/// One TCP connection attempt within a time limit: nil when the peer accepted, else why not.
/// The socket is closed at once; nothing is sent.
enum TCPProbe {
    static func connect(host: String, port: Int, timeoutSeconds: Double) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else { return "cannot resolve \(host): \(String(cString: gai_strerror(rc)))" }
        defer { freeaddrinfo(first) }
        let deadline = monotonic() + timeoutSeconds
        var failure = "no address"
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let address = current {
            current = address.pointee.ai_next
            let fd = socket(address.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard fd >= 0 else {
                failure = String(cString: strerror(errno))
                continue
            }
            defer { close(fd) }
            var code: Int32 = 0
            if Glibc.connect(fd, address.pointee.ai_addr, address.pointee.ai_addrlen) != 0 {
                code = errno
                if code == EINPROGRESS {
                    var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    let milliseconds = Int32(max(0, (deadline - monotonic()) * 1000))
                    var ready: Int32
                    repeat { ready = poll(&waiting, 1, milliseconds) } while ready < 0 && errno == EINTR
                    if ready == 1 {
                        var length = socklen_t(MemoryLayout<Int32>.size)
                        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length) != 0 { code = errno }
                    } else {
                        code = ETIMEDOUT
                    }
                }
            }
            if code == 0 { return nil }
            failure = code == ETIMEDOUT ? "no answer within \(Int(timeoutSeconds)) s" : String(cString: strerror(code))
            if monotonic() >= deadline { break }
        }
        return failure
    }

    static func monotonic() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
