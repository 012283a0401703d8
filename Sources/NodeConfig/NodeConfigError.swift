/// Errors reading `node.conf`: each names the file and line that was wrong.
public enum NodeConfigError: NodeError, Equatable {
    /// A line that is not `KEY=value`, `KEY="value"` or `KEY='value'`.
    case malformedLine(file: String, line: Int, text: String, reason: String)
    /// A known key whose value is not of the key's type or outside its limits.
    case invalidValue(file: String, line: Int, key: String, value: String, expected: String)
    /// A line whose bytes are not text: invalid UTF-8, or a NUL byte in a value. `key` is nil
    /// when the line is not even an assignment.
    case invalidText(file: String, line: Int, key: String?, reason: String)
    /// Values that are each acceptable but contradict one another; `line` is where `key`, the
    /// one set last, was set. The reason names every key involved.
    case conflictingValues(file: String, line: Int, key: String, reason: String)
    /// The configuration file could not be read.
    case unreadable(file: String, errno: Int32)

    public var kind: NodeErrorKind {
        switch self {
        case .malformedLine, .invalidValue, .invalidText, .conflictingValues: return .invalidArgument
        case .unreadable(_, let code): return code == 2 ? .notFound : .permissionDenied
        }
    }

    public var description: String {
        switch self {
        case let .malformedLine(file, line, text, reason):
            return "\(file):\(line): \(reason): '\(visible(text))'"
        case let .invalidValue(file, line, key, value, expected):
            return "\(file):\(line): \(key) must be \(expected), found '\(visible(value))'"
        case let .invalidText(file, line, key?, reason):
            return "\(file):\(line): the value of \(key) \(reason); node.conf values must be UTF-8 text without NUL bytes"
        case let .invalidText(file, line, nil, reason):
            return "\(file):\(line): the line \(reason); node.conf must be UTF-8 text without NUL bytes"
        case let .conflictingValues(file, line, _, reason):
            return "\(file):\(line): \(reason)"
        case let .unreadable(file, code):
            return "cannot read configuration \(file): \(String(cString: strerror(code)))"
        }
    }
}

/// Control characters made visible (`\u{1b}`), so an error message cannot rewrite a terminal.
func visible(_ text: String) -> String {
    var out = ""
    for scalar in text.unicodeScalars {
        if isControl(scalar) {
            out += "\\u{\(String(scalar.value, radix: 16))}"
        } else {
            out.unicodeScalars.append(scalar)
        }
    }
    return out
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
