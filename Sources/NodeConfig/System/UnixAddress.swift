#if canImport(Glibc)
import Glibc
#endif

/// A Unix socket address: a file-system path, or an abstract name when it starts with `@`
/// (as systemd writes `NOTIFY_SOCKET`). The one place that fills a `sockaddr_un`.
public struct UnixAddress {
    public private(set) var storage = sockaddr_un()
    /// The address length to pass: exact for an abstract name, which has no terminating NUL.
    public let length: socklen_t

    /// The longest path (or name) that fits, in bytes.
    public static let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path) - 1

    /// Nil when `name` is empty or longer than `capacity` bytes.
    public init?(_ name: String) {
        var bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.capacity else { return nil }
        let abstract = bytes[0] == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
    }

    /// Calls `body` with the address as a `sockaddr` and its length (for bind, connect, sendto).
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> T) -> T {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
