// Strict Ruby Marshal 4.8 decoder.
//
// Rules:
// * every length is checked against the bytes that remain before anything
//   is allocated or copied;
// * nesting depth and the number of decoded values are bounded (links count
//   as the size of what they point to);
// * arithmetic on input-derived numbers cannot overflow (values read as
//   Marshal "longs" fit in 33 bits, and sums are bounded by the input size);
// * anything outside the supported subset is a MarshalError naming the type
//   byte and its offset.

struct MarshalReader {
    private let bytes: [UInt8]
    private let limits: RubyMarshal.Limits
    private var position = 0
    private var depth = 0
    /// Values decoded so far (plus the sizes of linked objects).
    private var elements = 0
    /// Per-stream Symbol table (`:` appends, `;` refers back).
    private var symbols: [String] = []
    /// Per-stream object table (`@` refers back). A slot is reserved when
    /// an object starts, so containers get their index before their children.
    private var objects: [ObjectSlot] = []

    private enum ObjectSlot {
        case pending
        /// `weight`: how many values decoding this object took.
        case done(RubyValue, weight: Int)
    }

    init(bytes: [UInt8], limits: RubyMarshal.Limits) {
        self.bytes = bytes
        self.limits = limits
    }

    // MARK: - Stream

    mutating func readStream() throws(MarshalError) -> RubyValue {
        guard bytes.count <= limits.maxBytes else {
            throw MarshalError(offset: 0, reason: "stream of \(bytes.count) bytes exceeds the limit of \(limits.maxBytes)")
        }
        guard bytes.count >= 2 else {
            throw MarshalError(offset: bytes.count, reason: "truncated: missing the 04 08 version header")
        }
        guard bytes[0] == 4, bytes[1] == 8 else {
            throw MarshalError(offset: 0, reason: "unsupported Marshal version \(bytes[0]).\(bytes[1]) (expected 4.8)")
        }
        position = 2
        let value = try readValue()
        guard position == bytes.count else {
            throw MarshalError(offset: position, reason: "\(bytes.count - position) trailing byte(s) after the top-level value")
        }
        return value
    }

    // MARK: - Primitives

    private var remaining: Int { bytes.count - position }

    private func failure(_ reason: String, at offset: Int? = nil) -> MarshalError {
        MarshalError(offset: offset ?? position, reason: reason)
    }

    private mutating func readByte() throws(MarshalError) -> UInt8 {
        guard position < bytes.count else {
            throw failure("truncated: expected 1 more byte")
        }
        let byte = bytes[position]
        position += 1
        return byte
    }

    private mutating func readBytes(_ count: Int) throws(MarshalError) -> [UInt8] {
        guard count >= 0, count <= remaining else {
            throw failure("truncated: need \(count) bytes, only \(remaining) remain")
        }
        let slice = Array(bytes[position..<(position + count)])
        position += count
        return slice
    }

    /// Marshal's compact "long": 0; 1..4 little-endian bytes follow (positive);
    /// -1..-4 bytes follow (negative, two's complement); otherwise the byte
    /// itself is n+5 / n-5. The result is always within -2^32 ..< 2^32.
    private mutating func readLong() throws(MarshalError) -> Int {
        let c = Int(Int8(bitPattern: try readByte()))
        switch c {
        case 0:
            return 0
        case 1...4:
            var x = 0
            for i in 0..<c {
                x |= Int(try readByte()) << (8 * i)
            }
            return x
        case -4 ... -1:
            var x = -1
            for i in 0..<(-c) {
                x &= ~(0xFF << (8 * i))
                x |= Int(try readByte()) << (8 * i)
            }
            return x
        case 5...:
            return c - 5
        default:
            return c + 5
        }
    }

    /// A byte count that must fit in what remains of the stream.
    private mutating func readByteLength(_ what: String) throws(MarshalError) -> Int {
        let at = position
        let n = try readLong()
        guard n >= 0 else {
            throw failure("negative \(what) length \(n)", at: at)
        }
        guard n <= remaining else {
            throw failure("\(what) length \(n) exceeds the \(remaining) bytes that remain", at: at)
        }
        return n
    }

    /// An item count. Each item needs at least `minBytes` bytes, so the count
    /// is checked against the remaining input as well as the element limit.
    private mutating func readCount(_ what: String, minBytesPerItem: Int) throws(MarshalError) -> Int {
        let at = position
        let n = try readLong()
        guard n >= 0 else {
            throw failure("negative \(what) count \(n)", at: at)
        }
        guard n <= limits.maxElements else {
            throw failure("\(what) count \(n) exceeds the element limit \(limits.maxElements)", at: at)
        }
        // n < 2^32 and minBytesPerItem <= 2: no overflow on 64-bit Int.
        let (needed, overflow) = n.multipliedReportingOverflow(by: minBytesPerItem)
        guard !overflow, needed <= remaining else {
            throw failure("\(what) count \(n) needs more than the \(remaining) bytes that remain", at: at)
        }
        return n
    }

    private mutating func countElements(_ n: Int, at offset: Int) throws(MarshalError) {
        let (sum, overflow) = elements.addingReportingOverflow(n)
        guard !overflow, sum <= limits.maxElements else {
            throw failure("more than \(limits.maxElements) values in the stream", at: offset)
        }
        elements = sum
    }

    // MARK: - Object table

    private mutating func reserveObject() -> Int {
        objects.append(.pending)
        return objects.count - 1
    }

    private mutating func completeObject(_ index: Int, _ value: RubyValue, startElements: Int) {
        objects[index] = .done(value, weight: max(1, elements - startElements + 1))
    }

    // MARK: - Symbols

    private mutating func readSymbolBody(withIvars: Bool) throws(MarshalError) -> String {
        let at = position
        let length = try readByteLength("symbol")
        let raw = try readBytes(length)
        guard let name = decodeUTF8Losslessly(raw) else {
            throw failure("symbol is not valid UTF-8", at: at)
        }
        symbols.append(name)
        if withIvars {
            // Encoding of a non-ASCII symbol (`:E => true` etc.): the name is
            // already decoded as UTF-8, so the values only need to be consumed.
            let n = try readCount("instance variable", minBytesPerItem: 2)
            for _ in 0..<n {
                _ = try readSymbolReference()
                _ = try readValue()
            }
        }
        return name
    }

    private mutating func readSymlink() throws(MarshalError) -> String {
        let at = position
        let index = try readLong()
        guard index >= 0, index < symbols.count else {
            throw failure("symbol link \(index) refers to an undefined symbol (\(symbols.count) defined)", at: at)
        }
        return symbols[index]
    }

    /// A Symbol where the format requires one (instance variable names,
    /// class names): `:`, `;`, or `I:`.
    private mutating func readSymbolReference() throws(MarshalError) -> String {
        let at = position
        let type = try readByte()
        switch type {
        case UInt8(ascii: ":"):
            return try readSymbolBody(withIvars: false)
        case UInt8(ascii: ";"):
            return try readSymlink()
        case UInt8(ascii: "I"):
            let inner = position
            guard try readByte() == UInt8(ascii: ":") else {
                throw failure("expected a symbol after I", at: inner)
            }
            return try readSymbolBody(withIvars: true)
        default:
            throw failure("expected a symbol, found type byte \(describe(type))", at: at)
        }
    }

    // MARK: - Values

    private mutating func readValue() throws(MarshalError) -> RubyValue {
        let at = position
        guard depth < limits.maxDepth else {
            throw failure("nesting deeper than \(limits.maxDepth)", at: at)
        }
        depth += 1
        defer { depth -= 1 }
        try countElements(1, at: at)
        let start = elements

        let type = try readByte()
        switch type {
        case UInt8(ascii: "0"):
            return .null
        case UInt8(ascii: "T"):
            return .bool(true)
        case UInt8(ascii: "F"):
            return .bool(false)
        case UInt8(ascii: "i"):
            return .int(try readLong())
        case UInt8(ascii: "l"):
            let index = reserveObject()
            let value = RubyValue.int(try readBignum())
            completeObject(index, value, startElements: start)
            return value
        case UInt8(ascii: "f"):
            let index = reserveObject()
            let value = RubyValue.float(try readFloat())
            completeObject(index, value, startElements: start)
            return value
        case UInt8(ascii: "\""):
            let index = reserveObject()
            let length = try readByteLength("string")
            let value = RubyValue.string(try readBytes(length), .binary)
            completeObject(index, value, startElements: start)
            return value
        case UInt8(ascii: ":"):
            return .symbol(try readSymbolBody(withIvars: false))
        case UInt8(ascii: ";"):
            return .symbol(try readSymlink())
        case UInt8(ascii: "@"):
            return try readObjectLink()
        case UInt8(ascii: "I"):
            return try readWithIvars()
        case UInt8(ascii: "["):
            let index = reserveObject()
            let count = try readCount("array", minBytesPerItem: 1)
            var items: [RubyValue] = []
            items.reserveCapacity(count)
            for _ in 0..<count {
                items.append(try readValue())
            }
            let value = RubyValue.array(items)
            completeObject(index, value, startElements: start)
            return value
        case UInt8(ascii: "{"), UInt8(ascii: "}"):
            let index = reserveObject()
            let count = try readCount("hash", minBytesPerItem: 2)
            var pairs: [(key: RubyValue, value: RubyValue)] = []
            pairs.reserveCapacity(count)
            for _ in 0..<count {
                let key = try readValue()
                let value = try readValue()
                pairs.append((key: key, value: value))
            }
            if type == UInt8(ascii: "}") {
                _ = try readValue()  // the Hash's default value: dropped
            }
            let value = RubyValue.hash(RubyHash(pairs))
            completeObject(index, value, startElements: start)
            return value
        case UInt8(ascii: "/"):
            let sourceAt = position
            let length = try readByteLength("regexp source")
            let raw = try readBytes(length)
            guard let source = decodeUTF8Losslessly(raw) else {
                throw failure("regexp source is not valid UTF-8", at: sourceAt)
            }
            let options = try readByte()
            let index = reserveObject()
            let value = RubyValue.regexp(source: source, options: options)
            completeObject(index, value, startElements: start)
            return value
        case UInt8(ascii: "C"):
            // Subclass of String/Array/Hash/Regexp: keep the base value.
            let className = try readSymbolReference()
            let innerAt = position
            let inner = try readValue()
            switch inner {
            case .string, .array, .hash, .regexp:
                return inner
            default:
                throw failure("user class \(className) wraps a value that is not a String, Array, Hash or Regexp", at: innerAt)
            }
        default:
            throw failure("unsupported Marshal type \(describe(type))\(typeName(type))", at: at)
        }
    }

    private mutating func readObjectLink() throws(MarshalError) -> RubyValue {
        let at = position
        let index = try readLong()
        guard index >= 0, index < objects.count else {
            throw failure("object link @\(index) refers to an undefined object (\(objects.count) defined)", at: at)
        }
        guard case .done(let value, let weight) = objects[index] else {
            throw failure("object link @\(index) refers to an object that is still being decoded (cyclic structure)", at: at)
        }
        try countElements(weight, at: at)
        return value
    }

    /// `I`: a value followed by instance variables. For Strings these carry
    /// the encoding; other instance variables are read and ignored.
    private mutating func readWithIvars() throws(MarshalError) -> RubyValue {
        if position < bytes.count, bytes[position] == UInt8(ascii: ":") {
            position += 1
            return .symbol(try readSymbolBody(withIvars: true))
        }
        let objectIndex = objects.count
        var value = try readValue()
        // Did the wrapped value enter the object table (rather than being a
        // link or an immediate)? Then its slot is objectIndex.
        let registered = objects.count > objectIndex

        let count = try readCount("instance variable", minBytesPerItem: 2)
        var encoding: RubyEncoding?
        for _ in 0..<count {
            let name = try readSymbolReference()
            let ivarAt = position
            let ivar = try readValue()
            switch name {
            case "E":
                switch ivar {
                case .bool(true): encoding = .utf8
                case .bool(false): encoding = .usASCII
                default: throw failure("encoding flag :E is not true or false", at: ivarAt)
                }
            case "encoding":
                guard case .string(let raw, _) = ivar, let encodingName = decodeUTF8Losslessly(raw) else {
                    throw failure(":encoding is not a String", at: ivarAt)
                }
                encoding = .other(encodingName)
            default:
                break  // unknown instance variables are ignored
            }
        }

        if let encoding, case .string(let raw, _) = value {
            value = .string(raw, encoding)
            if registered, case .done(.string, let weight) = objects[objectIndex] {
                objects[objectIndex] = .done(value, weight: weight)
            }
        }
        return value
    }

    // MARK: - Numbers

    /// `l`: sign byte, length in 16-bit words, little-endian magnitude.
    private mutating func readBignum() throws(MarshalError) -> Int {
        let signAt = position
        let sign = try readByte()
        guard sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else {
            throw failure("Bignum sign byte \(describe(sign)) is not + or -", at: signAt)
        }
        let lengthAt = position
        let words = try readLong()
        guard words >= 0 else {
            throw failure("negative Bignum length \(words)", at: lengthAt)
        }
        // words < 2^32, so 2*words cannot overflow a 64-bit Int.
        let (byteCount, overflow) = words.multipliedReportingOverflow(by: 2)
        guard !overflow, byteCount <= remaining else {
            throw failure("Bignum of \(words) words exceeds the bytes that remain", at: lengthAt)
        }
        let magnitudeAt = position
        let raw = try readBytes(byteCount)
        var significant = raw.count
        while significant > 0 && raw[significant - 1] == 0 {
            significant -= 1
        }
        guard significant <= 8 else {
            throw failure("Bignum does not fit in 64 bits", at: magnitudeAt)
        }
        var magnitude: UInt64 = 0
        for i in 0..<significant {
            magnitude |= UInt64(raw[i]) << UInt64(8 * i)
        }
        if sign == UInt8(ascii: "+") {
            guard magnitude <= UInt64(Int.max) else {
                throw failure("Bignum \(magnitude) does not fit in Int", at: magnitudeAt)
            }
            return Int(magnitude)
        }
        if magnitude == UInt64(Int.max) + 1 {
            return Int.min
        }
        guard magnitude <= UInt64(Int.max) else {
            throw failure("Bignum -\(magnitude) does not fit in Int", at: magnitudeAt)
        }
        return -Int(magnitude)
    }

    /// `f`: `inf`, `-inf`, `nan`, or decimal text (`1`, `0.5`, `1e20`,
    /// `-2.5e-7`). Ruby 1.8 appended mantissa bytes after a NUL: ignored.
    private mutating func readFloat() throws(MarshalError) -> Double {
        let at = position
        let length = try readByteLength("float")
        var raw = try readBytes(length)
        if let nul = raw.firstIndex(of: 0) {
            raw.removeSubrange(nul...)
        }
        switch raw {
        case Array("inf".utf8): return .infinity
        case Array("-inf".utf8): return -.infinity
        case Array("nan".utf8): return .nan
        default: break
        }
        func isFloatTextByte(_ b: UInt8) -> Bool {
            (b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9"))
                || b == UInt8(ascii: "+") || b == UInt8(ascii: "-") || b == UInt8(ascii: ".")
                || b == UInt8(ascii: "e") || b == UInt8(ascii: "E")
        }
        guard !raw.isEmpty, raw.allSatisfy(isFloatTextByte),
            let text = decodeUTF8Losslessly(raw), let value = Double(text)
        else {
            throw failure("malformed Float text", at: at)
        }
        return value
    }

    // MARK: - Error text

    private func describe(_ byte: UInt8) -> String {
        let hex = String(byte, radix: 16, uppercase: false)
        let padded = hex.count == 1 ? "0" + hex : hex
        if byte >= 0x21 && byte < 0x7F {
            return "'\(Character(Unicode.Scalar(byte)))' (0x\(padded))"
        }
        return "0x\(padded)"
    }

    private func typeName(_ byte: UInt8) -> String {
        switch byte {
        case UInt8(ascii: "o"): return ": plain Object"
        case UInt8(ascii: "u"): return ": user-defined _dump"
        case UInt8(ascii: "U"): return ": user-defined marshal_dump"
        case UInt8(ascii: "e"): return ": object extended by a module"
        case UInt8(ascii: "S"): return ": Struct"
        case UInt8(ascii: "c"): return ": Class"
        case UInt8(ascii: "m"): return ": Module"
        case UInt8(ascii: "M"): return ": old-style Module"
        case UInt8(ascii: "d"): return ": Data object"
        default: return ""
        }
    }
}
