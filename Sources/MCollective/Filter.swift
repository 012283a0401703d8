import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What a request's filter is checked against: this node's identity, agents, facts and classes.
public struct FilterSubject: Sendable {
    public var identity: String
    public var agents: [String]
    public var facts: @Sendable () -> [String: String]
    public var classes: [String]

    public init(identity: String, agents: [String], facts: @escaping @Sendable () -> [String: String], classes: [String] = []) {
        self.identity = identity
        self.agents = agents
        self.facts = facts
        self.classes = classes
    }
}

/// MCollective 2.x filter evaluation (reference/message-agent.md B.6), pure.
///
/// Each entry of each filter kind counts as a pass or a fail; the filter passes when nothing
/// failed and something passed, or when it is empty. The identity filter passes only when
/// exactly one entry matches, as in mcollectived.
public enum Filter {
    public static func passes(_ filter: RubyValue?, _ subject: FilterSubject) -> Bool {
        guard let filter, let table = filter.dictionary else { return true }
        var passed = 0
        var failed = 0
        var empty = true
        var factsCache: [String: String]?
        func facts() -> [String: String] {
            if let factsCache { return factsCache }
            let computed = subject.facts()
            factsCache = computed
            return computed
        }

        for (key, value) in table.pairs {
            guard let name = key.stringValue else { continue }
            let entries = value.arrayValue ?? []
            switch name {
            case "agent":
                for entry in entries {
                    empty = false
                    if matchesAgent(entry, subject.agents) { passed += 1 } else { failed += 1 }
                }
            case "identity":
                guard !entries.isEmpty else { continue }
                empty = false
                let hits = entries.filter { Filter.matches($0, subject.identity) }.count
                if hits == 1 { passed += 1 } else { failed += 1 }
            case "fact":
                for entry in entries {
                    empty = false
                    if factMatches(entry, facts()) { passed += 1 } else { failed += 1 }
                }
            case "cf_class", "puppet_class":
                for entry in entries {
                    empty = false
                    if classMatches(entry.stringValue ?? "", subject.classes) { passed += 1 } else { failed += 1 }
                }
            case "compound":
                for entry in entries {
                    guard let tokens = entry.arrayValue, !tokens.isEmpty else { continue }
                    empty = false
                    var compound = Compound(tokens: tokens, facts: facts(), classes: subject.classes)
                    if compound.evaluate() { passed += 1 } else { failed += 1 }
                }
            default:
                // mcollectived counts unknown keys (e.g. "collective" in discovery) as making the
                // filter non-empty without passing anything.
                empty = false
            }
        }
        return empty || (failed == 0 && passed > 0)
    }

    static func matchesAgent(_ entry: RubyValue, _ agents: [String]) -> Bool {
        if entry.stringValue == "mcollective" { return true }
        return agents.contains { matches(entry, $0) }
    }

    /// Equality, or a regex for a Regexp value or a String written `/.../`.
    static func matches(_ entry: RubyValue, _ value: String) -> Bool {
        switch entry {
        case let .regexp(source, options):
            return regexMatch(source, value, caseInsensitive: options & 1 != 0)
        default:
            guard let text = entry.stringValue else { return false }
            if text.hasPrefix("/") && text.count > 1 {
                return regexMatch(text.filter { $0 != "/" }, value)
            }
            return text == value
        }
    }

    static func regexMatch(_ source: String, _ value: String, caseInsensitive: Bool = false) -> Bool {
        guard var regex = try? Regex(source) else { return false }
        // Code points, as Ruby (and ICU before) matched, not grapheme clusters.
        regex = regex.matchingSemantics(.unicodeScalar).ignoresCase(caseInsensitive)
        return (try? regex.firstMatch(in: value)) != nil
    }

    static func classMatches(_ entry: String, _ classes: [String]) -> Bool {
        if entry.hasPrefix("/") { return classes.contains { regexMatch(entry.filter { $0 != "/" }, $0) } }
        return classes.contains(entry)
    }

    /// `{:fact, :value, :operator}` against the fact store.
    static func factMatches(_ entry: RubyValue, _ facts: [String: String]) -> Bool {
        guard let table = entry.dictionary,
              let fact = table[symbol: "fact"]?.stringValue,
              let wanted = table[symbol: "value"]?.stringValue ?? table[symbol: "value"].map({ "\($0.intValue ?? 0)" }),
              let op = table[symbol: "operator"]?.stringValue else { return false }
        guard let actual = facts[fact] else { return false }
        return compare(actual, op, wanted)
    }

    /// mcollectived's comparison: integers when both sides are digits, floats when both look like
    /// `N.N`, otherwise Strings.
    static func compare(_ actual: String, _ op: String, _ wanted: String) -> Bool {
        switch op {
        case "=~":
            var source = wanted
            if source.hasPrefix("/") && source.hasSuffix("/") && source.count >= 2 { source = String(source.dropFirst().dropLast()) }
            if source.hasPrefix("(?i:") || source.hasPrefix("(?i)") { return regexMatch(source, actual) }
            return regexMatch(source, actual)
        case "==": return actual == wanted
        case "<", ">", "<=", ">=", "!=":
            let ordering: Int
            // mcollectived's tests, /^[0-9]+$/ and /^[0-9]+.[0-9]+$/ (its `.` is any character).
            func integer(_ text: String) -> Bool { !text.isEmpty && text.utf8.allSatisfy { ASCII.isDigit($0) } }
            func float(_ text: String) -> Bool { text.wholeMatch(of: #/[0-9]+.[0-9]+/#) != nil }
            if integer(actual), integer(wanted), let a = Int(actual), let b = Int(wanted) {
                ordering = a < b ? -1 : (a == b ? 0 : 1)
            } else if float(actual), float(wanted),
                      let a = Double(actual), let b = Double(wanted) {
                ordering = a < b ? -1 : (a == b ? 0 : 1)
            } else {
                ordering = actual < wanted ? -1 : (actual == wanted ? 0 : 1)
            }
            switch op {
            case "<": return ordering < 0
            case ">": return ordering > 0
            case "<=": return ordering <= 0
            case ">=": return ordering >= 0
            default: return ordering != 0
            }
        default: return false
        }
    }
}

/// A compound filter: statements joined by and / or / not and parentheses.
struct Compound {
    var tokens: [RubyValue]
    var facts: [String: String]
    var classes: [String]
    var position = 0

    init(tokens: [RubyValue], facts: [String: String], classes: [String]) {
        self.tokens = tokens
        self.facts = facts
        self.classes = classes
    }

    mutating func evaluate() -> Bool {
        let value = orExpression()
        return position == tokens.count && value
    }

    func kind(_ token: RubyValue) -> String? { token.dictionary?.pairs.first?.key.stringValue }

    mutating func orExpression() -> Bool {
        var value = andExpression()
        while position < tokens.count, kind(tokens[position]) == "or" {
            position += 1
            let rhs = andExpression()
            value = value || rhs
        }
        return value
    }

    mutating func andExpression() -> Bool {
        var value = unary()
        while position < tokens.count, let k = kind(tokens[position]), k != "or", k != ")" {
            if k == "and" { position += 1 }
            let rhs = unary()
            value = value && rhs
        }
        return value
    }

    mutating func unary() -> Bool {
        guard position < tokens.count else { return false }
        let token = tokens[position]
        position += 1
        switch kind(token) {
        case "not": return !unary()
        case "(":
            let value = orExpression()
            if position < tokens.count, kind(tokens[position]) == ")" { position += 1 }
            return value
        case "statement":
            return statement(token.dictionary?.pairs.first?.value.stringValue ?? "")
        default:
            // fstatement (data plugins) is not supported: false, as a data plugin error is.
            return false
        }
    }

    func statement(_ text: String) -> Bool {
        for op in ["<=", ">=", "!=", "=~", "==", "<", ">", "="] {
            if let range = text.firstRange(of: op) {
                let fact = text[..<range.lowerBound].trimmed()
                var value = text[range.upperBound...].trimmed()
                var comparison = op == "=" ? "==" : op
                if value.hasPrefix("/") && value.hasSuffix("/") && value.count >= 2 {
                    value = String(value.dropFirst().dropLast())
                    comparison = "=~"
                }
                guard let actual = facts[fact] else { return false }
                return Filter.compare(actual, comparison, value)
            }
        }
        return Filter.classMatches(text, classes)
    }
}
