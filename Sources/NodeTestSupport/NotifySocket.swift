import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The listening end of systemd's notification socket, as systemd holds it for a `Type=notify`
/// unit: a Unix datagram socket at `path` (give it to the daemon as `NOTIFY_SOCKET`) that
/// records each datagram with its sender's pid (`SO_PASSCRED`, the credentials the kernel
/// attaches, as systemd's `NotifyAccess=main` checks them).
public final class NotifySocket: @unchecked Sendable {
    public struct Message: Sendable, Equatable {
        public var pid: pid_t
        public var fields: [String]
    }

    public let path: String
    private let fd: Int32
    private var received: [Message] = []

    public init(path: String) throws {
        self.path = path
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw TestFiles.Failure(description: "socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        guard let address = UnixAddress(path) else {
            close(fd)
            throw TestFiles.Failure(description: "notify socket path too long: \(path)")
        }
        let rc = address.withSockaddr { bind(fd, $0, $1) }
        guard rc == 0 else {
            close(fd)
            throw TestFiles.Failure(description: "bind \(path): errno \(errno)")
        }
        chmod(path, 0o777)
    }

    /// Every datagram received so far, oldest first.
    public var messages: [Message] {
        drain()
        return received
    }

    /// Every field received so far (`READY=1`, `STATUS=...`), in order.
    public var fields: [String] { messages.flatMap(\.fields) }

    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 256)
        while true {
            var header = msghdr()
            let count = buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { controlBytes in
                    var vector = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    return withUnsafeMutablePointer(to: &vector) { vectorPointer in
                        header.msg_iov = vectorPointer
                        header.msg_iovlen = 1
                        header.msg_control = controlBytes.baseAddress
                        header.msg_controllen = controlBytes.count
                        return recvmsg(fd, &header, 0)
                    }
                }
            }
            guard count >= 0 else { return }
            var pid: pid_t = 0
            control.withUnsafeBytes { controlBytes in
                // One SCM_CREDENTIALS message: cmsghdr, then struct ucred { pid, uid, gid }.
                let headerSize = MemoryLayout<cmsghdr>.size
                guard header.msg_controllen >= headerSize + 4 else { return }
                let message = controlBytes.loadUnaligned(as: cmsghdr.self)
                if message.cmsg_level == SOL_SOCKET && message.cmsg_type == 2 /* SCM_CREDENTIALS, not imported by Glibc */ {
                    pid = controlBytes.loadUnaligned(fromByteOffset: headerSize, as: pid_t.self)
                }
            }
            let text = String(decoding: buffer[..<count], as: UTF8.self)
            received.append(Message(pid: pid, fields: text.split(separator: "\n").map(String.init)))
        }
    }

    /// Waits (polling) until a received field satisfies `match`; false after `seconds`.
    public func waitFor(within seconds: Double, _ match: (String) -> Bool) async -> Bool {
        await eventually(within: seconds) { fields.contains(where: match) }
    }

    deinit {
        close(fd)
        unlink(path)
    }
}
