// Ruby values as they travel in MCollective 2.x messages (Ruby Marshal 4.8).
//
// Only the types MCollective uses are modelled. Strings keep their raw bytes
// together with the encoding Marshal recorded, so that decoding and
// re-encoding is lossless.

/// The encoding recorded for a Ruby String.
public enum RubyEncoding: Hashable, Sendable {
    /// ASCII-8BIT: a String without an `I` wrapper (e.g. the envelope's `:body`).
    case binary
    /// UTF-8: instance variable `:E => true`.
    case utf8
    /// US-ASCII: instance variable `:E => false`.
    case usASCII
    /// Any other encoding: instance variable `:encoding => "name"`.
    case other(String)
}

/// A Ruby Hash: key/value pairs in insertion order.
///
/// Equality and hashing are order-sensitive (the pairs are compared in order);
/// this is stricter than Ruby's `Hash#==` but keeps byte-level round trips
/// predictable. Duplicate keys decoded from the wire are kept as they came;
/// lookups return the last match, as Ruby's loader would have kept the last
/// value.
public struct RubyHash: Hashable, Sendable {
    public var pairs: [(key: RubyValue, value: RubyValue)]

    public init(_ pairs: [(key: RubyValue, value: RubyValue)] = []) {
        self.pairs = pairs
    }

    /// The value of the last pair whose key equals `key`. Setting a value
    /// replaces that pair's value, or appends a new pair; setting `nil`
    /// removes every pair with that key.
    public subscript(key: RubyValue) -> RubyValue? {
        get {
            pairs.last(where: { $0.key == key })?.value
        }
        set {
            if let newValue {
                if let index = pairs.lastIndex(where: { $0.key == key }) {
                    pairs[index].value = newValue
                } else {
                    pairs.append((key: key, value: newValue))
                }
            } else {
                pairs.removeAll(where: { $0.key == key })
            }
        }
    }

    /// Looks up `:name` first, then a String key `"name"` (of any encoding,
    /// compared by its bytes), because MCollective accepts both.
    public subscript(symbol name: String) -> RubyValue? {
        if let value = self[.symbol(name)] {
            return value
        }
        let wanted = Array(name.utf8)
        return pairs.last(where: { pair in
            if case .string(let bytes, _) = pair.key { return bytes == wanted }
            return false
        })?.value
    }

    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }
    public var keys: [RubyValue] { pairs.map(\.key) }

    public static func == (lhs: RubyHash, rhs: RubyHash) -> Bool {
        guard lhs.pairs.count == rhs.pairs.count else { return false }
        for (l, r) in zip(lhs.pairs, rhs.pairs) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(pairs.count)
        for pair in pairs {
            hasher.combine(pair.key)
            hasher.combine(pair.value)
        }
    }
}

extension RubyHash: ExpressibleByDictionaryLiteral {
    /// Keeps the literal's order.
    public init(dictionaryLiteral elements: (RubyValue, RubyValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }
}

/// A Ruby value of the Marshal subset MCollective uses.
public indirect enum RubyValue: Hashable, Sendable {
    case null
    case bool(Bool)
    /// Fixnum, and Bignum that fits in `Int` (64-bit).
    case int(Int)
    case float(Double)
    case string([UInt8], RubyEncoding)
    case symbol(String)
    case array([RubyValue])
    case hash(RubyHash)
    /// `options`: 1 ignore-case, 2 extended, 4 multiline (plus Ruby's
    /// internal encoding flags 16/32, kept as read).
    case regexp(source: String, options: UInt8)

    /// A UTF-8 String (what Ruby writes for ordinary string literals).
    public static func str(_ s: String) -> RubyValue {
        .string(Array(s.utf8), .utf8)
    }

    /// A `.string` decoded as UTF-8 (nil unless the bytes are valid UTF-8,
    /// whatever the recorded encoding), or a `.symbol`'s name.
    public var stringValue: String? {
        switch self {
        case .string(let bytes, _): return decodeUTF8Losslessly(bytes)
        case .symbol(let name): return name
        default: return nil
        }
    }

    /// The raw bytes of a `.string`.
    public var bytes: [UInt8]? {
        if case .string(let bytes, _) = self { return bytes }
        return nil
    }

    public var intValue: Int? {
        if case .int(let n) = self { return n }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [RubyValue]? {
        if case .array(let items) = self { return items }
        return nil
    }

    /// The `RubyHash` of a `.hash`.
    public var dictionary: RubyHash? {
        if case .hash(let hash) = self { return hash }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

/// `String(decoding:as:)` repairs invalid input; this returns nil instead.
func decodeUTF8Losslessly(_ bytes: [UInt8]) -> String? {
    let s = String(decoding: bytes, as: UTF8.self)
    return s.utf8.elementsEqual(bytes) ? s : nil
}

extension RubyValue: CustomStringConvertible {
    /// Roughly Ruby's `inspect`, for logs and test failures.
    public var description: String {
        switch self {
        case .null: return "nil"
        case .bool(let b): return b ? "true" : "false"
        case .int(let n): return String(n)
        case .float(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
            return String(d)
        case .string(let bytes, let encoding):
            let suffix: String
            switch encoding {
            case .utf8: suffix = ""
            case .usASCII: suffix = "(US-ASCII)"
            case .binary: suffix = "(binary)"
            case .other(let name): suffix = "(\(name))"
            }
            return inspectBytes(bytes) + suffix
        case .symbol(let name): return ":" + name
        case .array(let items):
            return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .hash(let hash):
            return "{" + hash.pairs.map { "\($0.key.description)=>\($0.value.description)" }
                .joined(separator: ", ") + "}"
        case .regexp(let source, let options):
            var flags = ""
            if options & 4 != 0 { flags += "m" }
            if options & 1 != 0 { flags += "i" }
            if options & 2 != 0 { flags += "x" }
            return "/\(source)/\(flags)"
        }
    }

    private func inspectBytes(_ bytes: [UInt8]) -> String {
        var out = "\""
        if let text = decodeUTF8Losslessly(bytes) {
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case "\r": out += "\\r"
                default:
                    if scalar.value < 0x20 || scalar.value == 0x7F {
                        out += "\\x" + hex2(UInt8(scalar.value))
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
        } else {
            for byte in bytes {
                if byte >= 0x20 && byte < 0x7F && byte != 0x22 && byte != 0x5C {
                    out.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    out += "\\x" + hex2(byte)
                }
            }
        }
        return out + "\""
    }

    private func hex2(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}

extension RubyHash: CustomStringConvertible {
    public var description: String { RubyValue.hash(self).description }
}
