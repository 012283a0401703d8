import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Descriptors the daemon cannot open close-on-exec itself.
///
/// SwiftNIO creates each event loop's epoll descriptor with plain `epoll_create` (NIOPosix 2.101,
/// `Linux.swift`), and a parent may hand the daemon descriptors it never asked for. Marking every
/// open descriptor above stderr once at start-up, after the event loops exist and before any
/// service runs (so before anything can spawn), leaves no window. Descriptors the daemon opens
/// later must be opened close-on-exec (`O_CLOEXEC`, `SOCK_CLOEXEC`, `accept4`).
public enum CloseOnExec {
    /// Sets FD_CLOEXEC on every open descriptor above 2; returns the ones that lacked it.
    @discardableResult
    public static func markAllOpenDescriptors() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        let own = dirfd(directory)
        var marked: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0, fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0 { marked.append(fd) }
        }
        return marked
    }
}

extension CloseOnExec {
    /// Starts SwiftNIO's shared event loops now (rather than lazily, whenever a service first
    /// needs one) and marks every descriptor open so far close-on-exec.
    @discardableResult
    public static func startEventLoops() -> [Int32] {
        _ = MultiThreadedEventLoopGroup.singleton.next()
        return markAllOpenDescriptors()
    }
}
