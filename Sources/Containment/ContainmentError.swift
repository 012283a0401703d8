import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What can go wrong containing a gear. Each case names what and where.
public enum ContainmentError: NodeError, Equatable {
    /// A uid outside what the MCS parameters can label.
    case uidOutOfMCSRange(uid: Int, reason: String)
    /// Invalid MCS parameters in node.conf.
    case invalidMCSParameters(String)
    /// A system call failed: which step, on what, with errno.
    case system(step: String, target: String, errno: Int32)
    /// An argument that is not acceptable (a uid of 0, a malformed limit...).
    case invalidArgument(field: String, value: String, reason: String)
    /// A system tool (useradd, ...) exited non-zero.
    case toolFailed(step: String, arguments: String, status: Int32, output: String)

    /// A failed system call of the shared helpers, as a containment error.
    public init(_ error: SystemError) {
        self = .system(step: error.step, target: error.path, errno: error.errno)
    }

    public var kind: NodeErrorKind {
        switch self {
        case .uidOutOfMCSRange, .invalidMCSParameters, .invalidArgument: return .invalidArgument
        case .system(_, _, let code): return code == EPERM || code == EACCES ? .permissionDenied : .internal
        case .toolFailed: return .failedPrecondition
        }
    }

    public var description: String {
        switch self {
        case let .uidOutOfMCSRange(uid, reason): return "uid \(uid): \(reason)"
        case let .invalidMCSParameters(reason): return "invalid MCS parameters: \(reason)"
        case let .system(step, target, code): return "\(step) \(target) failed: \(String(cString: strerror(code))) (errno \(code))"
        case let .invalidArgument(field, value, reason): return "invalid \(field) '\(value)': \(reason)"
        case let .toolFailed(step, arguments, status, output): return "\(step) \(arguments) failed (exit \(status)): \(output)"
        }
    }
}
