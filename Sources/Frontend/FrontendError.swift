import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What can go wrong with a gear's routes: each case names the field and the value.
public enum FrontendError: NodeError, Equatable {
    case invalidName(field: String, value: String, reason: String)
    case invalidConnection(field: String, value: String, reason: String)
    case aliasTaken(alias: String, owner: String)
    case hostTaken(host: String, owner: String)
    case notOwner(name: String, uuid: String)
    case notFound(String)
    case corruptState(path: String, reason: String)
    case io(step: String, path: String, errno: Int32)
    case plugin(name: String, reason: String)
    case invalidSSL(alias: String, reason: String)

    /// A failed system call of the shared helpers.
    public init(_ error: SystemError) {
        self = .io(step: error.step, path: error.path, errno: error.errno)
    }

    public var kind: NodeErrorKind {
        switch self {
        case .invalidName, .invalidConnection, .invalidSSL: return .invalidArgument
        case .aliasTaken, .hostTaken: return .alreadyExists
        case .notOwner: return .invalidArgument
        case .notFound: return .notFound
        case .corruptState, .io, .plugin: return .internal
        }
    }

    public var description: String {
        switch self {
        case let .invalidName(field, value, reason): return "invalid \(field) '\(visible(value))': \(reason)"
        case let .invalidConnection(field, value, reason): return "invalid connection \(field) '\(visible(value))': \(reason)"
        case let .aliasTaken(alias, owner): return "alias \(alias) already belongs to gear \(owner)"
        case let .hostTaken(host, owner): return "host name \(host) is already routed to gear \(owner)"
        case let .notOwner(name, uuid): return "\(name) is not an alias of gear \(uuid); nothing was changed"
        case let .notFound(what): return "\(what) not found"
        case let .corruptState(path, reason): return "\(path) is corrupt (\(reason)); it was not read as empty"
        case let .io(step, path, code): return "\(step) \(path) failed: \(String(cString: strerror(code)))"
        case let .plugin(name, reason): return "frontend plugin \(name): \(reason)"
        case let .invalidSSL(alias, reason): return "invalid SSL certificate for \(alias): \(reason)"
        }
    }
}

func visible(_ text: String) -> String {
    String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
}
