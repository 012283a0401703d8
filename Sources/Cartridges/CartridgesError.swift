import NodeConfig

/// Everything that can go wrong with manifests and the cartridge repository.
///
/// Each case names what was wrong and where; `description` is the sentence the command-line
/// tools print.
public enum CartridgesError: NodeError, Equatable {
    /// A manifest failed validation. `element` is the manifest field (`Name`, `Version`, ...).
    case invalidManifest(path: String, element: String, reason: String)
    /// The YAML of a manifest could not be parsed.
    case unparsableManifest(path: String, reason: String)
    /// The YAML of a manifest goes past one of `YAMLLimits` (size, nesting, nodes with aliases
    /// expanded); refused before it is parsed into a tree.
    case manifestOverLimit(path: String, reason: String)
    /// An argument (name, version, path) given by a user or a broker is not acceptable.
    case invalidArgument(field: String, value: String, reason: String)
    /// A cartridge source directory is not usable.
    case invalidSource(path: String, reason: String)
    /// The tuple is not in the repository (the original's `key not found` wording is kept).
    case notFound(vendor: String, name: String, version: String, cartridgeVersion: String)
    /// Erase refused: the version is in use or shipped; `reason` says which.
    case eraseRefused(ident: String, reason: String)
    /// A system call failed: which step, on which path, with errno.
    case io(step: String, path: String, errno: Int32)

    /// A failed system call of the shared helpers.
    public init(_ error: SystemError) {
        self = .io(step: error.step, path: error.path, errno: error.errno)
    }

    public var kind: NodeErrorKind {
        switch self {
        case .invalidManifest, .unparsableManifest, .manifestOverLimit, .invalidArgument, .invalidSource: return .invalidArgument
        case .notFound: return .notFound
        case .eraseRefused: return .failedPrecondition
        case .io(_, _, let code):
            switch code {
            case EACCES, EPERM, EROFS: return .permissionDenied
            case ENOENT: return .notFound
            case EEXIST: return .alreadyExists
            default: return .internal
            }
        }
    }

    public var description: String {
        switch self {
        case let .invalidManifest(path, element, reason):
            return "\(path): \(reason)" + (reason.contains(element) ? "" : " (\(element))")
        case let .unparsableManifest(path, reason):
            return "\(path): invalid YAML: \(reason)"
        case let .manifestOverLimit(path, reason):
            return "\(path): \(reason)"
        case let .invalidArgument(field, value, reason):
            return "invalid \(field) '\(printable(value))': \(reason)"
        case let .invalidSource(path, reason):
            return "\(reason): '\(printable(path))'"
        case let .notFound(vendor, name, version, cartridgeVersion):
            return "key not found: (\(vendor), \(name), \(version), \(cartridgeVersion))"
        case let .eraseRefused(_, reason):
            return reason
        case let .io(step, path, code):
            return "\(step) \(path) failed: \(String(cString: strerror(code))) (errno \(code))"
        }
    }
}

/// Control characters made visible, so an error message cannot rewrite a terminal.
func printable(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        if scalar.value < 0x20 || scalar.value == 0x7f {
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
