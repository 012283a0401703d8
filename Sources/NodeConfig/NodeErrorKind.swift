/// The kind every error of the node carries, whatever module raised it.
///
/// The edges map it: command-line tools to exit codes, the message agent (later) to reply
/// statuses. Module errors keep their own cases; this is only the shared classification.
public enum NodeErrorKind: String, Sendable, Codable {
    case notFound
    case alreadyExists
    case invalidArgument
    case failedPrecondition
    case permissionDenied
    case unavailable
    case `internal`

    /// Exit status used by the command-line tools for this kind.
    public var exitCode: Int32 {
        switch self {
        case .invalidArgument: return 2
        case .notFound: return 3
        case .alreadyExists: return 4
        case .failedPrecondition: return 5
        case .permissionDenied: return 6
        case .unavailable: return 7
        case .internal: return 1
        }
    }
}

/// An error that can say what kind it is and explain itself in one sentence.
public protocol NodeError: Error, CustomStringConvertible {
    var kind: NodeErrorKind { get }
}
