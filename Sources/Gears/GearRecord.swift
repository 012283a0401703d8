import Cartridges
import Containment
import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What the node knows of a gear, kept where the gear cannot reach: `<GEAR_BASE_DIR>/.gears/<uuid>.json`
/// (directory 0700, files 0600, root's). The node trusts this record, never the gear's home, for
/// the gear's ids and names and for which cartridges it has; the home's `.env` files are the
/// gear's view of the same facts.
///
/// It is also the journal that makes every multi-step operation recoverable: written *before* the
/// first step (`creating`, `configuring`, `deconfiguring`, `destroying`), updated after the last,
/// so an operation killed at any instruction leaves a record naming what may exist, and the next
/// create, configure, deconfigure or destroy finishes or removes it.
struct GearRecord: Codable, Equatable, Sendable {
    enum State: String, Codable, Sendable {
        case creating, created, destroying
    }

    var uuid: String
    var uid: UInt32
    var appUUID: String
    var appName: String
    var gearName: String
    var namespace: String
    var state: State
    var cartridges: [CartridgeRecord] = []

    static let limit = 256 * 1024
}

/// One cartridge of a gear, as configure recorded it.
struct CartridgeRecord: Codable, Equatable, Sendable {
    enum State: String, Codable, Sendable {
        case configuring, configured, deconfiguring
    }

    /// The cartridge's directory in the home (its name).
    var directory: String
    /// `vendor:name:software version:cartridge version`.
    var ident: String
    var shortName: String
    var state: State
    /// `.env` variables configure wrote for it (endpoint IPs and ports, the primary pointer).
    var variables: [String] = []
    /// Frontend paths it connected.
    var frontendPaths: [String] = []

    var parts: [String] { ident.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    var version: String { parts.count == 4 ? parts[2] : "" }
}

/// Which gears use a cartridge version, from the gears' records (for tools that need no
/// container plugin, such as `oo-admin-cartridge --action erase`).
public struct RecordedCartridgeUsage: CartridgeUsage {
    let records: GearRecords

    public init(gearBaseDir: String) { records = GearRecords(gearBaseDir: gearBaseDir) }

    public func gears(using vendor: String, name: String, cartridgeVersion: String) -> [String] {
        records.all().filter { record in
            record.cartridges.contains { cartridge in
                let parts = cartridge.parts
                return parts.count == 4 && parts[0] == vendor && parts[1] == name && parts[3] == cartridgeVersion
            }
        }.map(\.uuid)
    }
}

/// The records of a node's gears: `<uuid>.json`, and beside each an empty `<uuid>.uid-<uid>`
/// made before the record and removed after it, so the uids in use are one directory listing
/// away (uid allocation opens no record).
struct GearRecords: Sendable {
    let directory: String

    init(gearBaseDir: String) { directory = gearBaseDir + "/.gears" }

    func path(_ uuid: String) -> String { directory + "/" + uuid + ".json" }

    func uidMarker(_ uuid: String, _ uid: UInt32) -> String { directory + "/" + uuid + ".uid-" + String(uid) }

    /// Every uid a record names or named (a record being written or removed included).
    func usedUIDs() -> Set<UInt32> {
        var used = Set<UInt32>()
        for name in FileSystem.entries(directory) ?? [] where !name.hasPrefix(".") {
            guard let marker = name.firstRange(of: ".uid-"), let uid = UInt32(name[marker.upperBound...]) else { continue }
            used.insert(uid)
        }
        return used
    }

    func prepare() throws(GearsError) {
        do {
            try FileSystem.makeDirectories(directory, mode: 0o700)
        } catch {
            throw GearsError(error)
        }
        // Checked on every operation, changed only when it differs (a chmod is a journal entry).
        var st = stat()
        if stat(directory, &st) != 0 || st.st_mode & 0o7777 != 0o700 { chmod(directory, 0o700) }
    }

    /// Whether `uuid` has a record (in any state: a half-created or half-destroyed gear has one).
    func exists(_ uuid: String) -> Bool { access(path(uuid), F_OK) == 0 }

    /// The record of `uuid`; nil when there is none. A record that cannot be read is an error.
    func read(_ uuid: String) throws(GearsError) -> GearRecord? {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readBytes(path(uuid), limit: GearRecord.limit)
        } catch {
            if error.errno == ENOENT { return nil }
            throw GearsError(error)
        }
        guard let record = try? JSONDecoder().decode(GearRecord.self, from: Data(bytes)), record.uuid == uuid else {
            throw .io(step: "decode gear record", path: path(uuid), errno: EINVAL)
        }
        return record
    }

    func write(_ record: GearRecord) throws(GearsError) {
        let marker = uidMarker(record.uuid, record.uid)
        let fd = open(marker, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(step: "create", path: marker, errno: errno) }
        close(fd)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(record) else { throw .io(step: "encode gear record", path: path(record.uuid), errno: EINVAL) }
        do {
            try FileSystem.writeAtomically(path(record.uuid), Array(data), mode: 0o600)
        } catch {
            throw GearsError(error)
        }
    }

    /// Removes the record, then its uid marker and what killed writes of it left (the temporary
    /// files of `FileSystem.writeAtomically`), in one listing of the directory.
    func remove(_ uuid: String) throws(GearsError) {
        guard unlink(path(uuid)) == 0 || errno == ENOENT else { throw .io(step: "unlink", path: path(uuid), errno: errno) }
        let temporary = "." + uuid + ".json.tmp-", marker = uuid + ".uid-"
        var markers: [String] = []
        for name in FileSystem.entries(directory) ?? [] {
            if name.hasPrefix(temporary) { unlink(directory + "/" + name) } else if name.hasPrefix(marker) { markers.append(name) }
        }
        for name in markers { unlink(directory + "/" + name) }
    }

    /// Every record, sorted by uuid (unreadable ones skipped).
    func all() -> [GearRecord] {
        (FileSystem.entries(directory) ?? []).filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.compactMap { name in
            let uuid = String(name.dropLast(5))
            return (try? GearIdentity.validate(uuid: uuid)) != nil ? (try? read(uuid)) ?? nil : nil
        }
    }
}
