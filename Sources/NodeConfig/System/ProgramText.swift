#if canImport(Glibc)
import Glibc
#endif

/// The running program's own machine code, as mapped from its executable.
///
/// The daemon runs most of its code once: argument parsing, `node.conf`, the repository's load
/// and first rescan. The kernel maps the executable's pages 64 KB around each fault, so that
/// start-up leaves about 13 MB of the 16 MB of code resident while the idle daemon uses about
/// 4 MB of it. `release()` hands those pages back once the daemon is ready: MADV_PAGEOUT
/// reclaims the ones no other process maps, then MADV_DONTNEED unmaps the rest from this process
/// only (a fleet of nodes started together shares them; they stay in the page cache for the
/// others). The code is read-only and unmodified, the same bytes as the file, so nothing is
/// lost: what is used again is faulted back in. Only the executable's read+execute mappings are
/// advised, never its writable or relocated data, where MADV_DONTNEED would discard changes.
public enum ProgramText {
    /// The executable's code mappings in `maps` (the text of /proc/self/maps): `r-xp` entries
    /// whose path is `executable`.
    public static func codeRanges(maps: String, executable: String) -> [Range<UInt>] {
        maps.split(separator: "\n").compactMap { line in
            // address perms offset dev inode path
            let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard fields.count == 6, fields[1] == "r-xp", fields[5].trimmed() == executable else { return nil }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16), start < end else { return nil }
            return start..<end
        }
    }

    /// Hands the resident pages of this program's code back to the kernel. Returns the bytes of
    /// the ranges advised, or nil when the executable or its mappings could not be read or the
    /// kernel refused (MADV_PAGEOUT needs Linux 5.4).
    @discardableResult
    public static func release() -> Int? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0, let maps = FileSystem.read("/proc/self/maps") else { return nil }
        let executable = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var advised = 0
        for range in codeRanges(maps: maps, executable: executable) {
            let length = Int(range.upperBound - range.lowerBound)
            guard let start = UnsafeMutableRawPointer(bitPattern: range.lowerBound),
                  madvise(start, length, MADV_PAGEOUT) == 0, madvise(start, length, MADV_DONTNEED) == 0 else { return nil }
            advised += Int(range.upperBound - range.lowerBound)
        }
        return advised > 0 ? advised : nil
    }
}
