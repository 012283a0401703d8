import NodeConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The repository's cross-process lock: one persistent `LockFile`, never deleted.
///
/// Writers (the daemon's rescans, `oo-admin-cartridge`, the agent) hold it exclusively; loads
/// hold it shared, so a reader never sees half of a multi-directory change.
struct RepositoryLock: Sendable {
    let path: String

    enum Mode { case shared, exclusive }

    /// Runs `body` holding the lock. A reader that cannot open the file (a read-only repository
    /// owned by someone else, or none yet) proceeds unlocked: every change it could observe is a rename.
    func withLock<T>(_ mode: Mode, _ body: () throws(CartridgesError) -> T) throws(CartridgesError) -> T {
        let lock: LockFile
        do {
            lock = try LockFile.acquire(path, mode == .shared ? .shared : .exclusive)
        } catch {
            if mode == .shared && (error.errno == EACCES || error.errno == EROFS || error.errno == ENOENT) { return try body() }
            throw CartridgesError(error)
        }
        defer { lock.release() }
        return try body()
    }
}
