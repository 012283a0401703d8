/// Errors reading `node.conf`: each names the file and line that was wrong.
public enum NodeConfigError: NodeError, Equatable {
    /// A line that is not `KEY=value`, `KEY="value"` or `KEY='value'`.
    case malformedLine(file: String, line: Int, text: String, reason: String)
    /// A known key whose value is not of the key's type.
    case invalidValue(file: String, line: Int, key: String, value: String, expected: String)
    /// The configuration file could not be read.
    case unreadable(file: String, errno: Int32)

    public var kind: NodeErrorKind {
        switch self {
        case .malformedLine, .invalidValue: return .invalidArgument
        case .unreadable(_, let code): return code == 2 ? .notFound : .permissionDenied
        }
    }

    public var description: String {
        switch self {
        case let .malformedLine(file, line, text, reason):
            return "\(file):\(line): \(reason): '\(text)'"
        case let .invalidValue(file, line, key, value, expected):
            return "\(file):\(line): \(key) must be \(expected), found '\(value)'"
        case let .unreadable(file, code):
            return "cannot read configuration \(file): \(String(cString: strerror(code)))"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
