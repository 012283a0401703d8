import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// Checks a request against the catalogue the way MCollective's RPC layer does, with the same
/// messages (all statuscode 4), so brokers and `mco` users see what they always saw.
///
/// One deliberate difference: Ruby's `^` and `$` match at any line break, so `"ok\n../x"` passed
/// `^[a-z]+$`. Here a leading `^` and a trailing `$` anchor the whole value.
public struct RequestValidator: Sendable {
    public let catalogue: AgentCatalogue
    let patterns: [String: Pattern]

    /// A compiled validation. `Regex<AnyRegexOutput>` is not `Sendable` only because its match
    /// output type is not; the regex itself is immutable (its program is compiled once,
    /// atomically), and only whether it matches is used here.
    struct Pattern: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
    }

    public init(catalogue: AgentCatalogue) {
        self.catalogue = catalogue
        var patterns: [String: Pattern] = [:]
        for action in catalogue.actions {
            for input in action.inputs {
                if case .string(let validation, _) = input.kind, patterns[validation] == nil,
                   let regex = try? Regex(Self.wholeValue(validation)) {
                    // Code points, as the original's regex engine matched, not grapheme clusters.
                    patterns[validation] = Pattern(regex: regex.matchingSemantics(.unicodeScalar))
                }
            }
        }
        self.patterns = patterns
    }

    /// The Ruby source with its outer line anchors made whole-string anchors.
    static func wholeValue(_ source: String) -> String {
        var pattern = source
        if pattern.hasPrefix("^") { pattern = "\\A" + pattern.dropFirst() }
        if pattern.hasSuffix("$") && !pattern.hasSuffix("\\$") { pattern = pattern.dropLast() + "\\z" }
        return pattern
    }

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// The inputs by name (Symbol or String keys accepted, as Ruby does), or the failure message.
    public func validate(action name: String, data: AgentValue) -> Result<[String: AgentValue], Failure> {
        guard let action = catalogue.action(name) else {
            return .failure(Failure(message: "Attempted to call action \(name) for \(catalogue.name) but it's not declared in the DDL"))
        }
        var inputs: [String: AgentValue] = [:]
        for pair in data.pairs ?? [] {
            if let key = pair.key.string, inputs[key] == nil || pair.key == .symbol(key) { inputs[key] = pair.value }
        }
        for input in action.inputs {
            guard let value = inputs[input.name], !(value.isNull && input.optional) else {
                if input.optional { continue }
                return .failure(Failure(message: "Action \(name) needs a \(input.name) argument"))
            }
            if let problem = check(input, value) {
                return .failure(Failure(message: "Cannot validate input \(input.name): \(problem)"))
            }
        }
        return .success(inputs)
    }

    func check(_ input: InputSpec, _ value: AgentValue) -> String? {
        switch input.kind {
        case .any:
            return nil
        case let .string(validation, maxLength):
            guard case .string(let text) = value else { return "value should be a String" }
            if maxLength > 0 && text.unicodeScalars.count > maxLength { return "Input string is longer than \(maxLength) character(s)" }
            if validation == "shellsafe" { return Self.shellsafeProblem(text) }
            guard let regex = patterns[validation],
                  (try? regex.regex.firstMatch(in: text)) != nil else {
                return "value should match \(validation)"
            }
            return input.alsoShellsafe ? Self.shellsafeProblem(text) : nil
        case .list(let allowed):
            guard let text = value.string, allowed.contains(text), case .string = value else {
                return "value should be one of \(allowed.joined(separator: ", "))"
            }
            return input.alsoShellsafe ? Self.shellsafeProblem(text) : nil
        case .integer:
            if case .int = value { return nil }
            return "value should be a integer"
        case .number:
            switch value {
            case .int, .float: return nil
            default: return "value should be a number"
            }
        case .float:
            if case .float = value { return nil }
            return "value should be a float"
        case .boolean:
            if case .bool = value { return nil }
            return "value should be a boolean"
        }
    }

    /// MCollective's `shellsafe` validator.
    static func shellsafeProblem(_ text: String) -> String? {
        for bad in ["`", "$", ";", "|", "&&", ">", "<"] where text.contains(bad) {
            return "value should not have \(bad) in it"
        }
        return nil
    }
}
