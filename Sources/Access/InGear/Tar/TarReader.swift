#if canImport(Glibc)
import Glibc
#endif

/// Walks a tar stream header by header, checking every header itself: ustar and GNU magic,
/// the checksum, numeric fields (octal or base-256), GNU long names (`L`, `K`), pax extended
/// headers (`x`, with `path`, `linkpath` and `size`; `g` without paths), the end-of-archive
/// marker (two zero blocks). A stream that ends anywhere else is truncated. Everything is
/// bounded by `TarLimits` before it is allocated.
///
/// Pull model: `next()` returns the next member (skipping whatever data of the previous one
/// was not read), `readData` streams the current member's data in chunks.
public final class TarReader {
    let source: any ByteSource
    let limits: TarLimits
    private let buffer: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var sourceEnded = false
    /// Offset in the stream of `buffer[start]`.
    public private(set) var offset: Int64 = 0
    private var remainingData: Int64 = 0
    private var remainingPadding = 0
    private var memberCount = 0
    private var current = ""
    public private(set) var finished = false

    public init(_ source: any ByteSource, limits: TarLimits = TarLimits(), bufferSize: Int = 1 << 20) {
        self.source = source
        self.limits = limits
        buffer = .allocate(byteCount: max(bufferSize, 64 * 1024), alignment: 16)
    }

    deinit { buffer.deallocate() }

    // MARK: Buffer

    /// Makes at least `count` bytes available (count <= buffer size); false when the stream
    /// ends first.
    private func fill(_ count: Int) throws(InGearError) -> Bool {
        while end - start < count {
            if sourceEnded { return false }
            if start > 0 && (buffer.count - start < count || start == end) {
                let pending = end - start
                if pending > 0 { buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: pending) }
                start = 0
                end = pending
            }
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[end...]))
            if n == 0 { sourceEnded = true } else { end += n }
        }
        return true
    }

    private func consume(_ count: Int) throws(InGearError) {
        start += count
        offset += Int64(count)
        guard offset <= limits.totalBytes else {
            throw .refused(member: "", reason: "the archive is larger than \(limits.totalBytes) bytes uncompressed")
        }
    }

    private func truncated(_ what: String) -> InGearError {
        .refused(member: current, reason: "the archive is truncated (it ends \(what), at byte \(offset + Int64(end - start)))")
    }

    /// Skips `count` bytes of the stream.
    private func skip(_ count: Int64, _ what: String) throws(InGearError) {
        var left = count
        while left > 0 {
            if end == start { guard try fill(1) else { throw truncated(what) } }
            let n = Int(min(left, Int64(end - start)))
            try consume(n)
            left -= Int64(n)
        }
    }

    /// Reads a meta record of `size` bytes (and its padding) into memory.
    private func readRecord(_ size: Int64, kind: String) throws(InGearError) -> [UInt8] {
        guard size >= 0, size <= Int64(limits.metaHeaderBytes) else {
            throw .refused(member: current, reason: "a \(kind) of \(size) bytes is larger than the limit of \(limits.metaHeaderBytes)")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Int(size))
        var left = Int(size)
        while left > 0 {
            if end == start { guard try fill(1) else { throw truncated("inside a \(kind)") } }
            let n = min(left, end - start)
            bytes += UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)])
            try consume(n)
            left -= n
        }
        try skip(Int64(Self.padding(Int(size % 512))), "inside a \(kind)")
        return bytes
    }

    static func padding(_ remainder: Int) -> Int { remainder == 0 ? 0 : 512 - remainder }

    // MARK: Members

    /// The next member, or nil after the end-of-archive marker.
    public func next() throws(InGearError) -> TarEntry? {
        guard !finished else { return nil }
        try skip(remainingData + Int64(remainingPadding), "inside the data of \(InGearError.quoted(current))")
        remainingData = 0
        remainingPadding = 0
        var longName: [UInt8]?
        var longLink: [UInt8]?
        var pax: [String: [UInt8]] = [:]
        var pending = false
        while true {
            let headerOffset = offset + Int64(0)
            guard try fill(512) else {
                throw end == start && !pending
                    ? .refused(member: "", reason: "the archive is truncated: no end-of-archive marker after \(memberCount) members")
                    : truncated("inside a header")
            }
            let block = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + 512)])
            if block.allSatisfy({ $0 == 0 }) {
                try consume(512)
                guard !pending else { throw .refused(member: current, reason: "a long-name or pax header is followed by the end of the archive") }
                guard try fill(512) else { throw .refused(member: "", reason: "the archive is truncated: only one of the two end-of-archive blocks") }
                let second = UnsafeRawBufferPointer(rebasing: buffer[start..<(start + 512)])
                guard second.allSatisfy({ $0 == 0 }) else {
                    throw .refused(member: "", reason: "a zero block at byte \(headerOffset) is followed by data (corrupt archive)")
                }
                try consume(512)
                // Whatever follows the marker (the record padding of tar) is read and ignored.
                while true {
                    if end > start { try consume(end - start) }
                    guard try fill(1) else { break }
                }
                finished = true
                return nil
            }
            let header = try Self.header(block, at: headerOffset, limits: limits)
            try consume(512)
            memberCount += 1
            guard memberCount <= limits.members else {
                throw .refused(member: "", reason: "more than \(limits.members) members")
            }
            switch header.type {
            case UInt8(ascii: "x"):
                pending = true
                let records = try Self.paxRecords(try readRecord(header.size, kind: "pax extended header"), limits: limits)
                for (key, value) in records { pax[key] = value }
                continue
            case UInt8(ascii: "g"):
                pending = true
                let records = try Self.paxRecords(try readRecord(header.size, kind: "pax global header"), limits: limits)
                if records.contains(where: { $0.key == "path" || $0.key == "linkpath" }) {
                    throw .refused(member: "", reason: "a pax global header sets a path or link path for every member")
                }
                continue
            case UInt8(ascii: "L"):
                pending = true
                longName = Self.trimmingNULs(try readRecord(header.size, kind: "GNU long name"))
                continue
            case UInt8(ascii: "K"):
                pending = true
                longLink = Self.trimmingNULs(try readRecord(header.size, kind: "GNU long link name"))
                continue
            default:
                break
            }
            var entry = TarEntry(name: header.name, kind: Self.kind(header.type), size: header.size, linkName: header.linkName,
                                 mode: header.mode, modificationTime: header.mtime)
            if let longName { entry.name = longName }
            if let longLink { entry.linkName = longLink }
            if let path = pax["path"] { entry.name = path }
            if let path = pax["linkpath"] { entry.linkName = path }
            current = entry.displayName
            if let size = pax["size"] {
                guard let value = Int64(String(decoding: size, as: UTF8.self)), value >= 0 else {
                    throw .refused(member: current, reason: "pax size \(pathText(size)) is not a number")
                }
                entry.size = value
            }
            if let mtime = pax["mtime"], let seconds = Double(String(decoding: mtime, as: UTF8.self).split(separator: ".").first.map(String.init) ?? "") {
                entry.modificationTime = Int64(seconds)
            }
            if pax.keys.contains(where: { $0.hasPrefix("GNU.sparse") }) {
                throw .refused(member: current, reason: "sparse members are not supported")
            }
            for name in [entry.name, entry.linkName] {
                guard name.count <= limits.nameBytes else {
                    throw .refused(member: String(current.prefix(100)), reason: "a name longer than \(limits.nameBytes) bytes")
                }
                guard !name.contains(0) else { throw .refused(member: current, reason: "a name with a NUL byte") }
            }
            guard entry.size <= limits.totalBytes else {
                throw .refused(member: current, reason: "a size of \(entry.size) bytes is larger than the archive limit")
            }
            // Only regular files carry data that is extracted; other members' data is skipped.
            remainingData = entry.size
            remainingPadding = Self.padding(Int(entry.size % 512))
            if entry.kind != .file {
                try skip(remainingData + Int64(remainingPadding), "inside the data of \(InGearError.quoted(current))")
                remainingData = 0
                remainingPadding = 0
            }
            return entry
        }
    }

    /// Streams the current member's data (a regular file) to `body`, in chunks.
    public func readData(_ body: (UnsafeRawBufferPointer) throws(InGearError) -> Void) throws(InGearError) {
        while remainingData > 0 {
            if end == start { guard try fill(1) else { throw truncated("inside the data of \(InGearError.quoted(current))") } }
            let n = Int(min(remainingData, Int64(end - start)))
            try body(UnsafeRawBufferPointer(rebasing: buffer[start..<(start + n)]))
            try consume(n)
            remainingData -= Int64(n)
        }
        try skip(Int64(remainingPadding), "inside the data of \(InGearError.quoted(current))")
        remainingPadding = 0
    }

    // MARK: Headers

    struct Header {
        var name: [UInt8]
        var linkName: [UInt8]
        var mode: UInt32
        var size: Int64
        var mtime: Int64
        var type: UInt8
    }

    static func kind(_ type: UInt8) -> TarEntry.Kind {
        switch type {
        case 0, UInt8(ascii: "0"), UInt8(ascii: "7"): return .file
        case UInt8(ascii: "1"): return .hardLink
        case UInt8(ascii: "2"): return .symlink
        case UInt8(ascii: "3"): return .characterDevice
        case UInt8(ascii: "4"): return .blockDevice
        case UInt8(ascii: "5"): return .directory
        case UInt8(ascii: "6"): return .fifo
        default: return .other(type)
        }
    }

    static func header(_ block: UnsafeRawBufferPointer, at offset: Int64, limits: TarLimits) throws(InGearError) -> Header {
        let field = { (range: Range<Int>) -> [UInt8] in Array(block[range]) }
        let magic = field(257..<263)
        let version = field(263..<265)
        let posix = magic == Array("ustar\0".utf8)
        let gnu = magic == Array("ustar ".utf8) && version == [UInt8(ascii: " "), 0]
        let rawName = trimmingNULs(field(0..<100))
        guard posix || gnu else {
            throw .refused(member: pathText(rawName), reason: "not a ustar or GNU tar header at byte \(offset) (corrupt archive)")
        }
        guard let stored = try? number(field(148..<156)) else {
            throw .refused(member: pathText(rawName), reason: "unreadable header checksum at byte \(offset)")
        }
        var unsigned: Int64 = 0
        var signed: Int64 = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? UInt8(ascii: " ") : byte
            unsigned += Int64(value)
            signed += Int64(Int8(bitPattern: value))
        }
        guard stored == unsigned || stored == signed else {
            throw .refused(member: pathText(rawName), reason: "bad header checksum at byte \(offset) (corrupt archive)")
        }
        var name = rawName
        if posix {
            let prefix = trimmingNULs(field(345..<500))
            if !prefix.isEmpty { name = prefix + [UInt8(ascii: "/")] + name }
        }
        func numeric(_ range: Range<Int>, _ what: String) throws(InGearError) -> Int64 {
            do throws(BadNumber) { return try number(field(range)) } catch {
                throw .refused(member: pathText(name), reason: "unreadable \(what) field at byte \(offset)")
            }
        }
        let size = try numeric(124..<136, "size")
        guard size >= 0 else { throw .refused(member: pathText(name), reason: "negative size") }
        return Header(name: name, linkName: trimmingNULs(field(157..<257)), mode: UInt32(truncatingIfNeeded: try numeric(100..<108, "mode")),
                      size: size, mtime: (try? number(field(136..<148))) ?? 0, type: block[156])
    }

    struct BadNumber: Error {}

    /// An octal field (NUL or space terminated, leading spaces allowed) or GNU base-256.
    static func number(_ bytes: [UInt8]) throws(BadNumber) -> Int64 {
        guard let first = bytes.first else { return 0 }
        if first & 0x80 != 0 {
            // GNU base-256, big-endian; a negative value (0xff marker) is never valid here.
            guard first & 0x40 == 0 else { throw BadNumber() }
            var value = Int64(first & 0x3f)
            for byte in bytes.dropFirst() {
                guard value <= (Int64.max >> 8) else { throw BadNumber() }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        var value: Int64 = 0
        var seenDigit = false
        var ended = false
        for byte in bytes {
            if ended {
                guard byte == 0 || byte == UInt8(ascii: " ") else { throw BadNumber() }
                continue
            }
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard value <= (Int64.max >> 3) else { throw BadNumber() }
                value = value << 3 | Int64(byte - UInt8(ascii: "0"))
                seenDigit = true
            case UInt8(ascii: " ") where !seenDigit:
                continue
            case 0, UInt8(ascii: " "):
                ended = true
            default:
                throw BadNumber()
            }
        }
        return value
    }

    static func trimmingNULs(_ bytes: [UInt8]) -> [UInt8] {
        if let nul = bytes.firstIndex(of: 0) { return Array(bytes[..<nul]) }
        return bytes
    }

    /// `<length> <key>=<value>\n` records.
    static func paxRecords(_ bytes: [UInt8], limits: TarLimits) throws(InGearError) -> [(key: String, value: [UInt8])] {
        var records: [(key: String, value: [UInt8])] = []
        var index = 0
        while index < bytes.count {
            if bytes[index] == 0 { break }
            guard let space = bytes[index...].firstIndex(of: UInt8(ascii: " ")), space - index <= 20,
                  let length = Int(String(decoding: bytes[index..<space], as: UTF8.self)), length > space - index + 1,
                  index + length <= bytes.count, bytes[index + length - 1] == UInt8(ascii: "\n"),
                  let equals = bytes[(space + 1)..<(index + length)].firstIndex(of: UInt8(ascii: "="))
            else { throw .refused(member: "", reason: "a malformed pax extended header record") }
            let key = String(decoding: bytes[(space + 1)..<equals], as: UTF8.self)
            records.append((key, Array(bytes[(equals + 1)..<(index + length - 1)])))
            index += length
        }
        return records
    }
}
