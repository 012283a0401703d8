import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// The file operations every module needs, written once: list, read with a limit, write
/// atomically, make directories, remove a tree. Every descriptor is close-on-exec; nothing here
/// follows a symbolic link it did not have to (reads of configuration files do, by design).
///
/// Work inside a gear's home does not come here: it goes through `GearHome` (Containment), which
/// resolves every path beneath the home's descriptor. `removeTree(in:named:)` is shared by both.
public enum FileSystem {
    /// Files the node reads whole are small; anything bigger is refused rather than allocated.
    public static let defaultReadLimit = 16 << 20

    /// The names in a directory, without `.` and `..`, sorted; nil if it cannot be read.
    public static func entries(_ path: String) -> [String]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        return entries(ofDescriptor: fd)
    }

    /// The names in the directory open at `fd` (consumed: closed when done), sorted.
    public static func entries(ofDescriptor fd: Int32) -> [String]? {
        guard let dir = fdopendir(fd) else {
            close(fd)
            return nil
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A whole (small) file as text, nil if it cannot be read.
    public static func read(_ path: String, limit: Int = defaultReadLimit) -> String? {
        (try? readBytes(path, limit: limit)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A whole file, refused (EFBIG) beyond `limit` bytes.
    public static func readBytes(_ path: String, limit: Int = defaultReadLimit) throws(SystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemError(step: "open", path: path, errno: errno) }
        defer { close(fd) }
        return try readAll(fd, limit: limit, path: path)
    }

    /// Reads `fd` to its end, at most `limit` bytes: straight into one buffer sized from
    /// `fstat` (a regular file is read without a copy or a reallocation), grown if it was not.
    public static func readAll(_ fd: Int32, limit: Int, path: String) throws(SystemError) -> [UInt8] {
        var st = stat()
        let size = fstat(fd, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? Int(st.st_size) : 0
        // One byte more than the size, so that the end of the file is seen without growing.
        var bytes = [UInt8](repeating: 0, count: min(max(size + 1, 16384), limit + 1))
        var total = 0
        while true {
            if total == bytes.count {
                guard total <= limit else {
                    throw SystemError(step: "read (larger than \(limit) bytes)", path: path, errno: EFBIG)
                }
                bytes.append(contentsOf: repeatElement(0, count: min(total, limit + 1 - total)))
            }
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(step: "read", path: path, errno: errno)
            }
            if n == 0 { break }
            total += n
        }
        guard total <= limit else { throw SystemError(step: "read (larger than \(limit) bytes)", path: path, errno: EFBIG) }
        bytes.removeSubrange(total...)
        return bytes
    }

    /// Writes all of `bytes` to `fd`.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(SystemError) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SystemError(step: "write", path: path, errno: errno)
            }
            offset += n
        }
    }

    /// Replaces `path` crash-safely: a temporary file beside it (exclusive, never a followed
    /// link), written, given `mode`, fsynced, then renamed over `path`. A reader sees the old
    /// file or the new one, never a part; a crash leaves at most a `.<name>.tmp-*` file.
    /// Without `durable` the fsync is skipped: still whole or absent after the process dies,
    /// not necessarily after the machine does.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws(SystemError) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw SystemError(step: "open directory", path: directory, errno: errno) }
        defer { close(dirfd) }
        try writeAtomically(in: dirfd, name: name, bytes, mode: mode, displayPath: path, durable: durable)
    }

    public static func writeAtomically(_ path: String, _ text: String, mode: mode_t = 0o644) throws(SystemError) {
        try writeAtomically(path, Array(text.utf8), mode: mode)
    }

    /// The same, relative to an open directory; `prepare` may change the new file (its owner)
    /// through its descriptor before it is renamed into place.
    public static func writeAtomically(in dirfd: Int32, name: String, _ bytes: [UInt8], mode: mode_t, displayPath: String,
                                       durable: Bool = true, prepare: ((Int32) throws(SystemError) -> Void)? = nil) throws(SystemError) {
        let temp = ".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = openat(dirfd, temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw SystemError(step: "create", path: displayPath + " (temporary)", errno: errno) }
        var renamed = false
        defer { if !renamed { unlinkat(dirfd, temp, 0) } }
        do {
            defer { close(fd) }
            try writeAll(fd, bytes, path: displayPath)
            guard fchmod(fd, mode) == 0 else { throw SystemError(step: "fchmod", path: displayPath, errno: errno) }
            try prepare?(fd)
            if durable { guard fsync(fd) == 0 else { throw SystemError(step: "fsync", path: displayPath, errno: errno) } }
        }
        guard renameat(dirfd, temp, dirfd, name) == 0 else { throw SystemError(step: "rename into place", path: displayPath, errno: errno) }
        renamed = true
    }

    /// Removes the temporary files a killed `writeAtomically` of `path` may have left beside it.
    public static func removeTemporaries(of path: String) {
        guard let slash = path.lastIndex(of: "/") else { return }
        let directory = String(path[..<slash])
        let prefix = "." + path[path.index(after: slash)...] + ".tmp-"
        for name in entries(directory) ?? [] where name.hasPrefix(prefix) { unlink(directory + "/" + name) }
    }

    /// `mkdir -p`: each missing directory is created with `mode`.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(SystemError) {
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { return }
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST { throw SystemError(step: "mkdir", path: current, errno: errno) }
        }
    }

    /// `rm -rf` without following symbolic links. Best effort: the caller checks what is left.
    public static func removeTree(_ path: String) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { return }
        defer { close(dirfd) }
        _ = try? removeTree(in: dirfd, named: name)
    }

    /// Removes `name` in the directory open at `dirfd`, and everything under it, by descriptor:
    /// each directory is opened with O_NOFOLLOW relative to its parent's descriptor and emptied
    /// with `unlinkat`; no path string is resolved twice, so a directory swapped for a link
    /// while this runs is removed as a link, never followed. Stays on `dirfd`'s file system.
    /// Throws the first failure after trying everything it could.
    public static func removeTree(in dirfd: Int32, named name: String) throws(SystemError) {
        var st = stat()
        guard fstatat(dirfd, name, &st, cl_at_symlink_nofollow()) == 0 else {
            if errno == ENOENT { return }
            throw SystemError(step: "fstatat", path: name, errno: errno)
        }
        var parent = stat()
        let device = fstat(dirfd, &parent) == 0 ? parent.st_dev : st.st_dev
        try removeEntry(in: dirfd, name, st, device: device, depth: 0)
    }

    private static func removeEntry(in dirfd: Int32, _ name: String, _ st: stat, device: dev_t, depth: Int) throws(SystemError) {
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            guard unlinkat(dirfd, name, 0) == 0 || errno == ENOENT else { throw SystemError(step: "unlink", path: name, errno: errno) }
            return
        }
        guard st.st_dev == device else { throw SystemError(step: "remove (another file system is mounted there)", path: name, errno: EXDEV) }
        guard depth < 512 else { throw SystemError(step: "remove (deeper than 512 levels)", path: name, errno: ELOOP) }
        let fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            // Swapped for a link or a file since the fstatat: remove whatever is there now.
            if errno == ENOTDIR || errno == ELOOP {
                guard unlinkat(dirfd, name, 0) == 0 || errno == ENOENT else { throw SystemError(step: "unlink", path: name, errno: errno) }
                return
            }
            if errno == ENOENT { return }
            throw SystemError(step: "open directory", path: name, errno: errno)
        }
        var firstError: SystemError?
        do throws(SystemError) {
            defer { close(fd) }
            // Without root, a directory we may not write into cannot be emptied: make it ours to empty.
            if geteuid() != 0 { fchmod(fd, 0o700) }
            guard let names = entries(ofDescriptor: dup(fd)) else { throw SystemError(step: "read directory", path: name, errno: errno) }
            for child in names {
                var childStatus = stat()
                guard fstatat(fd, child, &childStatus, cl_at_symlink_nofollow()) == 0 else { continue }
                do throws(SystemError) {
                    try removeEntry(in: fd, child, childStatus, device: device, depth: depth + 1)
                } catch {
                    firstError = firstError ?? SystemError(step: error.step, path: name + "/" + error.path, errno: error.errno)
                }
            }
        } catch {
            firstError = firstError ?? error
        }
        if unlinkat(dirfd, name, cl_at_removedir()) != 0 && errno != ENOENT {
            firstError = firstError ?? SystemError(step: "rmdir", path: name, errno: errno)
        }
        if let firstError { throw firstError }
    }
}
