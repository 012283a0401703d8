/// Rendering of cartridge templates (`env/*.erb`).
///
/// The original ran Ruby's ERB over them; cartridges use it to compose variables from the
/// environment (`<%= ENV['OPENSHIFT_MOCK_EXAMPLE_IP1'] %>`). We render exactly that form, and
/// refuse anything else with a message, rather than run a template language as root.
public enum Templates {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public static func render(_ text: String, environment: [String: String]) throws -> String {
        var output = ""
        var rest = Substring(text)
        while let open = rest.firstRange(of: "<%") {
            output += rest[..<open.lowerBound]
            guard let close = rest[open.upperBound...].firstRange(of: "%>") else { throw Problem(description: "unterminated <%") }
            var expression = rest[open.upperBound..<close.lowerBound].drop { $0 == " " }
            guard expression.hasPrefix("=") else {
                throw Problem(description: "only <%= ENV['NAME'] %> is supported, found <%\(rest[open.upperBound..<close.lowerBound])%>")
            }
            expression = expression.dropFirst().drop { $0 == " " }
            let trimmed = String(expression.reversed().drop { $0 == " " }.reversed())
            guard trimmed.hasPrefix("ENV["), trimmed.hasSuffix("]") else {
                throw Problem(description: "only <%= ENV['NAME'] %> is supported, found <%=\(expression)%>")
            }
            let inner = trimmed.dropFirst(4).dropLast()
            guard inner.count >= 2, let quote = inner.first, quote == "'" || quote == "\"", inner.last == quote else {
                throw Problem(description: "expected a quoted variable name in \(trimmed)")
            }
            let name = String(inner.dropFirst().dropLast())
            guard EnvDirectory.isValidName(name) else { throw Problem(description: "invalid variable name \(name)") }
            output += environment[name] ?? ""
            rest = rest[close.upperBound...]
        }
        return output + rest
    }
}
