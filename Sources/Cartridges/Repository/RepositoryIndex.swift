import NodeConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The repository's persisted index (`<repository>/.index`): for each installed cartridge
/// version, the software versions it provides, its manifest already parsed and validated (an
/// encoded `ManifestMap`), its source stamp, and the `lstat` of both files that proves the
/// entry is still what is on disk.
///
/// It is a cache, like apt's `pkgcache.bin`: the directories stay the truth. A load trusts an
/// entry only when both files still `lstat` exactly as recorded (device, inode, size, mode,
/// mtime, ctime) and were last changed at least two seconds before the index recorded them, so
/// a change made within one timestamp tick of the recording is never hidden (git's "racily
/// clean" problem). Every other entry is read and parsed from its manifest as if there were no
/// index. A file that is short, has another magic or format version, or fails its checksum is
/// ignored whole. Writers replace it atomically (temporary file, fsync, rename) under the
/// repository's exclusive lock, after every change.
///
/// Layout: magic `OOCRIDX1`, u32 format version, u64 payload length, payload, u64 checksum of
/// the payload. Integers are little-endian; strings are u32 length then UTF-8 bytes.
struct RepositoryIndex: Sendable, Equatable {
    static let magic: [UInt8] = Array("OOCRIDX1".utf8)
    /// Raised whenever the layout or manifest validation changes: entries are trusted without
    /// being validated again, so an index from another release of the rules is not used.
    static let formatVersion: UInt32 = 1
    static let fileName = ".index"
    /// Larger than any index of a plausible repository (about 5 KB per cartridge version).
    static let maximumBytes = 512 << 20

    /// The `lstat` facts an entry is checked against.
    struct FileStamp: Sendable, Equatable {
        var device: UInt64
        var inode: UInt64
        var size: UInt64
        var mode: UInt64
        var mtime: (seconds: Int64, nanoseconds: Int64)
        var ctime: (seconds: Int64, nanoseconds: Int64)

        init(_ st: stat) {
            device = UInt64(st.st_dev)
            inode = UInt64(st.st_ino)
            size = UInt64(st.st_size)
            mode = UInt64(st.st_mode)
            mtime = (Int64(st.st_mtim.tv_sec), Int64(st.st_mtim.tv_nsec))
            ctime = (Int64(st.st_ctim.tv_sec), Int64(st.st_ctim.tv_nsec))
        }

        init(device: UInt64, inode: UInt64, size: UInt64, mode: UInt64,
             mtime: (seconds: Int64, nanoseconds: Int64), ctime: (seconds: Int64, nanoseconds: Int64)) {
            self.device = device
            self.inode = inode
            self.size = size
            self.mode = mode
            self.mtime = mtime
            self.ctime = ctime
        }

        /// The `lstat` of `path` now; nil if it does not exist or cannot be examined.
        static func of(_ path: String) -> FileStamp? {
            var st = stat()
            return lstat(path, &st) == 0 ? FileStamp(st) : nil
        }

        static func == (a: FileStamp, b: FileStamp) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size && a.mode == b.mode
                && a.mtime == b.mtime && a.ctime == b.ctime
        }
    }

    /// One cartridge version directory: `<directory>/<cartridgeVersion>/metadata/manifest.yml`.
    struct Entry: Sendable, Equatable {
        /// `<vendor>-<name>`.
        var directory: String
        var cartridgeVersion: String
        var manifest: FileStamp
        /// The software versions the manifest provides, ascending: all a listing needs.
        var versions: [String]
        /// The manifest's top-level map, as parsed and validated, encoded (`encodeMap`): decoded
        /// only when a manifest of this version is asked for.
        /// A slice of the index file's bytes when read from it: never copied.
        var encodedMap: ArraySlice<UInt8>
        /// `.<cartridgeVersion>.source` and its text, when the version was installed from a source.
        var stamp: FileStamp?
        var stampText: String?
        /// False when a file changed too recently for its `lstat` to prove a later change would
        /// be seen: such an entry is always re-read.
        var settled: Bool
    }

    /// Keyed by `<directory>/<cartridgeVersion>`.
    var entries: [String: Entry] = [:]

    static func key(_ directory: String, _ cartridgeVersion: String) -> String { directory + "/" + cartridgeVersion }

    /// Whether a file whose `lstat` is `stamp`, examined at `now` (seconds), can be trusted later
    /// by its `lstat` alone: last changed two whole seconds before, whatever the file system's
    /// timestamp granularity (ext3 and some others keep whole seconds).
    static func isSettled(_ stamp: FileStamp, now: Int64) -> Bool { stamp.ctime.seconds + 2 <= now && stamp.mtime.seconds + 2 <= now }

    static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    // MARK: Reading

    /// Reads the index at `path`; nil if there is none or it cannot be trusted as a whole
    /// (then the repository is read from its manifests and the index written anew).
    static func read(_ path: String) -> RepositoryIndex? {
        guard let bytes = try? FileSystem.readBytes(path, limit: maximumBytes) else { return nil }
        return decode(bytes)
    }

    static func decode(_ bytes: [UInt8]) -> RepositoryIndex? {
        let header = magic.count + 4 + 8
        guard bytes.count >= header + 8, Array(bytes[0..<magic.count]) == magic else { return nil }
        var reader = Reader(bytes: bytes, position: magic.count)
        guard let version = reader.u32(), version == formatVersion, let length = reader.u64(),
              length == UInt64(bytes.count - header - 8) else { return nil }
        let payloadEnd = header + Int(length)
        let checksum = bytes.withUnsafeBytes { Self.checksum(UnsafeRawBufferPointer(rebasing: $0[header..<payloadEnd])) }
        var trailer = Reader(bytes: bytes, position: payloadEnd)
        guard trailer.u64() == checksum else { return nil }
        reader.end = payloadEnd
        var index = RepositoryIndex()
        guard let count = reader.u32() else { return nil }
        for _ in 0..<count {
            guard let entry = reader.entry() else { return nil }
            index.entries[key(entry.directory, entry.cartridgeVersion)] = entry
        }
        return reader.position == payloadEnd ? index : nil
    }

    /// A manifest map in the index's encoding.
    static func encodeMap(_ map: ManifestMap) -> ArraySlice<UInt8> {
        var writer = Writer()
        writer.map(map)
        return writer.bytes[...]
    }

    static func decodeMap(_ slice: ArraySlice<UInt8>) -> ManifestMap? {
        let bytes = Array(slice)
        var reader = Reader(bytes: bytes, position: 0)
        guard let map = reader.map(depth: 0), reader.position == bytes.count else { return nil }
        return map
    }

    // MARK: Writing

    func encoded() -> [UInt8] {
        var payload = Writer()
        payload.u32(UInt32(entries.count))
        for key in entries.keys.sorted() { payload.entry(entries[key]!) }
        var out = Writer()
        out.bytes.reserveCapacity(payload.bytes.count + 32)
        out.bytes += Self.magic
        out.u32(Self.formatVersion)
        out.u64(UInt64(payload.bytes.count))
        out.bytes += payload.bytes
        out.u64(payload.bytes.withUnsafeBytes { Self.checksum($0) })
        return out.bytes
    }

    /// Replaces the index at `path` atomically.
    func write(_ path: String) throws(CartridgesError) {
        try Posix.writeAtomically(path, encoded())
    }

    /// A 64-bit checksum, eight bytes at a time: it finds a torn or damaged file, not an attacker
    /// (only root writes the repository).
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var offset = 0
        while offset + 8 <= bytes.count {
            let word = bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)
            hash = (hash ^ word) &* 0x0000_0100_0000_01B3
            hash ^= hash >> 29
            offset += 8
        }
        while offset < bytes.count {
            hash = (hash ^ UInt64(bytes[offset])) &* 0x0000_0100_0000_01B3
            offset += 1
        }
        return hash
    }

    // MARK: Encoding

    private struct Writer {
        var bytes: [UInt8] = []

        mutating func u8(_ v: UInt8) { bytes.append(v) }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
        mutating func string(_ s: String) {
            var s = s
            s.withUTF8 { utf8 in
                u32(UInt32(utf8.count))
                bytes += utf8
            }
        }

        mutating func stamp(_ s: FileStamp) {
            u64(s.device); u64(s.inode); u64(s.size); u64(s.mode)
            i64(s.mtime.seconds); i64(s.mtime.nanoseconds); i64(s.ctime.seconds); i64(s.ctime.nanoseconds)
        }

        mutating func value(_ v: ManifestValue) {
            switch v {
            case .null: u8(0)
            case .scalar(let text, let quoted):
                u8(quoted ? 2 : 1)
                string(text)
            case .list(let items):
                u8(3)
                u32(UInt32(items.count))
                for item in items { value(item) }
            case .map(let map): u8(4); self.map(map)
            }
        }

        mutating func map(_ m: ManifestMap) {
            u32(UInt32(m.pairs.count))
            for (key, v) in m.pairs {
                string(key)
                value(v)
            }
        }

        mutating func entry(_ e: Entry) {
            string(e.directory)
            string(e.cartridgeVersion)
            stamp(e.manifest)
            u32(UInt32(e.versions.count))
            for version in e.versions { string(version) }
            u32(UInt32(e.encodedMap.count))
            bytes += e.encodedMap
            if let s = e.stamp, let text = e.stampText {
                u8(1); stamp(s); string(text)
            } else {
                u8(0)
            }
            u8(e.settled ? 1 : 0)
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var position: Int
        var end: Int

        init(bytes: [UInt8], position: Int) {
            self.bytes = bytes
            self.position = position
            self.end = bytes.count
        }

        mutating func u8() -> UInt8? {
            guard position < end else { return nil }
            defer { position += 1 }
            return bytes[position]
        }

        mutating func u32() -> UInt32? {
            guard end - position >= 4 else { return nil }
            defer { position += 4 }
            return bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt32.self)) }
        }

        mutating func u64() -> UInt64? {
            guard end - position >= 8 else { return nil }
            defer { position += 8 }
            return bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: UInt64.self)) }
        }

        mutating func i64() -> Int64? { u64().map { Int64(bitPattern: $0) } }

        mutating func string() -> String? {
            guard let length = u32().map(Int.init), end - position >= length else { return nil }
            defer { position += length }
            return String(decoding: bytes[position..<position + length], as: UTF8.self)
        }

        mutating func stamp() -> FileStamp? {
            guard let device = u64(), let inode = u64(), let size = u64(), let mode = u64(),
                  let ms = i64(), let mn = i64(), let cs = i64(), let cn = i64() else { return nil }
            return FileStamp(device: device, inode: inode, size: size, mode: mode, mtime: (ms, mn), ctime: (cs, cn))
        }

        mutating func value(depth: Int) -> ManifestValue? {
            guard depth < YAMLLimits.maximumDepth, let tag = u8() else { return nil }
            switch tag {
            case 0: return .null
            case 1, 2: return string().map { .scalar($0, quoted: tag == 2) }
            case 3:
                guard let count = u32(), Int(count) <= end - position else { return nil }
                var items: [ManifestValue] = []
                items.reserveCapacity(Int(count))
                for _ in 0..<count {
                    guard let item = value(depth: depth + 1) else { return nil }
                    items.append(item)
                }
                return .list(items)
            case 4: return map(depth: depth + 1).map { .map($0) }
            default: return nil
            }
        }

        mutating func map(depth: Int) -> ManifestMap? {
            guard let count = u32(), Int(count) <= end - position else { return nil }
            var map = ManifestMap()
            for _ in 0..<count {
                guard let key = string(), let v = value(depth: depth) else { return nil }
                map[key] = v
            }
            return map
        }

        mutating func entry() -> Entry? {
            guard let directory = string(), let cv = string(), let manifest = stamp(),
                  let versionCount = u32(), Int(versionCount) <= end - position else { return nil }
            var versions: [String] = []
            for _ in 0..<versionCount {
                guard let version = string() else { return nil }
                versions.append(version)
            }
            // The map's bytes are kept as they are; decoded when a manifest is needed.
            guard let mapLength = u32().map(Int.init), end - position >= mapLength else { return nil }
            let encodedMap = bytes[position..<position + mapLength]
            position += mapLength
            guard let hasStamp = u8() else { return nil }
            var stamp: FileStamp?
            var stampText: String?
            if hasStamp == 1 {
                guard let s = self.stamp(), let text = string() else { return nil }
                stamp = s
                stampText = text
            } else if hasStamp != 0 {
                return nil
            }
            guard let settled = u8(), settled <= 1 else { return nil }
            return Entry(directory: directory, cartridgeVersion: cv, manifest: manifest, versions: versions,
                         encodedMap: encodedMap, stamp: stamp, stampText: stampText, settled: settled == 1)
        }
    }
}
