import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// When each gear was last requested through the frontend, so an idler can pick the gears
/// nobody uses.
///
/// Apache appends `<gear uuid> <epoch seconds>` for every routed request to
/// `<map directory>/last_access.log`; `update()` reads what was appended since its last call
/// (the offset is kept beside the records, so it survives restarts and a truncated or rotated
/// log is read from its start) and keeps the latest time per gear as one file per gear in
/// `LAST_ACCESS_DIR`, written temp-then-rename.
public struct LastAccess: Sendable {
    public static let logName = "last_access.log"
    public let logPath: String
    public let directory: String

    public init(mapDirectory: String, directory: String) {
        logPath = mapDirectory + "/" + Self.logName
        self.directory = directory
    }

    var offsetPath: String { directory + "/.offset" }

    /// Folds the new log lines into the records; returns how many lines were read.
    @discardableResult
    public func update() throws(FrontendError) -> Int {
        do { try FileSystem.makeDirectories(directory) } catch { throw FrontendError(error) }
        let fd = open(logPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(step: "stat", path: logPath, errno: errno) }
        // "<offset> <inode>": where the last read ended, in which file.
        let saved = (FileSystem.read(offsetPath) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
        var offset = saved.first.flatMap { Int($0) } ?? 0
        let inode = saved.dropFirst().first.flatMap { UInt64($0) }
        if offset > Int(info.st_size) || (inode != nil && inode != UInt64(info.st_ino)) { offset = 0 }
        let length = Int(info.st_size) - offset
        guard length > 0 else { return 0 }
        var bytes = [UInt8](repeating: 0, count: length)
        let n = pread(fd, &bytes, length, off_t(offset))
        guard n > 0 else { return 0 }
        // Only whole lines; a line still being written is read next time.
        guard let lastNewline = bytes[0..<n].lastIndex(of: UInt8(ascii: "\n")) else { return 0 }
        var latest: [String: Int] = [:]
        var lines = 0
        for line in bytes[0...lastNewline].split(separator: UInt8(ascii: "\n")) {
            lines += 1
            let fields = line.split(separator: UInt8(ascii: " "))
            guard fields.count == 2, let time = Int(String(decoding: fields[1], as: UTF8.self)) else { continue }
            let uuid = String(decoding: fields[0], as: UTF8.self)
            guard Self.isGearName(uuid) else { continue }
            latest[uuid] = max(latest[uuid] ?? 0, time)
        }
        for (uuid, time) in latest where time > (lastAccess(uuid) ?? 0) {
            try write(directory + "/" + uuid, "\(time)\n")
        }
        try write(offsetPath, "\(offset + lastNewline + 1) \(info.st_ino)\n")
        return lines
    }

    /// The last request time of a gear (epoch seconds), nil if none was recorded.
    public func lastAccess(_ uuid: String) -> Int? {
        guard Self.isGearName(uuid) else { return nil }
        return FileSystem.read(directory + "/" + uuid)?.split(separator: "\n").first.flatMap { Int($0) }
    }

    /// Forgets a destroyed gear.
    public func remove(_ uuid: String) {
        if Self.isGearName(uuid) { unlink(directory + "/" + uuid) }
    }

    static func isGearName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name.utf8.allSatisfy { $0 == UInt8(ascii: "-") || ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) }
    }

    func write(_ path: String, _ text: String) throws(FrontendError) {
        do { try FileSystem.writeAtomically(path, text) } catch { throw FrontendError(error) }
    }
}
