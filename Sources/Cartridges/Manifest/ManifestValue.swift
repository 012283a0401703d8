/// A YAML value from a manifest, with every scalar kept as the text that was written.
///
/// Converting scalars to numbers is what turned `1.10` into `1.1` in the original; here the
/// text survives, and typed readings (`integer`, `boolean`) are asked for where a field needs
/// them. Mappings keep their order and, like the original parser, the last duplicate key wins.
public indirect enum ManifestValue: Sendable, Equatable {
    case scalar(String, quoted: Bool)
    case null
    case list([ManifestValue])
    case map(ManifestMap)

    /// Parses YAML text; an empty document is an empty map. Every YAML the node reads comes
    /// through here, within the limits of `YAMLLimits`, checked as the text is read. Throws
    /// `YAMLLimitError` or `YAMLSyntaxError`.
    public static func parse(yaml: String) throws -> ManifestValue {
        do {
            return try YAMLReader.read(yaml, building: true) ?? .map(ManifestMap())
        } catch .limit(let error) {
            throw error
        } catch .syntax(let error) {
            throw error
        }
    }

    /// The text of a scalar, nil for anything else.
    public var string: String? {
        if case .scalar(let text, _) = self { return text }
        return nil
    }

    public var list: [ManifestValue]? {
        if case .list(let items) = self { return items }
        return nil
    }

    public var map: ManifestMap? {
        if case .map(let map) = self { return map }
        return nil
    }

    /// An unquoted integer scalar (`8080`), as YAML would type it; `"8080"` is a string.
    public var integer: Int? {
        guard case .scalar(let text, let quoted) = self, !quoted else { return nil }
        return Int(text)
    }

    /// YAML 1.1 booleans, as the original's parser read them.
    public var boolean: Bool? {
        guard case .scalar(let text, let quoted) = self, !quoted else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on", "y": return true
        case "false", "no", "off", "n": return false
        default: return nil
        }
    }

    /// A list of scalars, or a single scalar read as a one-element list.
    public var stringList: [String]? {
        switch self {
        case .scalar(let text, _): return [text]
        case .list(let items): return items.compactMap(\.string)
        default: return nil
        }
    }
}

/// An ordered string-keyed map; assigning an existing key replaces its value in place.
public struct ManifestMap: Sendable, Equatable, Sequence {
    public private(set) var pairs: [(key: String, value: ManifestValue)] = []
    private var index: [String: Int] = [:]

    public init() {}

    public subscript(key: String) -> ManifestValue? {
        get { index[key].map { pairs[$0].value } }
        set {
            if let position = index[key] {
                if let newValue {
                    pairs[position].value = newValue
                } else {
                    pairs.remove(at: position)
                    index = Dictionary(uniqueKeysWithValues: pairs.enumerated().map { ($1.key, $0) })
                }
            } else if let newValue {
                index[key] = pairs.count
                pairs.append((key, newValue))
            }
        }
    }

    public var keys: [String] { pairs.map(\.key) }

    public func makeIterator() -> IndexingIterator<[(key: String, value: ManifestValue)]> {
        pairs.makeIterator()
    }

    public static func == (lhs: ManifestMap, rhs: ManifestMap) -> Bool {
        lhs.pairs.count == rhs.pairs.count
            && zip(lhs.pairs, rhs.pairs).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}
