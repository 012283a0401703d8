import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// Copies a directory tree the node trusts (a cartridge source, a repository entry) into a
/// directory open as a descriptor, by descriptor: every new entry is created with `O_EXCL`
/// and `O_NOFOLLOW` (or `mkdirat`/`symlinkat`) relative to its parent's descriptor, so nothing
/// already at the target, a planted link included, is ever followed or overwritten.
///
/// What `cp -a` does, minus SELinux labels: symbolic links copied as links, modes and
/// timestamps kept, hard links within the source kept when asked; owners either kept (as
/// root) or all set to `owner`. Devices, sockets and FIFOs are refused: a cartridge has no
/// business shipping them.
public struct TreeCopy {
    public enum Ownership: Sendable {
        /// The source's owners when running as root; the caller's otherwise.
        case preserve
        /// Every entry given to this uid and gid.
        case set(uid: UInt32, gid: UInt32)
    }

    public var ownership: Ownership = .preserve
    public var preserveHardLinks = true
    /// Called after each regular file is copied, with the running count (a test seam).
    public var progress: (@Sendable (Int) -> Void)?

    private var files = 0
    private var hardLinks: [HardLinkKey: (parent: Int32, name: String)] = [:]
    private var openParents: [Int32] = []
    private var buffer = [UInt8](repeating: 0, count: 128 * 1024)

    private struct HardLinkKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    public init(ownership: Ownership = .preserve, preserveHardLinks: Bool = true, progress: (@Sendable (Int) -> Void)? = nil) {
        self.ownership = ownership
        self.preserveHardLinks = preserveHardLinks
        self.progress = progress
    }

    /// Copies `source` (a directory, file or link) to `name` inside the directory open at
    /// `dirfd`; `name` must not exist. `displayTarget` names the target in errors.
    public mutating func copy(from source: String, into dirfd: Int32, as name: String, displayTarget: String) throws(SystemError) {
        defer {
            for fd in openParents { close(fd) }
            openParents = []
            hardLinks = [:]
        }
        try copyEntry(source, dirfd, name, displayTarget)
    }

    private mutating func copyEntry(_ source: String, _ dirfd: Int32, _ name: String, _ display: String) throws(SystemError) {
        var st = stat()
        guard lstat(source, &st) == 0 else { throw SystemError(step: "lstat", path: source, errno: errno) }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            guard mkdirat(dirfd, name, 0o700) == 0 else { throw SystemError(step: "mkdir", path: display, errno: errno) }
            let fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw SystemError(step: "open directory", path: display, errno: errno) }
            var keep = false
            defer { if !keep { close(fd) } }
            guard let names = FileSystem.entries(source) else { throw SystemError(step: "read directory", path: source, errno: errno) }
            for child in names {
                try copyEntry(source + "/" + child, fd, child, display + "/" + child)
            }
            try applyMetadata(st, fd: fd, display: display)
            // Directories holding a first hard link stay open until the copy ends.
            if hardLinks.values.contains(where: { $0.parent == fd }) {
                openParents.append(fd)
                keep = true
            }
        case S_IFREG:
            let key = HardLinkKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if preserveHardLinks, st.st_nlink > 1, let first = hardLinks[key] {
                guard linkat(first.parent, first.name, dirfd, name, 0) == 0 else { throw SystemError(step: "link", path: display, errno: errno) }
                return
            }
            let output = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard output >= 0 else { throw SystemError(step: "create", path: display, errno: errno) }
            defer { close(output) }
            try copyContents(source, output, display)
            try applyMetadata(st, fd: output, display: display)
            if preserveHardLinks && st.st_nlink > 1 { hardLinks[key] = (dirfd, name) }
            files += 1
            progress?(files)
        case S_IFLNK:
            var target = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(source, &target, target.count - 1)
            guard n >= 0 else { throw SystemError(step: "readlink", path: source, errno: errno) }
            target[n] = 0
            guard symlinkat(target, dirfd, name) == 0 else { throw SystemError(step: "symlink", path: display, errno: errno) }
            if let (uid, gid) = owner(of: st) {
                guard cl_fchownat_nofollow(dirfd, name, uid, gid) == 0 else { throw SystemError(step: "lchown", path: display, errno: errno) }
            }
            var times = [st.st_atim, st.st_mtim]
            guard utimensat(dirfd, name, &times, cl_at_symlink_nofollow()) == 0 else {
                throw SystemError(step: "utimensat", path: display, errno: errno)
            }
        default:
            throw SystemError(step: "copy (only files, directories and symbolic links may be copied)", path: source, errno: EINVAL)
        }
    }

    private func owner(of st: stat) -> (UInt32, UInt32)? {
        switch ownership {
        case .preserve: return geteuid() == 0 ? (st.st_uid, st.st_gid) : nil
        case .set(let uid, let gid): return geteuid() == 0 ? (uid, gid) : nil
        }
    }

    private func applyMetadata(_ st: stat, fd: Int32, display: String) throws(SystemError) {
        if let (uid, gid) = owner(of: st) {
            guard fchown(fd, uid, gid) == 0 else { throw SystemError(step: "fchown", path: display, errno: errno) }
        }
        guard fchmod(fd, st.st_mode & 0o7777) == 0 else { throw SystemError(step: "fchmod", path: display, errno: errno) }
        var times = [st.st_atim, st.st_mtim]
        guard futimens(fd, &times) == 0 else { throw SystemError(step: "futimens", path: display, errno: errno) }
    }

    private mutating func copyContents(_ source: String, _ output: Int32, _ display: String) throws(SystemError) {
        let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else { throw SystemError(step: "open", path: source, errno: errno) }
        defer { close(input) }
        // copy_file_range lets the kernel copy (or reflink) without a round trip through us.
        while true {
            let n = cl_copy_file_range(input, output, 1 << 30)
            if n > 0 { continue }
            if n == 0 { return }
            if errno == EINTR { continue }
            if errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP { break }
            throw SystemError(step: "copy_file_range", path: display, errno: errno)
        }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(step: "read", path: source, errno: errno)
            }
            if n == 0 { return }
            try FileSystem.writeAll(output, Array(buffer[0..<n]), path: display)
        }
    }
}
