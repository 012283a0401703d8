import Foundation
import Testing

@testable import MCollective

// Expected bytes come from real Ruby 3.1 (`Marshal.dump`), from the captured
// frames, or from the testbed's Python oracle where it agrees with Ruby.
// Nothing here needs Ruby or Python at run time.

// MARK: - Helpers

/// "04 08 7b ..." (whitespace ignored) to bytes.
fileprivate func marshalHex(_ text: String) -> [UInt8] {
    let digits = text.unicodeScalars.filter { !CharacterSet.whitespacesAndNewlines.contains($0) }
    var out: [UInt8] = []
    var high: UInt8?
    for scalar in digits {
        guard let nibble = UInt8(String(scalar), radix: 16) else {
            Issue.record("bad hex digit \(scalar) in test vector")
            return []
        }
        if let h = high {
            out.append(h << 4 | nibble)
            high = nil
        } else {
            high = nibble
        }
    }
    #expect(high == nil, "odd number of hex digits in test vector")
    return out
}

fileprivate func marshalHexString(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

fileprivate func marshalLoadError(_ bytes: [UInt8], limits: RubyMarshal.Limits = .default) -> MarshalError? {
    do {
        let value = try RubyMarshal.load(bytes, limits: limits)
        Issue.record("expected a MarshalError, decoded \(value)")
        return nil
    } catch {
        return error
    }
}

fileprivate func rbSym(_ name: String) -> RubyValue { .symbol(name) }
fileprivate func rbASCII(_ s: String) -> RubyValue { .string(Array(s.utf8), .usASCII) }
fileprivate func rbBinary(_ bytes: [UInt8]) -> RubyValue { .string(bytes, .binary) }

/// One STOMP frame of the saved capture.
fileprivate struct MarshalCaptureFrame {
    let line: Int
    let command: String
    let direction: String
    let scenario: String
    let body: [UInt8]

    var isMarshal: Bool {
        (command == "MESSAGE" || command == "SEND") && body.count >= 2 && body[0] == 4 && body[1] == 8
    }
}

fileprivate let marshalCapturePSK = "testbed-psk-secret"

fileprivate func loadMarshalCapture() throws -> [MarshalCaptureFrame] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/mcollective-capture-psk-marshal.jsonl")
    let text = try String(contentsOf: url, encoding: .utf8)
    var frames: [MarshalCaptureFrame] = []
    for (index, line) in text.split(separator: "\n").enumerated() {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        let json = try #require(object as? [String: Any])
        let body64 = try #require(json["body_b64"] as? String)
        let body = try #require(Data(base64Encoded: body64))
        frames.append(
            MarshalCaptureFrame(
                line: index,
                command: try #require(json["command"] as? String),
                direction: try #require(json["dir"] as? String),
                scenario: try #require(json["scenario"] as? String),
                body: Array(body)))
    }
    return frames
}

// Scenario A, `mco rpc openshift echo msg=foo`: the direct request as the
// client sent it (433 bytes, with `@` object links) and the reply (255 bytes).
fileprivate func marshalCaptureRequestFrame() throws -> MarshalCaptureFrame {
    let frames = try loadMarshalCapture()
    return try #require(frames.first { $0.isMarshal && $0.body.count == 433 && $0.scenario.hasPrefix("A") })
}

// MARK: - Documented vectors

/// mcollective-testbed.md 5.5: the inner request body (108 bytes).
fileprivate let marshalInnerRequestHex = """
    04 08 7b 09 3a 0a 61 67 65 6e 74 49 22 0e 6f 70 65 6e 73 68 69 66 74 06 3a 06 45 54 3a 0b 61 63
    74 69 6f 6e 49 22 09 65 63 68 6f 06 3b 06 46 3a 0b 63 61 6c 6c 65 72 49 22 0a 75 69 64 3d 30 06
    3b 06 54 3a 09 64 61 74 61 7b 07 3a 08 6d 73 67 49 22 08 66 6f 6f 06 3b 06 54 3a 14 70 72 6f 63
    65 73 73 5f 72 65 73 75 6c 74 73 54
    """

/// mcollective-testbed.md 5.5: the inner reply body (75 bytes).
fileprivate let marshalInnerReplyHex = """
    04 08 7b 08 3a 0f 73 74 61 74 75 73 63 6f 64 65 69 00 3a 0e 73 74 61 74 75 73 6d 73 67 49 22 07
    4f 4b 06 3a 06 45 54 3a 09 64 61 74 61 7b 07 3a 08 6d 73 67 49 22 08 66 6f 6f 06 3b 07 54 3a 09
    74 69 6d 65 6c 2b 07 02 3e 06 6b
    """

/// Ruby: Marshal.dump of a request envelope shaped like mco's, whose
/// filter["identity"] is [/^(node1|node2)\.test$/, "node3.test"]; `:agent`
/// is the same object as filter["agent"][0], so it is written as `@` link.
fileprivate let marshalRegexpFilterEnvelopeHex = """
    04087b0f3a09626f6479227104087b093a0a6167656e7449220e6f70656e7368696674063a0645543a0b616374696f6e
    4922096563686f063b06543a0b63616c6c657249220a7569643d30063b06543a09646174617b073a086d736749220866
    6f6f063b06543a1470726f636573735f726573756c7473543a0d73656e6465726964492211636c69656e74312e746573
    74063a0645543a0e7265717565737469644922253031323334353637383961626364656630313233343536373839616263
    646566063b07463a0b66696c7465727b0a49220966616374063b07545b0049220d63665f636c617373063b07545b0049
    220a6167656e74063b07545b0649220e6f70656e7368696674063b075449220d6964656e74697479063b07545b07492f
    1a5e286e6f6465317c6e6f646532295c2e746573742400063b074649220f6e6f6465332e74657374063b075449220d63
    6f6d706f756e64063b07545b003a0f636f6c6c6563746976654922106d636f6c6c656374697665063b07543a0a616765
    6e7440103a0d63616c6c6572696449220a7569643d30063b07543a0874746c69413a0c6d736774696d656c2b07023e06
    6b3a09686173684922253137323738666436303531363164623831363461356133356439646561336139063b0746
    """

@Suite("Ruby Marshal 4.8 and the psk hash")
struct MarshalTests {

    // MARK: Capture

    @Test func everyCapturedMarshalBodyDecodesAndCarriesTheTestbedPSKHash() throws {
        let frames = try loadMarshalCapture().filter(\.isMarshal)
        // mcollective-testbed.md 5.1: 102 psk-bearing bodies in the captures.
        #expect(frames.count == 102)
        // Every scenario of this capture (A–G, I) ran with the testbed psk; a
        // wrong psk must never validate.
        for frame in frames {
            let envelope = try RubyMarshal.load(frame.body)
            let hash = try #require(envelope.dictionary, "line \(frame.line)")
            let inner = try #require(hash[symbol: "body"]?.bytes, "line \(frame.line)")
            let claimed = try #require(hash[symbol: "hash"]?.stringValue, "line \(frame.line)")
            #expect(hash[symbol: "body"] == rbBinary(inner), "the :body is a rbBinary String")
            #expect(PSK.hash(body: inner, psk: marshalCapturePSK) == claimed, "line \(frame.line) \(frame.scenario)")
            #expect(PSK.hash(body: inner, psk: "wrong-psk") != claimed, "line \(frame.line)")
            #expect(PSK.hash(body: inner, psk: marshalCapturePSK + " ") != claimed, "line \(frame.line)")
            let decodedInner = try RubyMarshal.load(inner)
            #expect(!decodedInner.isNull, "line \(frame.line)")
            #expect(hash[symbol: "senderid"]?.stringValue != nil, "line \(frame.line)")
            #expect(hash[symbol: "msgtime"]?.intValue.map { $0 >= 1 << 30 } == true, "msgtime is a Bignum")
        }
    }

    @Test func serverRepliesInTheCaptureReencodeByteIdentically() throws {
        let replies = try loadMarshalCapture().filter { frame in
            guard frame.isMarshal, frame.direction == "client->broker", frame.command == "SEND" else { return false }
            return (try? RubyMarshal.load(frame.body).dictionary?[symbol: "senderagent"]) != nil
        }
        #expect(replies.count == 34)
        for frame in replies {
            let envelope = try RubyMarshal.load(frame.body)
            let inner = try #require(envelope.dictionary?[symbol: "body"]?.bytes)
            let decoded = try RubyMarshal.load(inner)
            #expect(RubyMarshal.dump(decoded) == inner, "inner reply body, line \(frame.line)")
            // Replies carry no object links, so the whole envelope re-encodes too.
            #expect(RubyMarshal.dump(envelope) == frame.body, "reply envelope, line \(frame.line)")
        }
    }

    @Test func requestEnvelopeObjectLinksResolveToTheLinkedStrings() throws {
        let frame = try marshalCaptureRequestFrame()
        // `3a 0a "agent" 40 10`: :agent => @11, the "openshift" inside filter["agent"].
        let linked: [UInt8] = [0x3a, 0x0a] + Array("agent".utf8) + [0x40, 0x10]
        #expect(frame.body.indices.contains { frame.body[$0...].starts(with: linked) })

        let envelope = try #require(try RubyMarshal.load(frame.body).dictionary)
        #expect(envelope.keys == ["body", "senderid", "requestid", "filter", "collective", "agent", "callerid", "ttl", "msgtime", "hash"].map(rbSym))
        #expect(envelope[symbol: "agent"] == .str("openshift"))
        #expect(envelope[symbol: "senderid"] == .str("client1.test"))
        #expect(envelope[symbol: "requestid"] == rbASCII("893e536ec60b58e081495bbc9905cca7"))
        #expect(envelope[symbol: "ttl"] == .int(60))
        #expect(envelope[symbol: "msgtime"] == .int(1_795_571_202))
        #expect(envelope[symbol: "hash"] == rbASCII("915be1d518c35502a17ecd9405bb18eb"))
        let filter = try #require(envelope[symbol: "filter"]?.dictionary)
        #expect(filter[.str("agent")] == .array([.str("openshift")]))
        #expect(filter[symbol: "identity"] == .array([]))

        let inner = try #require(envelope[symbol: "body"]?.bytes)
        #expect(inner == marshalHex(marshalInnerRequestHex))
    }

    @Test func discoveryRequestCollectiveIsAnObjectLink() throws {
        let frames = try loadMarshalCapture().filter(\.isMarshal)
        let discovery = try #require(frames.first { $0.body.count == 372 })
        let linked: [UInt8] = [0x3a, 0x0f] + Array("collective".utf8) + [0x40, 0x16]
        #expect(discovery.body.indices.contains { discovery.body[$0...].starts(with: linked) })
        let envelope = try #require(try RubyMarshal.load(discovery.body).dictionary)
        #expect(envelope[symbol: "collective"] == .str("mcollective"))
        #expect(envelope[symbol: "filter"]?.dictionary?[symbol: "collective"] == .str("mcollective"))
        #expect(envelope[symbol: "agent"] == .str("discovery"))
        let inner = try #require(envelope[symbol: "body"]?.bytes)
        #expect(try RubyMarshal.load(inner) == .str("ping"))
    }

    // MARK: Documented bodies

    @Test func documentedInnerRequestBodyDecodes() throws {
        let bytes = marshalHex(marshalInnerRequestHex)
        #expect(bytes.count == 108)
        let expected: RubyValue = .hash([
            rbSym("agent"): .str("openshift"),
            rbSym("action"): rbASCII("echo"),
            rbSym("caller"): .str("uid=0"),
            rbSym("data"): .hash([rbSym("msg"): .str("foo"), rbSym("process_results"): .bool(true)]),
        ])
        let decoded = try RubyMarshal.load(bytes)
        #expect(decoded == expected)
        #expect(decoded.dictionary?[symbol: "data"]?.dictionary?[symbol: "process_results"]?.boolValue == true)
        #expect(RubyMarshal.dump(decoded) == bytes)
    }

    @Test func documentedInnerReplyBodyDecodesAndReencodesIdentically() throws {
        let bytes = marshalHex(marshalInnerReplyHex)
        #expect(bytes.count == 75)
        let expected: RubyValue = .hash([
            rbSym("statuscode"): .int(0),
            rbSym("statusmsg"): .str("OK"),
            rbSym("data"): .hash([rbSym("msg"): .str("foo"), rbSym("time"): .int(1_795_571_202)]),
        ])
        #expect(try RubyMarshal.load(bytes) == expected)
        #expect(RubyMarshal.dump(expected) == bytes)
    }

    // MARK: psk

    @Test(arguments: [
        ("040849220970696e67063a064554", "testbed-psk-secret", "42940951bf5841a3c1b36d25a784b56c"),
        ("0408492209706f6e67063a064554", "testbed-psk-secret", "2dfd399671ed6f5649c4d4e557107af5"),
        (
            "04087b093a0a6167656e7449220e6f70656e7368696674063a0645543a0b616374696f6e4922096563686f063b06463a0b63616c6c657249220a7569643d30063b06543a09646174617b073a086d7367492208666f6f063b06543a1470726f636573735f726573756c747354",
            "testbed-psk-secret", "915be1d518c35502a17ecd9405bb18eb"
        ),
        (
            "04087b083a0f737461747573636f646569003a0e7374617475736d73674922074f4b063a0645543a09646174617b073a086d7367492208666f6f063b07543a0974696d656c2b07023e066b",
            "testbed-psk-secret", "77913c921c36e5bee789b3e6ea21c06b"
        ),
        ("040849220970696e67063a064554", "unset", "1e45f081ad6476258f8267a4dca72726"),
        ("0408492209706f6e67063a064554", "unset", "0eef8ecc099eaa0c67de5dca209f0af1"),
    ] as [(String, String, String)])
    func pskHashMatchesTheDocumentedVectors(bodyHex: String, psk: String, expected: String) {
        #expect(PSK.hash(body: marshalHex(bodyHex), psk: psk) == expected)
    }

    @Test func pskHashIsLowercaseHexOfMD5OverBodyThenPSK() {
        // MD5("") and MD5("abc"): the body and the psk are simply concatenated.
        #expect(PSK.hash(body: [], psk: "") == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(PSK.hash(body: Array("ab".utf8), psk: "c") == "900150983cd24fb0d6963f7d28e17f72")
        #expect(PSK.hash(body: Array("abc".utf8), psk: "") == "900150983cd24fb0d6963f7d28e17f72")
    }

    // MARK: Regexp

    @Test func regexpInTheIdentityFilterDecodesAsRegexp() throws {
        let envelope = try #require(try RubyMarshal.load(marshalHex(marshalRegexpFilterEnvelopeHex)).dictionary)
        let identity = try #require(envelope[symbol: "filter"]?.dictionary?[symbol: "identity"]?.arrayValue)
        #expect(identity == [.regexp(source: #"^(node1|node2)\.test$"#, options: 0), .str("node3.test")])
        // The link after the Regexp still points at the right object.
        #expect(envelope[symbol: "agent"] == .str("openshift"))
        #expect(envelope[symbol: "requestid"] == rbASCII("0123456789abcdef0123456789abcdef"))
        let inner = try #require(envelope[symbol: "body"]?.bytes)
        #expect(PSK.hash(body: inner, psk: marshalCapturePSK) == envelope[symbol: "hash"]?.stringValue)
    }

    @Test func regexpsEncodeLikeRuby() throws {
        let identity = RubyValue.regexp(source: #"^(node1|node2)\.test$"#, options: 0)
        let rubyIdentity = marshalHex("0408492f1a5e286e6f6465317c6e6f646532295c2e746573742400063a064546")
        #expect(RubyMarshal.dump(identity) == rubyIdentity)
        #expect(try RubyMarshal.load(rubyIdentity) == identity)
        // /a.b/mix
        let flags = marshalHex("0408492f08612e6207063a064546")
        #expect(try RubyMarshal.load(flags) == .regexp(source: "a.b", options: 7))
        #expect(RubyMarshal.dump(.regexp(source: "a.b", options: 7)) == flags)
        // /é/: non-ASCII source, UTF-8, fixed-encoding flag 16.
        let utf8 = marshalHex("0408492f07c3a910063a064554")
        #expect(try RubyMarshal.load(utf8) == .regexp(source: "é", options: 16))
        #expect(RubyMarshal.dump(.regexp(source: "é", options: 16)) == utf8)
    }

    // MARK: Integers

    @Test(arguments: [
        (0, "04086900"),
        (1, "04086906"),
        (-1, "040869fa"),
        (122, "0408697f"),
        (123, "040869017b"),
        (-123, "04086980"),
        (-124, "040869ff84"),
        (255, "04086901ff"),
        (256, "040869020001"),
        (-256, "040869ff00"),
        (-257, "040869fefffe"),
        (65535, "04086902ffff"),
        (65536, "04086903000001"),
        ((1 << 30) - 1, "04086904ffffff3f"),
        (1 << 30, "04086c2b0700000040"),
        (-(1 << 30), "040869fc000000c0"),
        (-(1 << 30) - 1, "04086c2d0701000040"),
        (1_795_571_202, "04086c2b07023e066b"),
        (-1_795_571_202, "04086c2d07023e066b"),
        (1 << 31, "04086c2b0700000080"),
        (1 << 32, "04086c2b08000000000100"),
        (1 << 40, "04086c2b08000000000001"),
        (1 << 62, "04086c2b090000000000000040"),
        (Int.max, "04086c2b09ffffffffffffff7f"),
        (Int.min, "04086c2d090000000000000080"),
    ] as [(Int, String)])
    func integersAtTheFixnumBignumEdgesMatchRuby(value: Int, hex: String) throws {
        let bytes = marshalHex(hex)
        #expect(marshalHexString(RubyMarshal.dump(.int(value))) == hex)
        #expect(try RubyMarshal.load(bytes) == .int(value))
    }

    @Test func bignumsBeyondSixtyFourBitsAreRejectedNotTrapped() throws {
        // 2^64 as a 5-word Bignum.
        let tooBig = marshalHex("04086c2b0a00000000000000000100")
        #expect(marshalLoadError(tooBig)?.reason.contains("64 bits") == true)
        // 2^63 positive does not fit in Int; -2^63 does.
        #expect(marshalLoadError(marshalHex("04086c2b090000000000000080")) != nil)
        #expect(try RubyMarshal.load(marshalHex("04086c2d090000000000000080")) == .int(.min))
        // Zero padding above the magnitude is harmless.
        #expect(try RubyMarshal.load(marshalHex("04086c2b0a01000000000000000000")) == .int(1))
        // Sign must be + or -.
        #expect(marshalLoadError(marshalHex("04086c3f0601000000")) != nil)
    }

    @Test func compactLongsInEveryWidthDecode() throws {
        // `i` with the 1..4-byte positive and negative forms, as lengths too.
        #expect(try RubyMarshal.load(marshalHex("04086903010000")) == .int(1))  // non-minimal, still valid
        #expect(try RubyMarshal.load(marshalHex("040869fdfeffff")) == .int(-2))
        #expect(try RubyMarshal.load(marshalHex("040869fc00000000")) == .int(-(1 << 32)))
        #expect(try RubyMarshal.load(marshalHex("0408690400000080")) == .int(1 << 31))
        #expect(try RubyMarshal.load(marshalHex("04086905")) == .int(0))  // byte 5 is 0 too
        let long = [UInt8](repeating: 0x61, count: 300)
        let dumped = RubyMarshal.dump(.string(long, .binary))
        #expect(Array(dumped.prefix(5)) == [4, 8, 0x22, 0x02, 0x2c])
        #expect(try RubyMarshal.load(dumped) == .string(long, .binary))
    }

    // MARK: Floats

    @Test(arguments: [
        // Python oracle and Ruby agree on these.
        (0.5, "04086608302e35"),
        (1.0, "0408660631"),
        (-2.25, "0408660a2d322e3235"),
        (Double.infinity, "04086608696e66"),
        (-Double.infinity, "040866092d696e66"),
        // Ruby only (marshal.c w_float exponent rules).
        (100.0, "04086608316532"),
        (1e-5, "0408660931652d35"),
        (1e20, "0408660931653230"),
        (-0.0, "040866072d30"),
        (123_456.789, "0408660f3132333435362e373839"),
        (1.0 / 3.0, "04086617302e33333333333333333333333333333333"),
        (1e16, "0408660931653136"),
        (1e15, "0408660931653135"),
        (0.0001, "0408660b302e30303031"),
        (0.001, "0408660a302e303031"),
        (1.5e300, "0408660c312e3565333030"),
        (Double.leastNonzeroMagnitude, "0408660b35652d333234"),
        (2.5e-7, "0408660b322e35652d37"),
        (-Double.greatestFiniteMagnitude, "0408661c2d312e3739373639333133343836323331353765333038"),
        (12.0, "040866073132"),
        (1_234_567.0, "0408660c31323334353637"),
    ] as [(Double, String)])
    func floatsRoundTripWithRubysText(value: Double, hex: String) throws {
        #expect(marshalHexString(RubyMarshal.dump(.float(value))) == hex)
        let decoded = try RubyMarshal.load(marshalHex(hex))
        guard case .float(let d) = decoded else {
            Issue.record("decoded \(decoded)")
            return
        }
        #expect(d.bitPattern == value.bitPattern)
    }

    @Test func nanRoundTrips() throws {
        let bytes = marshalHex("040866086e616e")
        #expect(RubyMarshal.dump(.float(.nan)) == bytes)
        guard case .float(let d) = try RubyMarshal.load(bytes) else {
            Issue.record("not a float")
            return
        }
        #expect(d.isNaN)
    }

    @Test func malformedFloatTextIsRejected() {
        #expect(marshalLoadError(marshalHex("040866073178")) != nil)  // "1x"
        #expect(marshalLoadError(marshalHex("04086600")) != nil)  // ""
        #expect(marshalLoadError(marshalHex("040866093078317033")) != nil)  // "0x1p3"
    }

    // MARK: Strings and symbols

    @Test func stringEncodingsMatchRuby() throws {
        // Ruby: ["utf8 é", "ascii".encode("US-ASCII"), "bin\xff".b]
        let bytes = marshalHex("04085b0849220c7574663820c3a9063a06455449220a6173636969063b0046220962696eff")
        let value: RubyValue = .array([.str("utf8 é"), rbASCII("ascii"), rbBinary(Array("bin".utf8) + [0xff])])
        #expect(RubyMarshal.dump(value) == bytes)
        #expect(try RubyMarshal.load(bytes) == value)
        // Ruby: "sj".encode("Shift_JIS")
        let sjis = marshalHex("0408492207736a063a0d656e636f64696e67220e53686966745f4a4953")
        let sjisValue = RubyValue.string(Array("sj".utf8), .other("Shift_JIS"))
        #expect(RubyMarshal.dump(sjisValue) == sjis)
        #expect(try RubyMarshal.load(sjis) == sjisValue)
        // Ruby: ["é".encode("ISO-8859-1")]: not UTF-8, so no stringValue.
        let latin1 = try RubyMarshal.load(marshalHex("04085b06492206e9063a0d656e636f64696e67220f49534f2d383835392d31"))
        #expect(latin1 == .array([.string([0xe9], .other("ISO-8859-1"))]))
        #expect(latin1.arrayValue?.first?.stringValue == nil)
        #expect(latin1.arrayValue?.first?.bytes == [0xe9])
    }

    @Test func repeatedEncodingNamesAreReadThroughObjectLinks() throws {
        // Ruby: ["utf8 é", "ascii", "bin\xff".b, "sj".encode("Shift_JIS"), "sj2".encode("Shift_JIS")]
        // The second "Shift_JIS" name is `@0a`, a link to the first name String.
        let bytes = marshalHex(
            "04085b0a49220c7574663820c3a9063a06455449220a6173636969063b0046220962696eff492207736a063a0d656e636f64696e67220e53686966745f4a4953492208736a32063b06400a"
        )
        let decoded = try RubyMarshal.load(bytes)
        #expect(
            decoded
                == .array([
                    .str("utf8 é"), rbASCII("ascii"), rbBinary(Array("bin".utf8) + [0xff]),
                    .string(Array("sj".utf8), .other("Shift_JIS")), .string(Array("sj2".utf8), .other("Shift_JIS")),
                ]))
        #expect(RubyMarshal.dump(decoded) == bytes)
    }

    @Test func valuesRubyTreatsAsOneObjectAreLinkedLikeRuby() throws {
        // Ruby: [0.5, 0.5, 1e300, 1e300, 0.0/0.0, 0.0/0.0, -0.0, -0.0, 0.0, 0.0, 2.5]
        // Equal flonums (0.5, 0.0) are one immediate object: linked. 1e300,
        // NaN and -0.0 are heap Floats: written each time.
        let floats = marshalHex(
            "04085b106608302e354006660a3165333030660a316533303066086e616e66086e616e66072d3066072d30660630400d6608322e35"
        )
        let values: [Double] = [0.5, 0.5, 1e300, 1e300, .nan, .nan, -0.0, -0.0, 0.0, 0.0, 2.5]
        #expect(RubyMarshal.dump(.array(values.map(RubyValue.float))) == floats)
        let decoded = try #require(try RubyMarshal.load(floats).arrayValue)
        let bits = decoded.compactMap { value -> UInt64? in
            if case .float(let d) = value { return d.isNaN ? Double.nan.bitPattern : d.bitPattern }
            return nil
        }
        #expect(bits == values.map { $0.isNaN ? Double.nan.bitPattern : $0.bitPattern })

        // Ruby: {"k"=>{"k"=>1, :s=>"k"}, "x"=>["k"], 3=>{"x"=>0, "k".b=>4}}
        // Hash#[]= interns String keys, so a repeated key is a link; the
        // String values and the rbBinary "k" are separate objects.
        let keys = marshalHex(
            "04087b084922066b063a0645547b07400669063a06734922066b063b005449220678063b00545b064922066b063b005469087b074009690022066b6909"
        )
        let value: RubyValue = .hash([
            .str("k"): .hash([.str("k"): .int(1), rbSym("s"): .str("k")]),
            .str("x"): .array([.str("k")]),
            .int(3): .hash([.str("x"): .int(0), rbBinary(Array("k".utf8)): .int(4)]),
        ])
        #expect(RubyMarshal.dump(value) == keys)
        #expect(try RubyMarshal.load(keys) == value)
    }

    @Test func symbolsAreWrittenOnceThenAsSymlinksLikeRuby() throws {
        // Ruby: [:a, :b, :a, :"é", :"é", :E, "x"]
        let bytes = marshalHex("04085b0c3a06613a06623b00493a07c3a9063a0645543b073b0849220678063b0854")
        let value: RubyValue = .array([rbSym("a"), rbSym("b"), rbSym("a"), rbSym("é"), rbSym("é"), rbSym("E"), .str("x")])
        #expect(RubyMarshal.dump(value) == bytes)
        #expect(try RubyMarshal.load(bytes) == value)
    }

    @Test func nestedReplyValuesMatchRuby() throws {
        // Ruby: {:statuscode=>0, :statusmsg=>"OK", :data=>{:n=>nil, :t=>true, :f=>false,
        //        :l=>[1, -1, 2.5, "s"], :neg=>-1795571202}}
        let bytes = marshalHex(
            "04087b083a0f737461747573636f646569003a0e7374617475736d73674922074f4b063a0645543a09646174617b0a3a066e303a0674543a0666463a066c5b09690669fa6608322e3549220673063b07543a086e65676c2d07023e066b"
        )
        let value: RubyValue = .hash([
            rbSym("statuscode"): .int(0),
            rbSym("statusmsg"): .str("OK"),
            rbSym("data"): .hash([
                rbSym("n"): .null, rbSym("t"): .bool(true), rbSym("f"): .bool(false),
                rbSym("l"): .array([.int(1), .int(-1), .float(2.5), .str("s")]),
                rbSym("neg"): .int(-1_795_571_202),
            ]),
        ])
        #expect(RubyMarshal.dump(value) == bytes)
        #expect(try RubyMarshal.load(bytes) == value)
    }

    // MARK: Object table

    @Test func objectLinksCountStringsBignumsAndFloatsInOrderOfAppearance() throws {
        // Ruby: a = "shared"; [a, a, [a], 2**40, 2**40, 1.5, 1.5]
        // Bignums take table slots (#3, #4), so the Float link is @5.
        let bytes = marshalHex("04085b0c49220b736861726564063a06455440065b0640066c2b080000000000016c2b080000000000016608312e35400a")
        let shared = RubyValue.str("shared")
        #expect(
            try RubyMarshal.load(bytes)
                == .array([shared, shared, .array([shared]), .int(1 << 40), .int(1 << 40), .float(1.5), .float(1.5)]))
        // Ruby: f = 1.5; b = 2**40; [f, f, b, b]
        let links2 = marshalHex("04085b096608312e3540066c2b08000000000001" + "6c2b08000000000001")
        #expect(try RubyMarshal.load(links2) == .array([.float(1.5), .float(1.5), .int(1 << 40), .int(1 << 40)]))
    }

    @Test func userClassesHashDefaultsAndUnknownIvarsDecodeAsTheBaseValues() throws {
        // Ruby: MyHash (< Hash) {"k" => MyStr (< String) "v"}
        #expect(
            try RubyMarshal.load(marshalHex("0408433a0b4d79486173687b064922066b063a06455449433a0a4d79537472220676063b0654"))
                == .hash([.str("k"): .str("v")]))
        // Ruby: Hash.new(5).merge(a: 1): default dropped.
        #expect(try RubyMarshal.load(marshalHex("04087d063a06616906690a")) == .hash([rbSym("a"): .int(1)]))
        // Ruby: "é" with @foo = 1, and [1] with @bar = "x": extra ivars ignored.
        #expect(try RubyMarshal.load(marshalHex("0408492207c3a9073a0645543a0940666f6f6906")) == .str("é"))
        #expect(try RubyMarshal.load(marshalHex("0408495b066906063a094062617249220678063a064554")) == .array([.int(1)]))
    }

    // MARK: Hostile input

    @Test func everyTruncationOfARealEnvelopeIsAnError() throws {
        let frame = try marshalCaptureRequestFrame()
        for length in 0..<frame.body.count {
            #expect(marshalLoadError(Array(frame.body.prefix(length))) != nil, "prefix of \(length) bytes")
        }
        let inner = marshalHex(marshalInnerReplyHex)
        for length in 0..<inner.count {
            #expect(marshalLoadError(Array(inner.prefix(length))) != nil, "prefix of \(length) bytes")
        }
    }

    @Test func lengthsClaimingTwoGigabytesAreErrors() {
        // String, Array, Hash, Symbol, Float, Regexp, Bignum lengths of 2^31.
        for hex in [
            "0408220400000080", "04085b0400000080", "04087b0400000080", "04083a0400000080",
            "0408660400000080", "04082f0400000080", "04086c2b0400000080", "040849220400000080",
        ] {
            let error = marshalLoadError(marshalHex(hex))
            #expect(error != nil, "\(hex)")
        }
        // 2^32 - 1, the largest the format can express.
        #expect(marshalLoadError(marshalHex("04085b04ffffffff")) != nil)
        // Negative lengths.
        #expect(marshalLoadError(marshalHex("040822fa")) != nil)
        #expect(marshalLoadError(marshalHex("04085bfa")) != nil)
    }

    @Test func tenThousandNestedArraysAreRejectedByTheDepthLimit() {
        var bytes: [UInt8] = [4, 8]
        for _ in 0..<10_000 {
            bytes += [0x5b, 0x06]
        }
        bytes.append(0x30)
        let error = marshalLoadError(bytes)
        #expect(error?.reason.contains("nesting") == true)
        // 64 levels are fine with the default limits, 65 are not.
        func nested(_ n: Int) -> [UInt8] {
            [4, 8] + Array(repeating: [0x5b, 0x06], count: n).flatMap { $0 } + [0x30]
        }
        #expect((try? RubyMarshal.load(nested(63))) != nil)
        #expect(marshalLoadError(nested(64)) != nil)
        #expect(marshalLoadError(nested(3), limits: .init(maxDepth: 3)) != nil)
    }

    @Test func linksToObjectsOrSymbolsNotYetDefinedAreErrors() {
        // ["a", @2]: #0 is the Array, #1 "a", nothing at #2.
        #expect(marshalLoadError(marshalHex("04085b0722066140" + "07"))?.reason.contains("undefined") == true)
        // [@0]: the Array itself, still being decoded (a cycle).
        #expect(marshalLoadError(marshalHex("04085b064000")) != nil)
        // @0 at top level, before any object.
        #expect(marshalLoadError(marshalHex("04084000")) != nil)
        // Negative object link.
        #expect(marshalLoadError(marshalHex("040840fa")) != nil)
        // ;0 before any symbol.
        #expect(marshalLoadError(marshalHex("04083b00")) != nil)
        // Ivar name that is not a symbol.
        #expect(marshalLoadError(marshalHex("040849220661066906")) != nil)
    }

    @Test(arguments: [
        ("04086f3a0b4f626a65637400", "o", 2),  // Object.new
        ("040849753a0954696d650d2080118000000000073a0b6f666673657469003a097a6f6e65492208555443063a064546", "u", 3),  // Time.at(0)
        ("0408553a0646690a", "U", 2),
        ("040849653a08457874220678063a064554", "e", 3),  // "x".extend(Ext)
        ("0408533a0a506f696e74063a06786906", "S", 2),  // Struct
        ("0408630b537472696e67", "c", 2),  // String (class)
        ("04086d0b4b65726e656c", "m", 2),  // Kernel (module)
        ("04084d0b4b65726e656c", "M", 2),
        ("0408643a0646", "d", 2),
        ("04087a", "z", 2),
        ("040821", "!", 2),
    ] as [(String, String, Int)])
    func unsupportedTypesAreErrorsNamingTheTypeByteAndOffset(hex: String, type: String, offset: Int) throws {
        let error = try #require(marshalLoadError(marshalHex(hex)))
        #expect(error.offset == offset)
        let hexName = String(format: "0x%02x", Character(type).unicodeScalars.first!.value)
        #expect(error.reason.contains(hexName), "\(error)")
        #expect(error.description.contains("offset \(offset)"))
    }

    @Test func trailingBytesAfterTheTopLevelValueAreAnError() throws {
        #expect(try RubyMarshal.load(marshalHex("040830")) == .null)
        let error = try #require(marshalLoadError(marshalHex("04083030")))
        #expect(error.offset == 3)
        #expect(error.reason.contains("trailing"))
        var reply = marshalHex(marshalInnerReplyHex)
        reply.append(0)
        #expect(marshalLoadError(reply)?.offset == 75)
    }

    @Test func wrongVersionOrEmptyInputIsAnError() {
        #expect(marshalLoadError([])?.offset == 0)
        #expect(marshalLoadError([4]) != nil)
        #expect(marshalLoadError(marshalHex("040930"))?.offset == 0)
        #expect(marshalLoadError(marshalHex("030830")) != nil)
    }

    @Test func repeatedLinksCannotExpandBeyondTheElementLimit() {
        // A = [0, 0]; B = [A, A]; C = [B, B]; ... 40 levels: 2^40 values if
        // expanded. Every link counts the size of what it points to.
        var bytes: [UInt8] = [4, 8, 0x5b, 40 + 5, 0x5b, 0x07, 0x69, 0x00, 0x69, 0x00]
        for k in 1..<40 {
            bytes += [0x5b, 0x07, 0x40, UInt8(k + 5), 0x40, UInt8(k + 5)]
        }
        #expect(marshalLoadError(bytes)?.reason.contains("values") == true)
        // Ten levels (about 2^11 values) are fine.
        var small: [UInt8] = [4, 8, 0x5b, 10 + 5, 0x5b, 0x07, 0x69, 0x00, 0x69, 0x00]
        for k in 1..<10 {
            small += [0x5b, 0x07, 0x40, UInt8(k + 5), 0x40, UInt8(k + 5)]
        }
        #expect((try? RubyMarshal.load(small)) != nil)
        #expect(marshalLoadError(small, limits: .init(maxElements: 1000)) != nil)
    }

    @Test func limitsOnSizeAndElementCountApply() {
        let ping = marshalHex("040849220970696e67063a064554")
        #expect(marshalLoadError(ping, limits: .init(maxBytes: 13)) != nil)
        #expect((try? RubyMarshal.load(ping, limits: .init(maxBytes: 14))) == .str("ping"))
        let tenInts: [UInt8] = [4, 8, 0x5b, 15] + Array(repeating: [0x69, 0x00], count: 10).flatMap { $0 }
        #expect(marshalLoadError(tenInts, limits: .init(maxElements: 5)) != nil)
        #expect((try? RubyMarshal.load(tenInts, limits: .init(maxElements: 11)))?.arrayValue?.count == 10)
    }

    @Test func randomlyCorruptedEnvelopesNeverTrap() throws {
        let original = try marshalCaptureRequestFrame().body
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var decodedSome = 0
        for _ in 0..<3000 {
            var bytes = original
            for _ in 0..<(1 + Int(next() % 4)) {
                let at = 2 + Int(next() % UInt64(bytes.count - 2))
                switch next() % 3 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: next())
                case 1: bytes.insert(UInt8(truncatingIfNeeded: next()), at: at)
                default: bytes.remove(at: at)
                }
            }
            if (try? RubyMarshal.load(bytes)) != nil { decodedSome += 1 }
        }
        #expect(decodedSome < 3000)
    }

    // MARK: Values API

    @Test func hashSubscriptsAndAccessorsBehave() {
        var hash: RubyHash = [rbSym("a"): .int(1), .str("b"): .str("x"), .string(Array("c".utf8), .binary): .bool(false)]
        #expect(hash[symbol: "a"] == .int(1))
        #expect(hash[symbol: "b"]?.stringValue == "x")
        #expect(hash[symbol: "c"]?.boolValue == false)
        #expect(hash[symbol: "zz"] == nil)
        hash[rbSym("a")] = .int(2)
        hash[rbSym("d")] = .array([])
        #expect(hash.keys == [rbSym("a"), .str("b"), .string(Array("c".utf8), .binary), rbSym("d")])
        #expect(hash[rbSym("a")]?.intValue == 2)
        hash[rbSym("a")] = nil
        #expect(hash.count == 3)
        // Duplicate keys from the wire: last match wins.
        let duplicated = RubyHash([(key: rbSym("k"), value: .int(1)), (key: rbSym("k"), value: .int(2))])
        #expect(duplicated[rbSym("k")] == .int(2))
        #expect(RubyValue.hash(duplicated).dictionary?.count == 2)
        #expect(RubyValue.str("é").bytes == [0xc3, 0xa9])
        #expect(RubyValue.symbol("s").stringValue == "s")
        #expect(RubyValue.string([0xff], .utf8).stringValue == nil)
        #expect(RubyValue.int(1).stringValue == nil)
        #expect(RubyValue.null.dictionary == nil)
        #expect(RubyValue.hash(hash).description.contains("=>"))
    }
}
