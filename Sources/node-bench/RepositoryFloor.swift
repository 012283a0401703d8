#if canImport(Glibc)
import Glibc
#endif

/// The least work a repository command could do, in plain system calls, to compare it against.
///
/// - rescan floor: an lstat of every entry of CARTRIDGE_BASE_PATH (the walk that tells whether a
///   source changed) plus reading every `.<cartridge version>.source` stamp in the repository
///   (what it was installed from);
/// - listing floor: reading every repository `metadata/manifest.yml` (open, read, close).
///
/// Directories are walked by descriptor (`openat`, `fdopendir`, `readdir`) and entries are
/// `fstatat(..., AT_SYMLINK_NOFOLLOW)`, lstat without resolving the whole path again, so the
/// floor is as low as a careful implementation could go. Single-threaded.
enum RepositoryFloor {
    struct Totals {
        var entries = 0
        var files = 0
        var bytes = 0
    }

    /// lstat of every entry under `base`, then every repository stamp read.
    static func rescan(base: String, repository: String) -> Totals {
        var totals = Totals()
        let fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { walk(fd, &totals) }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        forEachCartridgeEntry(repository) { keyFD, name in
            let length = strlen(name)
            guard name[0] == 46, length > 7, strcmp(name + length - 7, ".source") == 0 else { return }
            readWhole(keyFD, name, &buffer, &totals)
        }
        return totals
    }

    /// Every `<repository>/<vendor>-<name>/<cartridge version>/metadata/manifest.yml` read.
    static func listing(repository: String) -> Totals {
        var totals = Totals()
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var path = [CChar](repeating: 0, count: 512)
        forEachCartridgeEntry(repository) { keyFD, name in
            guard name[0] != 46, strlen(name) < 256 else { return }
            path.withUnsafeMutableBufferPointer { target in
                strcpy(target.baseAddress!, name)
                strcat(target.baseAddress!, "/metadata/manifest.yml")
            }
            readWhole(keyFD, path, &buffer, &totals)
        }
        return totals
    }

    /// Calls `body` with each `<repository>/<key>` directory's descriptor and the name of each
    /// entry in it (valid during the call).
    private static func forEachCartridgeEntry(_ repository: String, _ body: (Int32, UnsafePointer<CChar>) -> Void) {
        let rootFD = open(repository, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard rootFD >= 0, let root = fdopendir(rootFD) else { return }
        defer { closedir(root) }
        while let entry = readdir(root) {
            let keyFD = withName(entry) { $0[0] == 46 ? -1 : openat(rootFD, $0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
            guard keyFD >= 0, let dir = fdopendir(keyFD) else { continue }
            while let inner = readdir(dir) {
                withName(inner) { name in
                    if !isDotOrDotDot(name) { body(keyFD, name) }
                }
            }
            closedir(dir)
        }
    }

    private static func walk(_ fd: Int32, _ totals: inout Totals) {
        guard let dir = fdopendir(fd) else { close(fd); return }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let child: Int32 = withName(entry) { name in
                if isDotOrDotDot(name) { return -1 }
                var st = stat()
                guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return -1 }
                totals.entries += 1
                guard (st.st_mode & S_IFMT) == S_IFDIR else { return -1 }
                return openat(fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            }
            if child >= 0 { walk(child, &totals) }
        }
    }

    private static func readWhole(_ dirFD: Int32, _ relative: UnsafePointer<CChar>, _ buffer: inout [UInt8], _ totals: inout Totals) {
        let fd = openat(dirFD, relative, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        totals.files += 1
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            totals.bytes += n
        }
        close(fd)
    }

    private static func withName<T>(_ entry: UnsafeMutablePointer<dirent>, _ body: (UnsafePointer<CChar>) -> T) -> T {
        withUnsafePointer(to: &entry.pointee.d_name) { tuple in
            tuple.withMemoryRebound(to: CChar.self, capacity: 256) { body($0) }
        }
    }

    private static func isDotOrDotDot(_ name: UnsafePointer<CChar>) -> Bool {
        name[0] == 46 && (name[1] == 0 || (name[1] == 46 && name[2] == 0))
    }
}
