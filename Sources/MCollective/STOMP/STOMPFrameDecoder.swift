import NIOCore

/// Splits the bytes from a STOMP broker into frames.
///
/// * End-of-lines may be `\n` or `\r\n`; bare end-of-lines between frames are heart-beats and
///   are skipped.
/// * The body is `content-length` bytes when that header is present (bodies are binary and
///   may contain NUL), otherwise everything up to the first NUL.
/// * STOMP 1.1 header unescaping (`\\`, `\n`, `\r`, `\c`) is applied when `unescapeHeaders`
///   is set. The decoder sets it itself when it decodes a CONNECTED frame with `version:1.1`
///   (or later): the CONNECTED frame itself is never unescaped.
/// * A frame longer than `maxFrameBytes` (head plus body) is skipped, without buffering it: its
///   bytes are discarded as they arrive (to `content-length`, or to its NUL), the decoder goes on
///   with the next frame, and in its place yields a `SKIPPED` frame (`command`, `bytes`,
///   `limit` headers) for the client to log. One oversized message must not cost the
///   connection, and with it the broadcasts that arrive meanwhile. A CONNECTED frame over the
///   limit is an error.
public struct STOMPFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = STOMPFrame

    public var maxFrameBytes: Int
    public var unescapeHeaders: Bool

    /// Where the decoder is within the current frame.
    private enum State {
        /// Looking for the empty line that ends the head. `scanned` bytes from the reader index
        /// have been searched already, and `lineStart` is where the current line starts.
        case head(scanned: Int, lineStart: Int)
        /// The head is parsed and consumed; waiting for the body. `scanned` counts body bytes
        /// searched for the terminating NUL when there is no content-length.
        case body(command: String, headers: [(name: String, value: String)], length: Int?, headBytes: Int, scanned: Int)
        /// Discarding an oversized frame: `remaining` bytes (its body and NUL), or up to and
        /// including its NUL when nil. `discarded` counts the bytes dropped so far.
        case skip(command: String, remaining: Int?, discarded: Int)
    }

    private var state = State.head(scanned: 0, lineStart: 0)

    public init(maxFrameBytes: Int = 16 << 20, unescapeHeaders: Bool = false) {
        self.maxFrameBytes = maxFrameBytes
        self.unescapeHeaders = unescapeHeaders
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try next(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        // A partial frame at EOF is dropped: the connection is gone anyway.
        try decode(context: context, buffer: &buffer)
    }

    /// Decodes the next complete frame from `buffer`, consuming its bytes; nil when more bytes
    /// are needed. Usable without a channel.
    public mutating func next(from buffer: inout ByteBuffer) throws -> STOMPFrame? {
        while true {
            switch state {
            case .head(let scanned, let lineStart):
                if scanned == 0 && !skipHeartbeats(&buffer) { return nil }
                guard let headEnd = try findHeadEnd(buffer, scanned: scanned, lineStart: lineStart) else { return nil }
                let head = buffer.readBytes(length: headEnd)!
                let (command, headers) = try parseHead(head)
                var length: Int?
                if let text = headers.first(where: { $0.name == "content-length" })?.value {
                    guard let value = Int(text.trimmingSpaces), value >= 0 else {
                        throw STOMPError.malformedFrame("bad content-length \(text.debugDescription)")
                    }
                    guard value <= maxFrameBytes - headEnd else {
                        guard command != "CONNECTED" else { throw STOMPError.frameTooLarge(limit: maxFrameBytes) }
                        state = .skip(command: command, remaining: value + 1, discarded: headEnd)
                        continue
                    }
                    length = value
                }
                state = .body(command: command, headers: headers, length: length, headBytes: headEnd, scanned: 0)

            case .body(let command, let headers, let length, let headBytes, let scanned):
                let bodyLength: Int
                if let length {
                    guard buffer.readableBytes > length else { return nil }
                    guard buffer.getInteger(at: buffer.readerIndex + length, as: UInt8.self) == STOMPByte.nul else {
                        throw STOMPError.malformedFrame("\(command): no NUL after \(length) body bytes")
                    }
                    bodyLength = length
                } else {
                    let found = buffer.readableBytesView.dropFirst(scanned).firstIndex(of: STOMPByte.nul)
                    guard let found else {
                        guard headBytes + buffer.readableBytes <= maxFrameBytes else {
                            guard command != "CONNECTED" else { throw STOMPError.frameTooLarge(limit: maxFrameBytes) }
                            let dropped = buffer.readableBytes
                            buffer.moveReaderIndex(forwardBy: dropped)
                            state = .skip(command: command, remaining: nil, discarded: headBytes + dropped)
                            continue
                        }
                        state = .body(command: command, headers: headers, length: nil, headBytes: headBytes, scanned: buffer.readableBytes)
                        return nil
                    }
                    bodyLength = found - buffer.readableBytesView.startIndex
                }
                let body = buffer.readBytes(length: bodyLength)!
                buffer.moveReaderIndex(forwardBy: 1)  // the NUL
                state = .head(scanned: 0, lineStart: 0)
                let frame = STOMPFrame(command: command, headers: headers, body: body)
                if command == "CONNECTED", let version = frame[header: "version"], version != "1.0" {
                    unescapeHeaders = true
                }
                return frame

            case .skip(let command, let remaining, let discarded):
                var done = false
                var dropped: Int
                if let remaining {
                    dropped = min(remaining, buffer.readableBytes)
                    done = dropped == remaining
                    if done, remaining > 0, buffer.getInteger(at: buffer.readerIndex + remaining - 1, as: UInt8.self) != STOMPByte.nul {
                        throw STOMPError.malformedFrame("\(command): no NUL after its content-length body bytes")
                    }
                    if !done { state = .skip(command: command, remaining: remaining - dropped, discarded: discarded + dropped) }
                } else if let nul = buffer.readableBytesView.firstIndex(of: STOMPByte.nul) {
                    dropped = nul - buffer.readableBytesView.startIndex + 1
                    done = true
                } else {
                    dropped = buffer.readableBytes
                    state = .skip(command: command, remaining: nil, discarded: discarded + dropped)
                }
                buffer.moveReaderIndex(forwardBy: dropped)
                guard done else { return nil }
                state = .head(scanned: 0, lineStart: 0)
                return STOMPFrame(command: "SKIPPED", headers: [("command", command), ("bytes", "\(discarded + dropped)"),
                                                               ("limit", "\(maxFrameBytes)")])
            }
        }
    }

    /// Consumes the end-of-lines in front of a frame. False if the buffer ends with a lone CR
    /// (or is empty), i.e. more bytes are needed.
    private func skipHeartbeats(_ buffer: inout ByteBuffer) -> Bool {
        while let byte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) {
            if byte == STOMPByte.lf {
                buffer.moveReaderIndex(forwardBy: 1)
            } else if byte == STOMPByte.cr {
                guard let second = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else { return false }
                guard second == STOMPByte.lf else { return true }  // parsed (and rejected) as a command
                buffer.moveReaderIndex(forwardBy: 2)
            } else {
                return true
            }
        }
        return false
    }

    /// The number of head bytes including the empty line that ends it, or nil if that line has
    /// not arrived yet (remembering how far it searched).
    private mutating func findHeadEnd(_ buffer: ByteBuffer, scanned: Int, lineStart: Int) throws -> Int? {
        var lineStart = lineStart
        var position = scanned
        let found: Int? = buffer.withUnsafeReadableBytes { bytes in
            while position < bytes.count {
                defer { position += 1 }
                guard bytes[position] == STOMPByte.lf else { continue }
                let lineLength = position - lineStart
                if lineStart > 0 && (lineLength == 0 || (lineLength == 1 && bytes[lineStart] == STOMPByte.cr)) {
                    return position + 1
                }
                lineStart = position + 1
            }
            return nil
        }
        if found == nil {
            guard position <= maxFrameBytes else { throw STOMPError.frameTooLarge(limit: maxFrameBytes) }
            state = .head(scanned: position, lineStart: lineStart)
        }
        return found
    }

    private func parseHead(_ head: [UInt8]) throws -> (String, [(name: String, value: String)]) {
        var lines = head.split(separator: STOMPByte.lf, omittingEmptySubsequences: false).map { line in
            line.last == STOMPByte.cr ? line.dropLast() : line
        }
        // The head ends with "\n\n": drop the two empty pieces after the last headers.
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let commandLine = lines.first, !commandLine.isEmpty else { throw STOMPError.malformedFrame("no command") }
        let command = String(decoding: commandLine, as: UTF8.self)
        guard command.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) else {
            throw STOMPError.malformedFrame("bad command \(command.prefix(40).debugDescription)")
        }
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count - 1)
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: STOMPByte.colon) else {
                throw STOMPError.malformedFrame("\(command): header line without a colon")
            }
            let name = try text(line[..<colon])
            let value = try text(line[(colon + 1)...])
            headers.append((name, value))
        }
        return (command, headers)
    }

    private func text(_ bytes: ArraySlice<UInt8>) throws -> String {
        guard unescapeHeaders, bytes.contains(STOMPByte.backslash) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var escaped = false
        for byte in bytes {
            if escaped {
                switch byte {
                case STOMPByte.backslash: out.append(STOMPByte.backslash)
                case UInt8(ascii: "n"): out.append(STOMPByte.lf)
                case UInt8(ascii: "r"): out.append(STOMPByte.cr)
                case UInt8(ascii: "c"): out.append(STOMPByte.colon)
                default: throw STOMPError.malformedFrame("undefined header escape \\\(Character(Unicode.Scalar(byte)))")
                }
                escaped = false
            } else if byte == STOMPByte.backslash {
                escaped = true
            } else {
                out.append(byte)
            }
        }
        guard !escaped else { throw STOMPError.malformedFrame("header ends with a backslash") }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    /// Without leading and trailing spaces (some brokers pad header values).
    fileprivate var trimmingSpaces: Substring {
        let start = drop { $0 == " " }
        return start.dropLast(start.reversed().prefix { $0 == " " }.count)
    }
}
