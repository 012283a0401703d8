#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client for one exchange: the handshake with a fixed key, one masked text frame,
/// and the server's reply frame.
enum WebSocketProbe {
    static let key = "dGhlIHNhbXBsZSBub25jZQ=="
    /// The accept value RFC 6455 derives from `key`.
    static let expectedAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    static func echo(port: UInt16, host: String, message: String) -> (handshake: String, reply: String?) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return ("connect failed", nil) }
        let request = "GET / HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while recv(fd, &byte, 1, 0) == 1 {
            head.append(byte)
            if head.suffix(4) == [13, 10, 13, 10] { break }
        }
        let handshake = String(decoding: head, as: UTF8.self)
        guard handshake.hasPrefix("HTTP/1.1 101") else { return (handshake, nil) }
        let payload = Array(message.utf8)
        let mask: [UInt8] = [1, 2, 3, 4]
        let frame = [0x81, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        _ = send(fd, frame, frame.count, 0)
        var header = [UInt8](repeating: 0, count: 2)
        guard recv(fd, &header, 2, Int32(MSG_WAITALL)) == 2 else { return (handshake, nil) }
        var body = [UInt8](repeating: 0, count: Int(header[1] & 0x7f))
        guard body.isEmpty || recv(fd, &body, body.count, Int32(MSG_WAITALL)) == body.count else { return (handshake, nil) }
        return (handshake, String(decoding: body, as: UTF8.self))
    }
}
