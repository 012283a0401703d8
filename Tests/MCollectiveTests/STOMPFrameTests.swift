import Foundation
import NIOCore
import NIOEmbedded
import Testing

@testable import MCollective

@Suite("STOMP frames")
struct STOMPFrameTests {
    static let marshalLike: [UInt8] = [0x04, 0x08, 0x7b, 0x06, 0x3a, 0x06, 0x61, 0x69, 0x00, 0x5b, 0x00, 0x00, 0x0a, 0x0d, 0xff]

    /// Feeds `chunks` to a decoder in an EmbeddedChannel and returns the frames it produced.
    static func decode(_ chunks: [[UInt8]], maxFrameBytes: Int = 1 << 20) throws -> [STOMPFrame] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(STOMPFrameDecoder(maxFrameBytes: maxFrameBytes)))
        var frames: [STOMPFrame] = []
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(bytes: chunk))
            while let frame = try channel.readInbound(as: STOMPFrame.self) { frames.append(frame) }
        }
        _ = try channel.finish()
        return frames
    }

    static func message(_ body: [UInt8], extra: [(name: String, value: String)] = []) -> STOMPFrame {
        STOMPFrame(command: "MESSAGE",
                   headers: [("destination", "/queue/mcollective.nodes"), ("message-id", "ID:x-1:2:3"), ("content-length", "0")] + extra,
                   body: body)
    }

    @Test func encodingSetsContentLengthAndEndsWithNUL() {
        let frame = STOMPFrame(command: "SEND", headers: [("destination", "/topic/a")], body: Array("hi".utf8))
        #expect(String(decoding: frame.encoded(escapeHeaders: false), as: UTF8.self)
            == "SEND\ndestination:/topic/a\ncontent-length:2\n\nhi\0")
        // An existing content-length is corrected in place.
        let stale = STOMPFrame(command: "SEND", headers: [("content-length", "99"), ("destination", "/topic/a")], body: [1, 0, 2])
        #expect(String(decoding: stale.encoded(escapeHeaders: false), as: UTF8.self)
            == "SEND\ncontent-length:3\ndestination:/topic/a\n\n\u{1}\0\u{2}\0")
    }

    @Test func roundTripWithBinaryBody() throws {
        let frame = Self.message(Self.marshalLike)
        let frames = try Self.decode([frame.encoded(escapeHeaders: false)])
        #expect(frames.count == 1)
        var expected = frame
        expected.headers[2].value = String(Self.marshalLike.count)
        #expect(frames.first == expected)
        #expect(frames.first?.body == Self.marshalLike)
        #expect(frames.first?[header: "message-id"] == "ID:x-1:2:3")
    }

    @Test func frameSplitByteByByte() throws {
        let frame = Self.message(Self.marshalLike + Self.marshalLike)
        let bytes = frame.encoded(escapeHeaders: false)
        let frames = try Self.decode(bytes.map { [$0] })
        #expect(frames.count == 1)
        #expect(frames.first?.body == Self.marshalLike + Self.marshalLike)
    }

    @Test func severalFramesInOneBufferWithHeartbeatsBetween() throws {
        let a = Self.message([0, 1, 0])
        let b = STOMPFrame(command: "RECEIPT", headers: [("receipt-id", "r1")])
        let c = Self.message([])
        let bytes = Array("\n\r\n".utf8) + a.encoded(escapeHeaders: false) + [0x0a] + b.encoded(escapeHeaders: false)
            + Array("\n\n\r\n".utf8) + c.encoded(escapeHeaders: false) + [0x0a]
        let frames = try Self.decode([bytes])
        #expect(frames.map(\.command) == ["MESSAGE", "RECEIPT", "MESSAGE"])
        #expect(frames[0].body == [0, 1, 0])
        #expect(frames[1][header: "receipt-id"] == "r1")
        #expect(frames[2].body == [])
        // The same, split at every possible point into two chunks.
        for cut in 1..<bytes.count {
            #expect(try Self.decode([Array(bytes[..<cut]), Array(bytes[cut...])]) == frames)
        }
    }

    @Test func crlfLineEndings() throws {
        let frames = try Self.decode([Array("CONNECTED\r\nversion:1.0\r\nserver:ActiveMQ/5.17.2\r\n\r\n\0".utf8)])
        #expect(frames == [STOMPFrame(command: "CONNECTED", headers: [("version", "1.0"), ("server", "ActiveMQ/5.17.2")])])
    }

    @Test func withoutContentLengthTheBodyEndsAtTheFirstNUL() throws {
        let frames = try Self.decode([Array("MESSAGE\ndestination:/topic/x\n\nhello world\0ERROR\nmessage:bad\n\n\0".utf8)])
        #expect(frames.count == 2)
        #expect(frames[0].body == Array("hello world".utf8))
        #expect(frames[1].command == "ERROR")
        #expect(frames[1][header: "message"] == "bad")
    }

    @Test func headerEscapingOnlyAfterAVersion11Connected() throws {
        let frame = STOMPFrame(command: "MESSAGE",
                               headers: [("selector", "mc_identity = 'a:b'"), ("odd\\name", "line1\nline2\r:end")],
                               body: [0])
        let escaped = frame.encoded(escapeHeaders: true)
        #expect(String(decoding: escaped, as: UTF8.self).contains("selector:mc_identity = 'a\\cb'\nodd\\\\name:line1\\nline2\\r\\cend\n"))

        // Under STOMP 1.0 (no CONNECTED 1.1 yet) the backslashes stay.
        let before = try Self.decode([escaped])
        #expect(before.first?[header: "selector"] == "mc_identity = 'a\\cb'")

        // After CONNECTED version:1.1 they are decoded; the CONNECTED frame itself is not unescaped.
        let connected = Array("CONNECTED\nversion:1.1\nsession:ID:a\\c\nheart-beat:0,0\n\n\0".utf8)
        let after = try Self.decode([connected + escaped])
        #expect(after[0][header: "session"] == "ID:a\\c")
        #expect(after[1].command == "MESSAGE")
        var expected = frame
        expected.headers.append(("content-length", "1"))
        #expect(after[1] == expected)

        // An undefined escape is an error.
        var decoder = STOMPFrameDecoder(unescapeHeaders: true)
        var buffer = ByteBuffer(string: "MESSAGE\nbad:a\\tb\n\n\0")
        #expect(throws: STOMPError.self) { try decoder.next(from: &buffer) }
    }

    @Test func oversizedFramesAreSkippedAndTheNextOneIsRead() throws {
        let next = "MESSAGE\ncontent-length:2\n\nok\0"
        func skipped(_ frame: STOMPFrame?, bytes: Int) -> Bool {
            frame?.command == "SKIPPED" && frame?[header: "command"] == "MESSAGE" && frame?[header: "bytes"] == "\(bytes)"
                && frame?[header: "limit"] == "100"
        }
        // By content-length, before the body has arrived: its bytes are dropped as they come.
        var decoder = STOMPFrameDecoder(maxFrameBytes: 100)
        var buffer = ByteBuffer(string: "MESSAGE\ncontent-length:500\n\n")
        #expect(try decoder.next(from: &buffer) == nil)
        #expect(buffer.readableBytes == 0, "nothing of it is buffered")
        buffer.writeString(String(repeating: "x", count: 300))
        #expect(try decoder.next(from: &buffer) == nil && buffer.readableBytes == 0)
        buffer.writeString(String(repeating: "x", count: 200) + "\0" + next)
        #expect(skipped(try decoder.next(from: &buffer), bytes: 28 + 501))
        #expect(try decoder.next(from: &buffer)?.body == Array("ok".utf8))
        // Without content-length, once more bytes than the limit have arrived without a NUL.
        decoder = STOMPFrameDecoder(maxFrameBytes: 100)
        buffer = ByteBuffer(string: "MESSAGE\n\n" + String(repeating: "x", count: 90))
        #expect(try decoder.next(from: &buffer) == nil)
        buffer.writeString(String(repeating: "x", count: 20))
        #expect(try decoder.next(from: &buffer) == nil && buffer.readableBytes == 0)
        buffer.writeString(String(repeating: "x", count: 50) + "\0" + next)
        #expect(skipped(try decoder.next(from: &buffer), bytes: 9 + 160 + 1))
        #expect(try decoder.next(from: &buffer)?.body == Array("ok".utf8))
        // A head that never ends is still an error, and so is an oversized CONNECTED frame.
        decoder = STOMPFrameDecoder(maxFrameBytes: 100)
        buffer = ByteBuffer(string: "MESSAGE\n" + String(repeating: "h:v\n", count: 30))
        #expect(throws: STOMPError.frameTooLarge(limit: 100)) { try decoder.next(from: &buffer) }
        decoder = STOMPFrameDecoder(maxFrameBytes: 100)
        buffer = ByteBuffer(string: "CONNECTED\ncontent-length:500\n\n")
        #expect(throws: STOMPError.frameTooLarge(limit: 100)) { try decoder.next(from: &buffer) }
        // A content-length body not ended by a NUL is malformed, skipped or not.
        decoder = STOMPFrameDecoder(maxFrameBytes: 100)
        buffer = ByteBuffer(string: "MESSAGE\ncontent-length:200\n\n" + String(repeating: "x", count: 201))
        #expect(throws: STOMPError.self) { try decoder.next(from: &buffer) }
        // Through the channel handler, too: the big frame, then the small one after it.
        let big = Self.message([UInt8](repeating: 7, count: 200)).encoded(escapeHeaders: false)
        let frames = try Self.decode([big + Array(next.utf8)], maxFrameBytes: 100)
        #expect(frames.map(\.command) == ["SKIPPED", "MESSAGE"] && frames.last?.body == Array("ok".utf8))
        // At the limit is fine.
        let exact = Self.message([UInt8](repeating: 7, count: 10)).encoded(escapeHeaders: false)
        #expect(try Self.decode([exact], maxFrameBytes: exact.count).count == 1)
    }

    @Test func malformedFrames() {
        for text in ["MESSAGE\nno colon here\n\n\0", "message\n\n\0", "MESSAGE\ncontent-length:x\n\n\0",
                     "MESSAGE\ncontent-length:2\n\nabc\0"] {
            var decoder = STOMPFrameDecoder()
            var buffer = ByteBuffer(string: text)
            #expect(throws: STOMPError.self, "\(text.debugDescription)") { try decoder.next(from: &buffer) }
        }
    }

    /// Every frame of the capture of real `mco` traffic, re-encoded as it was on the wire (the
    /// capture's headers in order, then the body and NUL), decodes to the same headers and body.
    @Test func capturedFramesDecode() throws {
        let path = String(#filePath[..<#filePath.lastIndex(of: "/")!]) + "/Fixtures/mcollective-capture-psk-marshal.jsonl"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var all: [[UInt8]] = []
        var expected: [STOMPFrame] = []
        var messages = 0
        var messagesWithNUL = 0
        for line in text.split(separator: "\n") {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let command = try #require(json["command"] as? String)
            let headers = try #require(json["headers"] as? [[String]]).map { (name: $0[0], value: $0[1]) }
            let base64 = try #require(json["body_b64"] as? String)
            let body = [UInt8](try #require(Data(base64Encoded: base64)))
            #expect(body.count == json["body_len"] as? Int)
            var wire = Array(command.utf8) + [0x0a]
            for (name, value) in headers { wire += Array("\(name):\(value)\n".utf8) }
            wire += [0x0a] + body + [0]
            all.append(wire)
            expected.append(STOMPFrame(command: command, headers: headers, body: body))
            if command == "MESSAGE" {
                messages += 1
                if body.contains(0) { messagesWithNUL += 1 }
                let frames = try Self.decode([wire])
                #expect(frames.count == 1)
                #expect(frames.first == expected.last)
                #expect(frames.first?.body.count == json["body_len"] as? Int)
                // Encoding again gives the same bytes: content-length was already right.
                #expect(frames.first?.encoded(escapeHeaders: false) == wire)
            }
        }
        #expect(messages == 54)
        #expect(messagesWithNUL > 20, "Marshal bodies (most of them) contain NUL bytes")
        // All frames back to back, as one stream in 1000-byte chunks.
        let stream = all.flatMap { $0 }
        let chunks = stride(from: 0, to: stream.count, by: 1000).map { Array(stream[$0..<min($0 + 1000, stream.count)]) }
        #expect(try Self.decode(chunks, maxFrameBytes: 1 << 20) == expected)
    }
}
