import CLinux

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Copying and fingerprinting cartridge directory trees.
///
/// The copy is what the original did with `cp -a` minus SELinux labels: recursive, symbolic
/// links copied as links, modes, timestamps and hard links kept, owners kept when running as
/// root. Devices, sockets and FIFOs are refused: a cartridge has no business shipping them.
enum FileTree {
    /// Test seam: called after each regular file is copied, with the running count.
    typealias Progress = @Sendable (Int) -> Void

    static func copy(from source: String, to target: String, progress: Progress? = nil) throws(CartridgesError) {
        var state = CopyState(progress: progress, preserveOwner: geteuid() == 0)
        try copyEntry(source, target, state: &state)
    }

    private struct CopyState {
        var progress: Progress?
        var preserveOwner: Bool
        var files = 0
        var hardLinks: [HardLinkKey: String] = [:]
        var buffer = [UInt8](repeating: 0, count: 128 * 1024)
    }

    private struct HardLinkKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    private static func copyEntry(_ source: String, _ target: String, state: inout CopyState) throws(CartridgesError) {
        let st = try Posix.linkStatus(source)
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            try Posix.mkdir(target, mode: 0o700)
            for name in try Posix.listDirectory(source) {
                try copyEntry(source + "/" + name, target + "/" + name, state: &state)
            }
            try applyMetadata(st, to: target, state: state, isLink: false)
        case S_IFREG:
            let key = HardLinkKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
            if st.st_nlink > 1, let first = state.hardLinks[key] {
                guard link(first, target) == 0 else { throw .io(step: "link \(first) to", path: target, errno: errno) }
                return
            }
            try copyFile(source, target, state: &state)
            try applyMetadata(st, to: target, state: state, isLink: false)
            if st.st_nlink > 1 { state.hardLinks[key] = target }
            state.files += 1
            state.progress?(state.files)
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(source, &buffer, buffer.count - 1)
            guard n >= 0 else { throw .io(step: "readlink", path: source, errno: errno) }
            buffer[n] = 0
            guard symlink(buffer, target) == 0 else { throw .io(step: "symlink", path: target, errno: errno) }
            try applyMetadata(st, to: target, state: state, isLink: true)
        default:
            throw .invalidSource(path: source, reason: "Cartridge sources may only hold files, directories and symbolic links")
        }
    }

    private static func copyFile(_ source: String, _ target: String, state: inout CopyState) throws(CartridgesError) {
        let input = open(source, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard input >= 0 else { throw .io(step: "open", path: source, errno: errno) }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard output >= 0 else { throw .io(step: "create", path: target, errno: errno) }
        defer { close(output) }
        // copy_file_range lets the kernel copy (or reflink) without a round trip through us.
        while true {
            let n = cl_copy_file_range(input, output, 1 << 30)
            if n > 0 { continue }
            if n == 0 { return }
            if errno == EINTR { continue }
            if errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP { break }
            throw .io(step: "copy_file_range", path: target, errno: errno)
        }
        while true {
            let n = state.buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(step: "read", path: source, errno: errno)
            }
            if n == 0 { return }
            var offset = 0
            while offset < n {
                let w = state.buffer.withUnsafeBytes { write(output, $0.baseAddress! + offset, n - offset) }
                if w < 0 {
                    if errno == EINTR { continue }
                    throw .io(step: "write", path: target, errno: errno)
                }
                offset += w
            }
        }
    }

    private static func applyMetadata(_ st: stat, to path: String, state: CopyState, isLink: Bool) throws(CartridgesError) {
        if state.preserveOwner {
            guard lchown(path, st.st_uid, st.st_gid) == 0 else { throw .io(step: "lchown", path: path, errno: errno) }
        }
        if !isLink {
            guard chmod(path, st.st_mode & 0o7777) == 0 else { throw .io(step: "chmod", path: path, errno: errno) }
        }
        var times = [st.st_atim, st.st_mtim]
        guard utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0 else {
            throw .io(step: "utimensat", path: path, errno: errno)
        }
    }

    /// A 64-bit digest of a tree's metadata: paths, types, modes, owners, sizes, inode numbers,
    /// modification and change times, link targets. Any write to a file changes its ctime, so a
    /// changed source is always seen; an unchanged one is recognised without reading contents.
    static func fingerprint(_ root: String) throws(CartridgesError) -> String {
        var hasher = FNV1a()
        try fingerprintEntry(root, relative: ".", into: &hasher)
        return hasher.hex
    }

    private static func fingerprintEntry(_ path: String, relative: String, into hasher: inout FNV1a) throws(CartridgesError) {
        let st = try Posix.linkStatus(path)
        hasher.add(relative)
        hasher.add(UInt64(st.st_mode), UInt64(st.st_uid), UInt64(st.st_gid), UInt64(st.st_size), UInt64(st.st_ino))
        hasher.add(UInt64(bitPattern: Int64(st.st_mtim.tv_sec)), UInt64(st.st_mtim.tv_nsec))
        hasher.add(UInt64(bitPattern: Int64(st.st_ctim.tv_sec)), UInt64(st.st_ctim.tv_nsec))
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            for name in try Posix.listDirectory(path) {
                try fingerprintEntry(path + "/" + name, relative: relative + "/" + name, into: &hasher)
            }
        case S_IFLNK:
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(path, &buffer, buffer.count - 1)
            if n > 0 { hasher.add(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
        default:
            break
        }
    }
}

/// FNV-1a, 64 bits: a change detector, not a security measure.
struct FNV1a {
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    mutating func add(_ text: String) {
        for byte in text.utf8 { mix(byte) }
        mix(0)
    }

    mutating func add(_ numbers: UInt64...) {
        for number in numbers {
            var n = number
            for _ in 0..<8 {
                mix(UInt8(truncatingIfNeeded: n))
                n >>= 8
            }
        }
    }

    private mutating func mix(_ byte: UInt8) {
        value ^= UInt64(byte)
        value = value &* 0x0000_0100_0000_01b3
    }

    var hex: String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
