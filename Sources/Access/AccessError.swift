import Gears
import NodeConfig

/// What can go wrong when the node changes who may reach a gear. Each case names the field or
/// file and what was wrong, as a sentence the broker's operator can act on.
public enum AccessError: NodeError {
    /// A key, type, comment, login or principal the node refuses; nothing was changed.
    case invalidArgument(field: String, value: String, reason: String)
    /// The Kerberos configuration file could not be read or understood.
    case kerberosConfiguration(path: String, line: Int, reason: String)
    /// The gear step (lock, home, write) failed.
    case gears(GearsError)
    /// A file outside the gear (the k5login directory) could not be read or written.
    case system(SystemError)

    public var kind: NodeErrorKind {
        switch self {
        case .invalidArgument: return .invalidArgument
        case .kerberosConfiguration: return .failedPrecondition
        case .gears(let error): return error.kind
        case .system: return .internal
        }
    }

    public var description: String {
        switch self {
        case let .invalidArgument(field, value, reason): return "invalid \(field) '\(value)': \(reason)"
        case let .kerberosConfiguration(path, line, reason):
            return "Kerberos configuration \(path)" + (line > 0 ? " line \(line)" : "") + ": \(reason)"
        case .gears(let error): return error.description
        case .system(let error): return error.description
        }
    }
}

/// Shows a refused value safely: at most 64 characters, control characters escaped.
func shown(_ value: String) -> String {
    var text = ""
    for scalar in value.unicodeScalars.prefix(64) {
        text += scalar.value < 0x20 || scalar.value == 0x7f ? scalar.escaped(asASCII: true) : String(scalar)
    }
    return value.unicodeScalars.count > 64 ? text + "..." : text
}
