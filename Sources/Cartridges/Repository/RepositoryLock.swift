#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The repository's cross-process lock: one persistent file, `flock`ed, never deleted.
///
/// Writers (the daemon's rescans, `oo-admin-cartridge`, later the agent) hold it exclusively;
/// loads hold it shared, so a reader never sees half of a multi-directory change. `flock` locks
/// belong to the open file description, so two threads of one process also exclude each other.
/// The original unlinked its lock file before unlocking, letting two holders in at once.
struct RepositoryLock: Sendable {
    let path: String

    enum Mode { case shared, exclusive }

    /// Runs `body` holding the lock. A reader that cannot open the file (a read-only repository
    /// owned by someone else) proceeds unlocked: every change it could observe is a rename.
    func withLock<T>(_ mode: Mode, _ body: () throws(CartridgesError) -> T) throws(CartridgesError) -> T {
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        if fd < 0 && mode == .shared { fd = open(path, O_RDONLY | O_CLOEXEC) }
        if fd < 0 {
            if mode == .shared && (errno == EACCES || errno == EROFS || errno == ENOENT) { return try body() }
            throw .io(step: "open lock file", path: path, errno: errno)
        }
        defer { close(fd) }
        while flock(fd, mode == .shared ? LOCK_SH : LOCK_EX) != 0 {
            if errno != EINTR { throw .io(step: "flock", path: path, errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }
}
