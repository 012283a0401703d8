import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory inside the gear that an accepted archive's members are written into
/// (`.tmp/gear-restore.<pid>.<n>/`), so the gear's own files change only after the whole
/// archive has been read and checked, and then by renames. Runs as the gear's user: the kernel
/// decides what it may write; it never writes through a link (every file is created with
/// `O_EXCL|O_NOFOLLOW`, and the policy refuses members under links).
final class StagingTree {
    let root: String
    private var madeDirectories: Set<[UInt8]> = [[]]
    /// Directory modes and times, applied last (deepest first) so that a read-only directory
    /// can still be filled.
    private var directoryAttributes: [([UInt8], UInt32, Int64)] = []
    private let restoreTimes: Bool

    init(root: String, restoreTimes: Bool = true) throws(InGearError) {
        guard mkdir(root, 0o700) == 0 else { throw .system(SystemError(step: "mkdir (restore staging)", path: root, errno: errno)) }
        self.root = root
        self.restoreTimes = restoreTimes
    }

    func path(_ relative: [UInt8]) -> [UInt8] { Array(root.utf8) + [UInt8(ascii: "/")] + relative }

    func withCPath<T>(_ relative: [UInt8], _ body: (UnsafePointer<CChar>) -> T) -> T {
        (path(relative) + [0]).withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) } }
    }

    func failure(_ step: String, _ relative: [UInt8], _ code: Int32) -> InGearError {
        .system(SystemError(step: step, path: root + "/" + pathText(relative), errno: code))
    }

    private func makeParents(of relative: [UInt8]) throws(InGearError) {
        var index = relative.count
        while index > 0 && relative[index - 1] != UInt8(ascii: "/") { index -= 1 }
        guard index > 0 else { return }
        let parent = Array(relative[..<(index - 1)])
        try makeDirectory(parent)
    }

    private func makeDirectory(_ relative: [UInt8]) throws(InGearError) {
        if madeDirectories.contains(relative) { return }
        try makeParents(of: relative)
        let rc = withCPath(relative) { mkdir($0, 0o700) }
        guard rc == 0 || errno == EEXIST else { throw failure("mkdir", relative, errno) }
        madeDirectories.insert(relative)
    }

    func directory(_ relative: [UInt8], mode: UInt32, modificationTime: Int64) throws(InGearError) {
        try makeDirectory(relative)
        directoryAttributes.append((relative, mode & 0o1777, modificationTime))
    }

    func file(_ relative: [UInt8], mode: UInt32, modificationTime: Int64, from reader: TarReader) throws(InGearError) {
        try makeParents(of: relative)
        let fd = withCPath(relative) { open($0, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600) }
        guard fd >= 0 else { throw failure("create", relative, errno) }
        defer { close(fd) }
        try reader.readData { (chunk: UnsafeRawBufferPointer) throws(InGearError) in
            var written = 0
            while written < chunk.count {
                let n = write(fd, chunk.baseAddress! + written, chunk.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("write", relative, errno)
                }
                written += n
            }
        }
        guard fchmod(fd, mode_t(mode & 0o1777)) == 0 else { throw failure("fchmod", relative, errno) }
        if restoreTimes { try setTimes(fd: fd, relative, modificationTime) }
    }

    func symlink(_ relative: [UInt8], target: [UInt8]) throws(InGearError) {
        try makeParents(of: relative)
        let rc = (target + [0]).withUnsafeBufferPointer { t in
            t.withMemoryRebound(to: CChar.self) { tp in withCPath(relative) { Glibc.symlink(tp.baseAddress!, $0) } }
        }
        guard rc == 0 else { throw failure("symlink", relative, errno) }
    }

    func hardLink(_ relative: [UInt8], target: [UInt8]) throws(InGearError) {
        try makeParents(of: relative)
        let rc = withCPath(target) { source in withCPath(relative) { linkat(AT_FDCWD, source, AT_FDCWD, $0, 0) } }
        guard rc == 0 else { throw failure("link", relative, errno) }
    }

    private func setTimes(fd: Int32, _ relative: [UInt8], _ seconds: Int64) throws(InGearError) {
        // Access and modification time both the archive's modification time, as tar does.
        let times = [timespec(tv_sec: Int(seconds), tv_nsec: 0), timespec(tv_sec: Int(seconds), tv_nsec: 0)]
        guard futimens(fd, times) == 0 else { throw failure("futimens", relative, errno) }
    }

    /// Applies the directories' modes and times, deepest first, once they are in place under `base`.
    func applyDirectoryAttributes(under base: String) throws(InGearError) {
        for (relative, mode, seconds) in directoryAttributes.sorted(by: { $0.0.count > $1.0.count }) {
            let full = Array(base.utf8) + [UInt8(ascii: "/")] + relative + [0]
            let fd = full.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) } }
            guard fd >= 0 else { throw InGearError.system(SystemError(step: "open directory", path: base + "/" + pathText(relative), errno: errno)) }
            defer { close(fd) }
            guard fchmod(fd, mode_t(mode)) == 0 else { throw failure("fchmod", relative, errno) }
            if restoreTimes { try setTimes(fd: fd, relative, seconds) }
        }
    }

    /// Removes the tree (whatever it holds).
    func remove() { FileSystem.removeTree(root) }
}
