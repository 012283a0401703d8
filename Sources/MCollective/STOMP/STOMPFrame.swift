/// One STOMP 1.0/1.1 frame: `COMMAND\n(name:value\n)*\n<body>\0`.
///
/// Headers keep their order and may repeat (the first occurrence wins, as in the STOMP spec).
/// The body is raw bytes: MCollective bodies are Ruby Marshal data and contain NUL bytes, so
/// they travel with a `content-length` header.
public struct STOMPFrame: Sendable, Equatable, CustomStringConvertible {
    public var command: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(command: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.command = command
        self.headers = headers
        self.body = body
    }

    /// The value of the first header called `name`, if any.
    public subscript(header name: String) -> String? {
        headers.first { $0.name == name }?.value
    }

    public static func == (lhs: STOMPFrame, rhs: STOMPFrame) -> Bool {
        lhs.command == rhs.command && lhs.body == rhs.body && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    public var description: String {
        let shown = headers.filter { $0.name != "passcode" }.map { "\($0.name):\($0.value)" }
        return "\(command) [\(shown.joined(separator: ", "))] \(body.count) body bytes"
    }

    /// The frame on the wire. `content-length` is always set to the body's size, like the Ruby
    /// stomp gem does (an existing `content-length` header is corrected in place, otherwise one
    /// is appended). With `escapeHeaders` (STOMP 1.1, except in CONNECT/CONNECTED), `\`, LF, CR
    /// and `:` in header names and values are escaped.
    public func encoded(escapeHeaders: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(command.utf8.count + body.count + 64 * (headers.count + 1))
        out += command.utf8
        out.append(STOMPByte.lf)
        var hasLength = false
        for (name, value) in headers {
            var value = value
            if name == "content-length" {
                if hasLength { continue }  // only the first one counts; drop the rest
                hasLength = true
                value = String(body.count)
            }
            Self.appendHeaderText(name, escaped: escapeHeaders, to: &out)
            out.append(STOMPByte.colon)
            Self.appendHeaderText(value, escaped: escapeHeaders, to: &out)
            out.append(STOMPByte.lf)
        }
        if !hasLength {
            out += "content-length:\(body.count)\n".utf8
        }
        out.append(STOMPByte.lf)
        out += body
        out.append(STOMPByte.nul)
        return out
    }

    /// What is sent as a heart-beat: a lone end-of-line.
    public static let heartbeat: [UInt8] = [STOMPByte.lf]

    private static func appendHeaderText(_ text: String, escaped: Bool, to out: inout [UInt8]) {
        guard escaped else {
            out += text.utf8
            return
        }
        for byte in text.utf8 {
            switch byte {
            case STOMPByte.backslash: out += [STOMPByte.backslash, STOMPByte.backslash]
            case STOMPByte.lf: out += [STOMPByte.backslash, UInt8(ascii: "n")]
            case STOMPByte.cr: out += [STOMPByte.backslash, UInt8(ascii: "r")]
            case STOMPByte.colon: out += [STOMPByte.backslash, UInt8(ascii: "c")]
            default: out.append(byte)
            }
        }
    }
}

/// Errors of the STOMP layer.
public enum STOMPError: Error, CustomStringConvertible, Equatable {
    /// A frame (head and body) exceeds the configured maximum.
    case frameTooLarge(limit: Int)
    /// The bytes received are not a STOMP frame.
    case malformedFrame(String)
    /// `send` was called while no connection is established.
    case notConnected
    /// The broker answered CONNECT with an ERROR frame (e.g. a wrong password).
    case connectRefused(reason: String)
    /// The broker sent an ERROR frame on an established connection.
    case brokerError(String)
    /// The broker did not answer CONNECT in time, or answered with something else.
    case connectFailed(String)
    /// Nothing (not even a heart-beat) was read for twice the negotiated interval.
    case heartbeatTimeout(milliseconds: Int)
    /// The broker closed the connection.
    case connectionClosed

    public var description: String {
        switch self {
        case .frameTooLarge(let limit): "STOMP frame larger than \(limit) bytes"
        case .malformedFrame(let reason): "malformed STOMP frame: \(reason)"
        case .notConnected: "not connected to a STOMP broker"
        case .connectRefused(let reason): "broker refused the connection: \(reason)"
        case .brokerError(let message): "broker sent ERROR: \(message)"
        case .connectFailed(let reason): "STOMP connect failed: \(reason)"
        case .heartbeatTimeout(let ms): "no data and no heart-beat from the broker for \(ms) ms"
        case .connectionClosed: "connection closed by the broker"
        }
    }
}

/// Byte values used by the codec.
enum STOMPByte {
    static let nul: UInt8 = 0
    static let lf = UInt8(ascii: "\n")
    static let cr = UInt8(ascii: "\r")
    static let colon = UInt8(ascii: ":")
    static let backslash = UInt8(ascii: "\\")
}
