import CLinux
import NodeConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small wrappers over the POSIX calls the repository needs, each throwing the step, the path
/// and errno. Kept in one file so that nothing else calls libc for files.
enum Posix {
    static func linkStatus(_ path: String) throws(CartridgesError) -> stat {
        var st = stat()
        guard lstat(path, &st) == 0 else { throw .io(step: "lstat", path: path, errno: errno) }
        return st
    }

    static func fileStatus(_ path: String) throws(CartridgesError) -> stat {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .io(step: "stat", path: path, errno: errno) }
        return st
    }

    /// `stat` (or `lstat`, `followLinks: false`) of `name` relative to the open directory
    /// `dirfd`; `path` is the whole path, for the error. Saves walking the directory's own path
    /// again for each of its entries.
    static func status(at dirfd: Int32, _ name: String, path: String, followLinks: Bool = true) throws(CartridgesError) -> stat {
        var st = stat()
        guard fstatat(dirfd, name, &st, followLinks ? 0 : AT_SYMLINK_NOFOLLOW) == 0 else {
            throw .io(step: followLinks ? "stat" : "lstat", path: path, errno: errno)
        }
        return st
    }

    static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    static func isDirectory(_ path: String, followLinks: Bool = true) -> Bool {
        var st = stat()
        let rc = followLinks ? stat(path, &st) : lstat(path, &st)
        return rc == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    /// Entry names of a directory, without `.` and `..`, sorted for a stable order.
    static func listDirectory(_ path: String) throws(CartridgesError) -> [String] {
        guard let names = FileSystem.entries(path) else { throw .io(step: "opendir", path: path, errno: errno) }
        return names
    }

    static func mkdir(_ path: String, mode: mode_t = 0o755) throws(CartridgesError) {
        guard Glibc.mkdir(path, mode) == 0 else { throw .io(step: "mkdir", path: path, errno: errno) }
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws(CartridgesError) {
        do { try FileSystem.makeDirectories(path, mode: mode) } catch { throw CartridgesError(error) }
    }

    static func rename(_ from: String, _ to: String) throws(CartridgesError) {
        guard Glibc.rename(from, to) == 0 else { throw .io(step: "rename to \(to) from", path: from, errno: errno) }
    }

    /// Atomically swaps two paths (`renameat2(RENAME_EXCHANGE)`), so a replaced directory is
    /// never missing, not even between two renames.
    static func exchange(_ a: String, _ b: String) throws(CartridgesError) {
        guard cl_rename_exchange(a, b) == 0 else { throw .io(step: "renameat2(RENAME_EXCHANGE) with \(b) of", path: a, errno: errno) }
    }

    static func unlink(_ path: String) throws(CartridgesError) {
        guard Glibc.unlink(path) == 0 || errno == ENOENT else { throw .io(step: "unlink", path: path, errno: errno) }
    }

    /// `rm -rf` without following symbolic links (a descriptor walk).
    static func removeTree(_ path: String) throws(CartridgesError) {
        let directory = parentDirectory(path)
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else {
            if errno == ENOENT { return }
            throw .io(step: "open", path: directory, errno: errno)
        }
        defer { close(dirfd) }
        do { try FileSystem.removeTree(in: dirfd, named: baseName(path)) } catch { throw .io(step: error.step, path: path, errno: error.errno) }
    }

    static func realPath(_ path: String) throws(CartridgesError) -> String {
        guard let resolved = realpath(path, nil) else { throw .io(step: "realpath", path: path, errno: errno) }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func readFile(_ path: String, limit: Int = 16 << 20) throws(CartridgesError) -> [UInt8] {
        do { return try FileSystem.readBytes(path, limit: limit) } catch { throw CartridgesError(error) }
    }

    static func readText(_ path: String) throws(CartridgesError) -> String {
        String(decoding: try readFile(path), as: UTF8.self)
    }

    /// Writes a file crash-safely: temp file in the same directory, fsync, rename over `path`.
    static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(CartridgesError) {
        do { try FileSystem.writeAtomically(path, bytes, mode: mode) } catch { throw CartridgesError(error) }
    }

    /// Flushes the file system holding `path` (one call instead of an fsync per copied file).
    static func syncFileSystem(of path: String) throws(CartridgesError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(step: "open", path: path, errno: errno) }
        defer { close(fd) }
        guard cl_syncfs(fd) == 0 else { throw .io(step: "syncfs", path: path, errno: errno) }
    }
}

func parentDirectory(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

func baseName(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return path }
    return String(path[path.index(after: slash)...])
}
