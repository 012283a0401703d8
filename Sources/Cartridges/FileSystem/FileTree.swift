import CLinux
import NodeConfig

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
        let directory = parentDirectory(target)
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw .io(step: "open", path: directory, errno: errno) }
        defer { close(dirfd) }
        var copy = TreeCopy(ownership: .preserve, preserveHardLinks: true, progress: progress)
        do { try copy.copy(from: source, into: dirfd, as: baseName(target), displayTarget: target) } catch {
            if error.errno == EINVAL && error.step.hasPrefix("copy (only files") {
                throw .invalidSource(path: error.path, reason: "Cartridge sources may only hold files, directories and symbolic links")
            }
            throw CartridgesError(error)
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
