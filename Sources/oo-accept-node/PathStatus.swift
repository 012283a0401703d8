#if canImport(Glibc)
import Glibc
#endif

/// What `stat`/`lstat` says of a path, in the terms the checks compare.
struct PathStatus: Sendable, Equatable {
    var type: mode_t
    /// Permission bits with setuid, setgid and sticky (`st_mode & 07777`).
    var permissions: mode_t
    var uid: UInt32
    var gid: UInt32

    var isDirectory: Bool { type == S_IFDIR }
    var isSymbolicLink: Bool { type == S_IFLNK }
    var isRegularFile: Bool { type == S_IFREG }

    /// The path itself (a link is a link); nil with the errno when it cannot be examined.
    static func of(_ path: String, followingLinks: Bool = false) -> Result<PathStatus, PathError> {
        var st = stat()
        let rc = followingLinks ? stat(path, &st) : lstat(path, &st)
        guard rc == 0 else { return .failure(PathError(errno: errno)) }
        return .success(PathStatus(type: st.st_mode & S_IFMT, permissions: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid))
    }

    /// Whether `path` is a directory (links followed).
    static func isDirectory(_ path: String) -> Bool {
        if case .success(let status) = of(path, followingLinks: true) { return status.isDirectory }
        return false
    }

    /// `0750`.
    static func octal(_ mode: mode_t) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    var kind: String {
        switch type {
        case S_IFDIR: return "a directory"
        case S_IFLNK: return "a symbolic link"
        case S_IFREG: return "a file"
        default: return "a special file"
        }
    }
}

struct PathError: Error, Sendable {
    var errno: Int32
    var missing: Bool { errno == ENOENT || errno == ENOTDIR }
    var reason: String { String(cString: strerror(errno)) }
}
