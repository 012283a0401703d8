import AsyncAlgorithms
import Dispatch
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Watches `CARTRIDGE_BASE_PATH` and every directory below it with inotify, and asks for a
/// rescan once changes have been quiet for the debounce interval, so that a package that
/// writes many files causes one rescan, after it is done.
///
/// New subdirectories are watched as soon as they appear. If the base path itself is missing,
/// its parent is watched until it appears.
public struct BasePathWatcher: Service {
    private let basePath: String
    private let debounce: Duration
    private let rescans: RescanService
    private let logger: Logger

    public init(basePath: String, debounce: Duration, rescans: RescanService, logger: Logger) {
        self.basePath = basePath
        self.debounce = debounce
        self.rescans = rescans
        self.logger = logger
    }

    public func run() async throws {
        let inotify = try Inotify(logger: logger)
        let events = inotify.start(watching: basePath)
        let rescans = self.rescans
        await withGracefulShutdownHandler {
            for await _ in events.debounce(for: debounce).cancelOnGracefulShutdown() {
                rescans.request(.watch)
            }
        } onGracefulShutdown: {
            inotify.stop()
        }
    }
}

/// The inotify file descriptor, read through a Dispatch read source.
final class Inotify: @unchecked Sendable {
    // State below is touched only on `queue`.
    private let fd: Int32
    private let queue = DispatchQueue(label: "openshift.node.inotify")
    private var source: DispatchSourceRead?
    private var paths: [Int32: String] = [:]
    private var root = ""
    private var warnedAboutLimit = false
    private let logger: Logger

    static let mask: UInt32 = UInt32(IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO
        | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)

    init(logger: Logger) throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw WatchError(step: "inotify_init1", errno: errno) }
        self.logger = logger
    }

    /// Starts watching; the stream yields once per batch of events.
    func start(watching path: String) -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        queue.sync {
            root = path
            addTree(path)
            let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
            source.setEventHandler { [weak self] in
                guard let self else { return }
                if self.drain() { continuation.yield() }
            }
            source.setCancelHandler { [fd] in
                close(fd)
                continuation.finish()
            }
            self.source = source
            source.resume()
        }
        return stream
    }

    func stop() {
        queue.async { self.source?.cancel() }
    }

    /// Watches `path` and every directory below it (the root's parent while the root is missing).
    private func addTree(_ path: String) {
        let wd = inotify_add_watch(fd, path, Self.mask)
        if wd < 0 {
            if errno == ENOSPC && !warnedAboutLimit {
                warnedAboutLimit = true
                logger.warning(
                    "inotify watch limit reached: changes below this directory are seen only on SIGHUP (raise fs.inotify.max_user_watches)",
                    metadata: ["path": "\(path)"])
            }
            if path == root, errno == ENOENT {
                let parent = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
                let pwd = inotify_add_watch(fd, parent.isEmpty ? "/" : parent, UInt32(IN_CREATE | IN_MOVED_TO | IN_ONLYDIR))
                if pwd >= 0 { paths[pwd] = parent }
                logger.warning("cartridge base path missing; watching its parent", metadata: ["path": "\(path)"])
            }
            return
        }
        paths[wd] = path
        guard let dir = opendir(path) else { return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            guard entry.pointee.d_type == UInt8(DT_DIR) else { continue }
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { addTree(path + "/" + name) }
        }
    }

    /// Reads all pending events; returns whether any concerns the base path.
    private func drain() -> Bool {
        var relevant = false
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            var offset = 0
            while offset + 16 <= n {
                let wd = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
                let mask = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) }
                let length = Int(buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self) })
                let nameBytes = buffer[(offset + 16)..<min(n, offset + 16 + length)].prefix { $0 != 0 }
                let name = String(decoding: nameBytes, as: UTF8.self)
                offset += 16 + length
                handle(wd: wd, mask: mask, name: name, relevant: &relevant)
            }
        }
        return relevant
    }

    private func handle(wd: Int32, mask: UInt32, name: String, relevant: inout Bool) {
        if mask & UInt32(IN_Q_OVERFLOW) != 0 {
            relevant = true
            return
        }
        guard let directory = paths[wd] else { return }
        if mask & UInt32(IN_IGNORED) != 0 {
            paths[wd] = nil
            return
        }
        let path = directory + "/" + name
        if directory != root && !directory.hasPrefix(root + "/") {
            // A watch on the parent while the base path is missing.
            if path == root {
                addTree(root)
                relevant = true
            }
            return
        }
        if mask & UInt32(IN_ISDIR) != 0 && mask & UInt32(IN_CREATE | IN_MOVED_TO) != 0 { addTree(path) }
        relevant = true
    }
}

struct WatchError: Error, CustomStringConvertible {
    var step: String
    var errno: Int32
    var description: String { "\(step) failed: \(String(cString: strerror(errno)))" }
}
