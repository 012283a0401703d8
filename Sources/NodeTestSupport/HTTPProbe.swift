import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 GET over loopback for tests, and a free-port finder.
public enum HTTPProbe {
    public struct Response: Sendable {
        public var status: Int
        public var body: String
        /// The response's header lines.
        public var headers: [String] = []
    }

    /// GET `path` from `host`:`port` (an IPv4 address, 127.0.0.1 by default); nil if nothing answers.
    public static func get(port: UInt16, host: String = "127.0.0.1", path: String = "/", headers: [String] = []) -> Response? {
        request(port: port, host: host, path: path, headers: headers)
    }

    /// One HTTP/1.0 request with an optional body; nil if nothing answers.
    public static func request(port: UInt16, host: String = "127.0.0.1", method: String = "GET", path: String = "/",
                               headers: [String] = [], body: String = "") -> Response? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = loopback(port)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return nil }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let hostHeader = headers.contains { $0.lowercased().hasPrefix("host:") } ? [] : ["Host: \(host)"]
        let request = Array(("\(method) \(path) HTTP/1.0\r\n" + (hostHeader + headers).map { $0 + "\r\n" }.joined() + "\r\n" + body).utf8)
        guard send(fd, request, request.count, 0) == request.count else { return nil }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first,
              let status = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return nil }
        let split = text.range(of: "\r\n\r\n")
        let body = split.map { String(text[$0.upperBound...]) } ?? ""
        let head = split.map { String(text[..<$0.lowerBound]) } ?? text
        return Response(status: status, body: body, headers: head.split(separator: "\r\n").dropFirst().map(String.init))
    }

    private static let handedOut = Mutex<Set<UInt16>>([])

    /// A TCP port on 127.0.0.1 that was free a moment ago, and never handed out before in this
    /// process (tests that run side by side would otherwise be given the same one).
    public static func freePort() -> UInt16 {
        while true {
            let port = anyFreePort()
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
    }

    private static func anyFreePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(0)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var bound = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: bound.sin_port)
    }

    private static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }
}
