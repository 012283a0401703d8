#if canImport(Glibc)
import Glibc
#endif

/// A cross-process lock: one file per resource, `flock`ed.
///
/// The file persists while the resource exists. When the resource goes away (a destroyed gear)
/// its holder may `remove()` the file while still holding it; every locker checks, once it has
/// the lock, that the file it locked is still the one at the path, and starts over otherwise. So
/// two processes never both hold "the" lock of a resource, the weakness of the original, which
/// deleted its lock file and then unlocked. `flock` locks belong to the open file description,
/// so two threads of one process also exclude each other.
///
/// Waiting honours the operation's `Cancellation` (the agent's time budget): a cancelled wait
/// throws ETIMEDOUT instead of blocking a thread forever behind a stuck holder.
public final class LockFile {
    public enum Mode: Sendable { case shared, exclusive }

    public let path: String
    private var fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    deinit { release() }

    /// Opens (creating with mode 0600) and locks `path`.
    public static func acquire(_ path: String, _ mode: Mode = .exclusive) throws(SystemError) -> LockFile {
        let operation = mode == .shared ? LOCK_SH : LOCK_EX
        let cancellation = Cancellation.current
        while true {
            var fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
            // A shared lock needs no write access (a repository owned by someone else, read-only).
            if fd < 0 && mode == .shared && (errno == EACCES || errno == EROFS) { fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
            guard fd >= 0 else { throw SystemError(step: "open lock file", path: path, errno: errno) }
            do throws(SystemError) {
                try lock(fd, operation, path: path, cancellation: cancellation)
            } catch {
                close(fd)
                throw error
            }
            // Still the file at `path`? A holder may have removed it (and another created a new one).
            var held = stat()
            var current = stat()
            if fstat(fd, &held) == 0, held.st_nlink > 0, stat(path, &current) == 0, current.st_ino == held.st_ino,
               current.st_dev == held.st_dev {
                return LockFile(path: path, fd: fd)
            }
            close(fd)
        }
    }

    /// Runs `body` holding the lock of `path`.
    public static func withLock<T, E: Error>(_ path: String, _ mode: Mode = .exclusive, wrap: (SystemError) -> E,
                                             _ body: () throws(E) -> T) throws(E) -> T {
        let lock: LockFile
        do { lock = try acquire(path, mode) } catch { throw wrap(error) }
        defer { lock.release() }
        return try body()
    }

    private static func lock(_ fd: Int32, _ operation: Int32, path: String, cancellation: Cancellation?) throws(SystemError) {
        guard let cancellation else {
            while flock(fd, operation) != 0 {
                if errno != EINTR { throw SystemError(step: "flock", path: path, errno: errno) }
            }
            return
        }
        var pause: UInt32 = 1_000
        while flock(fd, operation | LOCK_NB) != 0 {
            if errno != EWOULDBLOCK && errno != EINTR { throw SystemError(step: "flock", path: path, errno: errno) }
            if cancellation.isCancelled { throw SystemError(step: "wait for the lock (the operation's time ran out)", path: path, errno: ETIMEDOUT) }
            usleep(pause)
            pause = min(pause * 2, 20_000)
        }
    }

    /// Removes the lock file; only the holder may, and only when the resource is gone.
    public func remove() {
        if fd >= 0 { unlink(path) }
    }

    public func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }
}
