/// Parser for shell-style configuration files (`node.conf`, `resource_limits.conf`).
///
/// Accepted lines: blank lines, `# comments`, and `KEY=value`, `KEY="value"`, `KEY='value'`,
/// optionally prefixed by `export `, with an optional trailing ` # comment`. Double-quoted values
/// understand the backslash escapes a shell would (`\"`, `\\`, `\$`, `` \` ``); nothing is
/// expanded, because a configuration file is data, not a script. The last assignment of a key
/// wins, as it would when the file is sourced.
public enum NodeConfParser {
    /// One assignment with the line it came from.
    public struct Entry: Sendable, Equatable {
        public var key: String
        public var value: String
        public var line: Int
    }

    public static func parse(_ text: String, file: String) throws(NodeConfigError) -> [Entry] {
        var entries: [Entry] = []
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" })
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            entries.append(try parseAssignment(trimmed, file: file, line: lineNumber))
        }
        return entries
    }

    private static func parseAssignment(_ text: Substring, file: String, line: Int) throws(NodeConfigError) -> Entry {
        var rest = text
        if rest.hasPrefix("export ") { rest = rest.dropFirst(7).drop(while: { $0 == " " }) }
        guard let equals = rest.firstIndex(of: "=") else {
            throw .malformedLine(file: file, line: line, text: String(text), reason: "expected KEY=value")
        }
        let key = String(rest[rest.startIndex..<equals])
        guard isValidKey(key) else {
            throw .malformedLine(file: file, line: line, text: String(text), reason: "invalid key name '\(key)'")
        }
        let value = try parseValue(rest[rest.index(after: equals)...], file: file, line: line, text: text)
        return Entry(key: key, value: value, line: line)
    }

    static func isValidKey(_ key: String) -> Bool {
        guard let first = key.utf8.first, first == UInt8(ascii: "_") || isLetter(first) else { return false }
        return key.utf8.allSatisfy { $0 == UInt8(ascii: "_") || isLetter($0) || ($0 >= 48 && $0 <= 57) }
    }

    private static func isLetter(_ c: UInt8) -> Bool { (c >= 65 && c <= 90) || (c >= 97 && c <= 122) }

    private static func parseValue(
        _ raw: Substring, file: String, line: Int, text: Substring
    ) throws(NodeConfigError) -> String {
        var value = ""
        var index = raw.startIndex
        func fail(_ reason: String) -> NodeConfigError {
            .malformedLine(file: file, line: line, text: String(text), reason: reason)
        }
        while index < raw.endIndex {
            let c = raw[index]
            switch c {
            case "\"":
                index = raw.index(after: index)
                var closed = false
                while index < raw.endIndex {
                    let d = raw[index]
                    if d == "\"" { closed = true; break }
                    if d == "\\", raw.index(after: index) < raw.endIndex {
                        let next = raw[raw.index(after: index)]
                        if "\"\\$`".contains(next) {
                            value.append(next)
                            index = raw.index(index, offsetBy: 2)
                            continue
                        }
                    }
                    value.append(d)
                    index = raw.index(after: index)
                }
                guard closed else { throw fail("unterminated double quote") }
                index = raw.index(after: index)
            case "'":
                index = raw.index(after: index)
                guard let close = raw[index...].firstIndex(of: "'") else { throw fail("unterminated single quote") }
                value += raw[index..<close]
                index = raw.index(after: close)
            case " ", "\t":
                // Unquoted whitespace ends the value; only a comment may follow.
                let tail = raw[index...].drop(while: { $0 == " " || $0 == "\t" })
                if tail.isEmpty || tail.hasPrefix("#") { return value }
                throw fail("unquoted space in value (quote the value)")
            case "#" where value.isEmpty && index == raw.startIndex:
                return value
            default:
                value.append(c)
                index = raw.index(after: index)
            }
        }
        return value
    }
}
