import Cartridges
import Containment
import Frontend
import NodeConfig

/// What can go wrong with a gear operation. Each names the gear and what failed.
public enum GearsError: NodeError {
    case invalidArgument(field: String, value: String, reason: String)
    case gearNotFound(String)
    case gearExists(String)
    case cartridgeNotFound(gear: String, cartridge: String)
    case cartridgeAlreadyConfigured(gear: String, cartridge: String)
    /// A hook exited non-zero (or timed out); its output is kept for the reply.
    case hookFailed(gear: String, hook: String, status: Int32, output: String)
    case containment(ContainmentError)
    case frontend(FrontendError)
    case cartridges(CartridgesError)
    case io(step: String, path: String, errno: Int32)

    /// A failed system call of the shared helpers.
    public init(_ error: SystemError) {
        self = .io(step: error.step, path: error.path, errno: error.errno)
    }

    public var kind: NodeErrorKind {
        switch self {
        case .invalidArgument: return .invalidArgument
        case .gearNotFound, .cartridgeNotFound: return .notFound
        case .gearExists, .cartridgeAlreadyConfigured: return .alreadyExists
        case .hookFailed: return .failedPrecondition
        case .containment(let error): return error.kind
        case .frontend(let error): return error.kind
        case .cartridges(let error): return error.kind
        case .io: return .internal
        }
    }

    public var description: String {
        switch self {
        case let .invalidArgument(field, value, reason): return "invalid \(field) '\(value)': \(reason)"
        case let .gearNotFound(uuid): return "gear \(uuid) does not exist on this node"
        case let .gearExists(uuid): return "gear \(uuid) already exists on this node"
        case let .cartridgeNotFound(gear, cartridge): return "cartridge \(cartridge) is not configured in gear \(gear)"
        case let .cartridgeAlreadyConfigured(gear, cartridge): return "cartridge \(cartridge) is already configured in gear \(gear)"
        case let .hookFailed(gear, hook, status, output):
            let tail = output.split(separator: "\n").suffix(5).joined(separator: " | ")
            return "\(hook) failed in gear \(gear) (exit \(status))" + (tail.isEmpty ? "" : ": \(tail)")
        case .containment(let error): return error.description
        case .frontend(let error): return error.description
        case .cartridges(let error): return error.description
        case let .io(step, path, code): return "\(step) \(path) failed: \(String(cString: strerror(code)))"
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Runs a containment step, reporting its error as a gear error.
func containing<T>(_ body: () throws(ContainmentError) -> T) throws(GearsError) -> T {
    do { return try body() } catch { throw .containment(error) }
}

/// Runs a repository step, reporting its error as a gear error.
func cartridging<T>(_ body: () throws(CartridgesError) -> T) throws(GearsError) -> T {
    do { return try body() } catch { throw .cartridges(error) }
}

/// Runs a frontend step, reporting its error as a gear error.
func routing<T>(_ body: () throws(FrontendError) -> T) throws(GearsError) -> T {
    do { return try body() } catch { throw .frontend(error) }
}
