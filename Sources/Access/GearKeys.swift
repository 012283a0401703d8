import Containment
import Gears
import Logging
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Who may log in to a gear: its `.ssh/authorized_keys` and its Kerberos k5login file, changed as
/// the broker asks (add, remove, batch add/remove, replace the whole set).
///
/// Entries of type `krb5-principal` go to the k5login file, all others to authorized_keys, as the
/// original's container dispatched them. Every entry is checked before anything is touched, then
/// one change holds the gear's lock for both files. Both files are root's with the gear's group
/// (authorized_keys 0440, k5login 0640): sshd reads authorized_keys with the user's ids through
/// the group, `krb5_kuserok` accepts a root-owned k5login, and the gear can change neither.
/// authorized_keys is replaced by rename through the gear's `GearHome`; the k5login file too when
/// it is `~/.k5login`, or through the node's atomic writer in a `k5login_directory` (root's).
public struct GearKeys: Sendable {
    public let gears: GearManager
    /// `KRB5_CONFIG_FILE`, read on each Kerberos change (an admin may add k5login_directory later).
    public let kerberosConfigFile: String
    let logger: Logger

    public static let authorizedKeysName = ".ssh/authorized_keys"
    public static let k5loginName = ".k5login"
    public static let authorizedKeysMode: mode_t = 0o440
    public static let k5loginMode: mode_t = 0o640

    public init(gears: GearManager, kerberosConfigFile: String, logger: Logger = Logger(label: "openshift.access")) {
        self.gears = gears
        self.kerberosConfigFile = kerberosConfigFile
        self.logger = logger
    }

    /// Where a gear's k5login file is.
    public enum K5LoginLocation: Sendable, Equatable {
        /// `~/.k5login`, through the gear's home.
        case home
        /// `<k5login_directory>/<uuid>`.
        case directory(String)

        public func path(for gear: Gear) -> String {
            switch self {
            case .home: return gear.home + "/" + GearKeys.k5loginName
            case .directory(let directory): return directory + "/" + gear.uuid
            }
        }
    }

    public func k5loginLocation() throws(AccessError) -> K5LoginLocation {
        try KerberosConfiguration.load(kerberosConfigFile).k5loginDirectory.map { .directory($0) } ?? .home
    }

    // MARK: What the broker asks

    /// Adds keys and principals; a key with an existing id is replaced where it stands.
    public func add(_ uuid: String, _ entries: [KeyEntry]) throws(AccessError) {
        let (keys, principals) = try Self.split(entries)
        try change(uuid, kerberos: !principals.isEmpty) { (keysFile: inout AuthorizedKeys, k5login: inout K5Login) in
            for key in keys { keysFile.add(key) }
            for (principal, id) in principals { k5login.add(principal, id: id) }
        }
        logger.info("added keys", metadata: ["gear.uuid": "\(uuid)", "keys.ssh": "\(keys.count)", "keys.krb5": "\(principals.count)"])
    }

    /// Removes keys (by comment, or without one by key body) and principals (by owner id).
    public func remove(_ uuid: String, _ entries: [KeyEntry]) throws(AccessError) {
        var keys: [(body: String?, comment: String?)] = []
        var principals: [(String, String?)] = []
        for entry in entries {
            if entry.isPrincipal {
                principals.append(try entry.principal())
            } else if let comment = entry.comment {
                try KeyRules.checkComment(comment)
                keys.append((nil, comment))
            } else {
                guard let body = entry.content else {
                    throw .invalidArgument(field: "ssh key", value: "", reason: "a key to remove needs its comment or its key body")
                }
                try KeyRules.checkBody(body)
                keys.append((body, nil))
            }
        }
        try change(uuid, kerberos: !principals.isEmpty) { (keysFile: inout AuthorizedKeys, k5login: inout K5Login) in
            for key in keys { keysFile.remove(body: key.body, comment: key.comment) }
            for (principal, id) in principals { k5login.remove(principal, id: id) }
        }
        logger.info("removed keys", metadata: ["gear.uuid": "\(uuid)", "keys.ssh": "\(keys.count)", "keys.krb5": "\(principals.count)"])
    }

    /// Makes `entries` the gear's whole set of keys and principals; an empty list empties
    /// authorized_keys and deletes the k5login file. Each entry needs a key and a type.
    public func replace(_ uuid: String, _ entries: [KeyEntry]) throws(AccessError) {
        for (index, entry) in entries.enumerated() where entry.content == nil || entry.type == nil {
            throw .invalidArgument(field: "ssh key \(index + 1)", value: entry.comment ?? "",
                                   reason: "the provided ssh keys do not have the required attributes: every key needs 'key' and 'type'")
        }
        let (keys, principals) = try Self.split(entries)
        try change(uuid, kerberos: true, touchKeys: true) { (keysFile: inout AuthorizedKeys, k5login: inout K5Login) in
            keysFile.replace(keys)
            k5login.replace(principals)
        }
        logger.info("replaced keys", metadata: ["gear.uuid": "\(uuid)", "keys.ssh": "\(keys.count)", "keys.krb5": "\(principals.count)"])
    }

    // MARK: Reading

    /// The gear's authorized_keys as it is on disk (no lock: the file is only ever replaced by rename).
    public func authorizedKeys(_ gear: Gear) throws(AccessError) -> AuthorizedKeys {
        return try gearStep { () throws(GearsError) in try readKeys(gear, try gears.home(gear)) }
    }

    /// The gear's principals as they are on disk.
    public func k5login(_ uuid: String) throws(AccessError) -> K5Login {
        let location = try k5loginLocation()
        let gear = try gearStep { () throws(GearsError) in try gears.gear(uuid) }
        let home = try gearStep { () throws(GearsError) in try gears.home(gear) }
        return try gearStep { () throws(GearsError) in try readK5Login(gear, home, location) }
    }

    /// Removes what the gear left outside its home (`<k5login_directory>/<uuid>`), after a destroy.
    public func forget(_ uuid: String) throws(AccessError) {
        try gearStep { () throws(GearsError) in try containing { () throws(ContainmentError) in try GearIdentity.validate(uuid: uuid) } }
        guard case .directory(let directory) = try k5loginLocation() else { return }
        if unlink(directory + "/" + uuid) != 0 && errno != ENOENT {
            throw .system(SystemError(step: "unlink", path: directory + "/" + uuid, errno: errno))
        }
    }

    // MARK: The change

    static func split(_ entries: [KeyEntry]) throws(AccessError) -> ([AuthorizedKey], [(String, String?)]) {
        var keys: [AuthorizedKey] = []
        var principals: [(String, String?)] = []
        for entry in entries {
            if entry.isPrincipal { principals.append(try entry.principal()) } else { keys.append(try entry.sshKey()) }
        }
        return (keys, principals)
    }

    /// Reads both files under the gear's lock, applies `body`, and writes what it changed.
    private func change(_ uuid: String, kerberos: Bool, touchKeys: Bool = false,
                        _ body: (inout AuthorizedKeys, inout K5Login) -> Void) throws(AccessError) {
        var location: K5LoginLocation?
        if kerberos { location = try k5loginLocation() }
        try gearStep { () throws(GearsError) in
            try gears.withGearHome(uuid) { (gear: Gear, home: GearHome) throws(GearsError) in
                let keys = try readKeys(gear, home)
                var k5login = K5Login()
                if let location { k5login = try readK5Login(gear, home, location) }
                var (newKeys, newK5login) = (keys, k5login)
                body(&newKeys, &newK5login)
                if newKeys != keys || touchKeys {
                    try containing { () throws(ContainmentError) in
                        try home.write(Self.authorizedKeysName, newKeys.render(), mode: Self.authorizedKeysMode, owner: .root)
                    }
                }
                if let location, newK5login != k5login || newK5login.isEmpty {
                    try writeK5Login(newK5login, gear, home, location)
                }
            }
        }
    }

    private func readKeys(_ gear: Gear, _ home: GearHome) throws(GearsError) -> AuthorizedKeys {
        let shell = gears.configuration.string("GEAR_SHELL")
        guard home.exists(Self.authorizedKeysName) else { return AuthorizedKeys(uuid: gear.uuid, shell: shell) }
        let bytes = try containing { () throws(ContainmentError) in try home.read(Self.authorizedKeysName) }
        return AuthorizedKeys(uuid: gear.uuid, shell: shell, text: String(decoding: bytes, as: UTF8.self))
    }

    private func readK5Login(_ gear: Gear, _ home: GearHome, _ location: K5LoginLocation) throws(GearsError) -> K5Login {
        switch location {
        case .home:
            guard home.exists(Self.k5loginName) else { return K5Login() }
            let bytes = try containing { () throws(ContainmentError) in try home.read(Self.k5loginName) }
            return K5Login(text: String(decoding: bytes, as: UTF8.self))
        case .directory:
            let path = location.path(for: gear)
            do {
                return K5Login(text: String(decoding: try FileSystem.readBytes(path, limit: GearHome.fileLimit), as: UTF8.self))
            } catch {
                if error.errno == ENOENT { return K5Login() }
                throw GearsError(error)
            }
        }
    }

    /// Writes the principals, or deletes the file when none is left (under the lock, unlike the original).
    private func writeK5Login(_ k5login: K5Login, _ gear: Gear, _ home: GearHome, _ location: K5LoginLocation) throws(GearsError) {
        switch location {
        case .home:
            try containing { () throws(ContainmentError) in
                if k5login.isEmpty {
                    try home.remove(Self.k5loginName)
                } else {
                    try home.write(Self.k5loginName, k5login.render(), mode: Self.k5loginMode, owner: .root)
                }
            }
        case .directory(let directory):
            let path = location.path(for: gear)
            do throws(SystemError) {
                if k5login.isEmpty {
                    if unlink(path) != 0 && errno != ENOENT { throw SystemError(step: "unlink", path: path, errno: errno) }
                    return
                }
                try FileSystem.makeDirectories(directory, mode: 0o755)
                let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                guard dirfd >= 0 else { throw SystemError(step: "open directory", path: directory, errno: errno) }
                defer { close(dirfd) }
                let ownership = home.ownership
                try FileSystem.writeAtomically(in: dirfd, name: gear.uuid, Array(k5login.render().utf8), mode: Self.k5loginMode,
                                               displayPath: path) { file throws(SystemError) in
                    guard ownership.enforced else { return }
                    guard fchown(file, 0, ownership.gid) == 0 else { throw SystemError(step: "fchown", path: path, errno: errno) }
                }
            } catch {
                throw GearsError(error)
            }
        }
    }
}

private func containing<T>(_ body: () throws(ContainmentError) -> T) throws(GearsError) -> T {
    do { return try body() } catch { throw .containment(error) }
}

private func gearStep<T>(_ body: () throws(GearsError) -> T) throws(AccessError) -> T {
    do { return try body() } catch { throw .gears(error) }
}
