import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// A value in an agent request or reply, independent of the transport.
///
/// It keeps the one distinction the Ruby broker relies on and JSON cannot express: a Symbol is
/// not a String (`get_facts` answers a Hash keyed by Symbols, request inputs arrive with Symbol
/// keys). Hashes keep their insertion order, as Ruby's do.
public indirect enum AgentValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case symbol(String)
    case array([AgentValue])
    case hash([Pair])

    public struct Pair: Sendable, Hashable {
        public var key: AgentValue
        public var value: AgentValue
        public init(_ key: AgentValue, _ value: AgentValue) {
            self.key = key
            self.value = value
        }
    }

    /// A hash with Symbol keys, in the given order.
    public static func symbols(_ pairs: KeyValuePairs<String, AgentValue>) -> AgentValue {
        .hash(pairs.map { Pair(.symbol($0.key), $0.value) })
    }

    /// A hash with String keys, sorted by key for stable output.
    public static func strings(_ dictionary: [String: AgentValue]) -> AgentValue {
        .hash(dictionary.sorted { $0.key < $1.key }.map { Pair(.string($0.key), $0.value) })
    }

    public var string: String? {
        switch self {
        case .string(let s), .symbol(let s): return s
        default: return nil
        }
    }

    public var int: Int? {
        if case .int(let n) = self { return n }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var array: [AgentValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var pairs: [Pair]? {
        if case .hash(let p) = self { return p }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// Looks a key up as a Symbol, then as a String (Ruby clients send either), the last one wins.
    public subscript(key: String) -> AgentValue? {
        guard case .hash(let pairs) = self else { return nil }
        return pairs.last { $0.key == .symbol(key) }?.value ?? pairs.last { $0.key == .string(key) }?.value
    }

    /// The Ruby type name, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "nil"
        case .bool: return "Boolean"
        case .int: return "Integer"
        case .float: return "Float"
        case .string: return "String"
        case .symbol: return "Symbol"
        case .array: return "Array"
        case .hash: return "Hash"
        }
    }
}

// MARK: JSON (the local transport and `--json` outputs)

/// JSON has no Symbols: they are written as Strings, and hash keys as Strings. Read objects have
/// String keys (sorted); `symbolizingKeys()` turns request inputs into what Ruby clients send.
extension AgentValue: Codable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: Key.self) {
            self = .hash(try object.allKeys.sorted { $0.stringValue < $1.stringValue }.map {
                Pair(.string($0.stringValue), try object.decode(AgentValue.self, forKey: $0))
            })
            return
        }
        if var list = try? decoder.unkeyedContainer() {
            var items: [AgentValue] = []
            while !list.isAtEnd { items.append(try list.decode(AgentValue.self)) }
            self = .array(items)
            return
        }
        let single = try decoder.singleValueContainer()
        if single.decodeNil() { self = .null }
        else if let b = try? single.decode(Bool.self) { self = .bool(b) }
        else if let n = try? single.decode(Int.self) { self = .int(n) }
        else if let d = try? single.decode(Double.self) { self = .float(d) }
        else { self = .string(try single.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .hash(let pairs):
            var object = encoder.container(keyedBy: Key.self)
            for pair in pairs { try object.encode(pair.value, forKey: Key(stringValue: pair.key.string ?? pair.key.description)) }
        case .array(let items):
            var list = encoder.unkeyedContainer()
            for item in items { try list.encode(item) }
        default:
            var single = encoder.singleValueContainer()
            switch self {
            case .null: try single.encodeNil()
            case .bool(let b): try single.encode(b)
            case .int(let n): try single.encode(n)
            case .float(let d): if d.isFinite { try single.encode(d) } else { try single.encode(String(describing: d)) }
            case .string(let s), .symbol(let s): try single.encode(s)
            case .array, .hash: break
            }
        }
    }

    /// The top-level String keys of a hash as Symbols (request inputs), values untouched.
    public func symbolizingKeys() -> AgentValue {
        guard case .hash(let pairs) = self else { return self }
        return .hash(pairs.map { Pair($0.key.string.map(AgentValue.symbol) ?? $0.key, $0.value) })
    }

    public func jsonText() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? "null"
    }

    public static func parse(json text: String) throws -> AgentValue {
        try JSONDecoder().decode(AgentValue.self, from: Data(text.utf8))
    }
}

extension AgentValue: CustomStringConvertible {
    /// Ruby's `inspect`-like rendering, for logs.
    public var description: String {
        switch self {
        case .null: return "nil"
        case .bool(let b): return b ? "true" : "false"
        case .int(let n): return String(n)
        case .float(let d): return String(d)
        case .string(let s): return "\"" + s + "\""
        case .symbol(let s): return ":" + s
        case .array(let items): return "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .hash(let pairs): return "{" + pairs.map { "\($0.key.description)=>\($0.value.description)" }.joined(separator: ", ") + "}"
        }
    }
}
