import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What can go wrong in the `gear` command inside a gear (a name of its own: the Access module also
/// holds the node-side key code with its own error type). Each case names what and where; the
/// command prints `description` and exits with `kind.exitCode`.
public enum InGearError: NodeError, Equatable {
    /// The archive was refused; `member` names the tar member (empty when the stream itself is
    /// at fault). Nothing was changed.
    case refused(member: String, reason: String)
    /// `gear` must run as a gear's user.
    case notAGear(reason: String)
    /// A cartridge's `bin/control <action>` failed.
    case controlFailed(cartridge: String, action: String, status: Int32, output: String)
    /// A program the command runs (tar, gzip) failed.
    case toolFailed(program: String, status: Int32, output: String)
    /// The gear is not in a state the command can work with (named in the reason); nothing changed.
    case precondition(String)
    /// A system call failed: the step and the path are in it.
    case system(SystemError)
    /// Restore could not finish after it started changing the gear; `restored` says whether the
    /// previous contents were put back.
    case restoreFailed(step: String, underlying: String, rolledBack: Bool)

    public var kind: NodeErrorKind {
        switch self {
        case .refused: return .invalidArgument
        case .notAGear: return .permissionDenied
        case .controlFailed, .toolFailed, .restoreFailed, .precondition: return .failedPrecondition
        case .system(let error): return error.errno == EACCES || error.errno == EPERM ? .permissionDenied : .internal
        }
    }

    public var description: String {
        switch self {
        case .refused(let member, let reason):
            return member.isEmpty ? "archive refused: \(reason); nothing was changed"
                : "archive refused: member \(Self.quoted(member)): \(reason); nothing was changed"
        case .notAGear(let reason):
            return reason
        case .controlFailed(let cartridge, let action, let status, let output):
            let shown = output.isEmpty ? "" : "\n" + output
            return "control \(action) of cartridge \(cartridge) failed (exit \(status))" + shown
        case .toolFailed(let program, let status, let output):
            return "\(program) failed (exit \(status))" + (output.isEmpty ? "" : ": " + output)
        case .system(let error):
            return error.description
        case .precondition(let reason):
            return reason
        case .restoreFailed(let step, let underlying, let rolledBack):
            return "restore failed while \(step): \(underlying); "
                + (rolledBack ? "the previous contents were put back" : "the gear may be partly restored")
        }
    }

    /// A member name as a user can read it: control characters escaped, at most 300 characters.
    static func quoted(_ name: String) -> String {
        var out = ""
        for scalar in name.unicodeScalars.prefix(300) {
            switch scalar {
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default: out += scalar.value < 32 || scalar.value == 127 ? "\\x" + String(scalar.value, radix: 16) : String(scalar)
            }
        }
        return "'" + out + (name.unicodeScalars.count > 300 ? "..." : "") + "'"
    }
}

/// Bytes of a path (names in archives are bytes, not necessarily UTF-8), shown as text.
func pathText(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }
