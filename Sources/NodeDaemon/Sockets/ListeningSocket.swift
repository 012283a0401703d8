import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// A failed socket call: which step, on what, and the errno.
public struct SocketError: Error, CustomStringConvertible {
    public var step: String
    public var target: String
    public var errno: Int32
    public var reason: String?

    public var description: String {
        "\(step) \(target) failed: \(reason ?? String(cString: strerror(errno)))"
    }
}

/// Creates the daemon's listening sockets, close-on-exec and non-blocking from the first
/// instant (`SOCK_CLOEXEC | SOCK_NONBLOCK` at `socket()`), ready for `SocketListener`.
enum ListeningSocket {
    /// A stream socket on `path`, created with `mode` and never observable with any wider mode,
    /// whatever the process umask: the mode is set on the unbound socket (`fchmod` before
    /// `bind`; Linux creates the socket's inode from it, minus the umask) and checked after.
    /// A missing parent directory is created 0755 (never group/other-writable, where anyone
    /// could replace the socket). A stale socket at `path` is replaced; anything else there is
    /// an error.
    static func unix(path: String, mode: mode_t = 0o600, backlog: Int32 = 64) throws(SocketError) -> Int32 {
        guard !path.hasPrefix("@"), let address = UnixAddress(path) else {
            throw SocketError(step: "bind", target: path, errno: ENAMETOOLONG,
                              reason: "a Unix socket path is 1 to \(UnixAddress.capacity) bytes")
        }
        try makeParentDirectory(of: path)
        var existing = stat()
        if lstat(path, &existing) == 0 {
            guard existing.st_mode & S_IFMT == S_IFSOCK else {
                throw SocketError(step: "bind", target: path, errno: EEXIST, reason: "it exists and is not a socket")
            }
            unlink(path)
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError(step: "socket", target: path, errno: errno) }
        guard fchmod(fd, mode) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(step: "fchmod", target: path, errno: code)
        }
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SocketError(step: "bind", target: path, errno: code)
        }
        var created = stat()
        guard lstat(path, &created) == 0, created.st_mode & 0o7777 & ~mode == 0 else {
            // A kernel that ignored the socket's own mode: refuse rather than chmod after the fact.
            unlink(path)
            close(fd)
            throw SocketError(step: "bind", target: path, errno: EPERM,
                              reason: "the socket was created wider than mode \(String(mode, radix: 8))")
        }
        // A umask can only have narrowed it; give back what it took.
        if created.st_mode & 0o7777 != mode { chmod(path, mode) }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            unlink(path)
            close(fd)
            throw SocketError(step: "listen", target: path, errno: code)
        }
        return fd
    }

    /// A TCP socket on 127.0.0.1:`port`.
    static func loopback(port: UInt16, backlog: Int32 = 128) throws(SocketError) -> Int32 {
        let target = "127.0.0.1:\(port)"
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SocketError(step: "socket", target: target, errno: errno) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SocketError(step: "bind", target: target, errno: code)
        }
        guard listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SocketError(step: "listen", target: target, errno: code)
        }
        return fd
    }

    /// `mkdir -p` with 0755 for what it creates, whatever the umask.
    private static func makeParentDirectory(of path: String) throws(SocketError) {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return }
        let directory = String(path[..<slash])
        var info = stat()
        if stat(directory, &info) == 0 { return }
        try makeParentDirectory(of: directory)
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw SocketError(step: "mkdir", target: directory, errno: errno)
        }
        chmod(directory, 0o755)
    }
}
