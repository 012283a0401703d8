#if canImport(Glibc)
import Glibc
#endif

/// The repository's lock file held shared, if it exists (never created): writers hold it
/// exclusively while they change the repository. Waits at most 10 s for a writer.
final class SharedLock {
    private var fd: Int32
    private(set) var held = false

    init(path: String) {
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return }
        for _ in 0..<1000 {
            if flock(fd, LOCK_SH | LOCK_NB) == 0 {
                held = true
                return
            }
            guard errno == EWOULDBLOCK || errno == EINTR else { return }
            usleep(10_000)
        }
    }

    func release() {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}
