import Containment
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// One SSH public key the broker authorizes on a gear.
public struct SSHKey: Sendable, Equatable {
    public var type: String
    public var key: String
    public var comment: String

    public init(type: String, key: String, comment: String) {
        self.type = type
        self.key = key
        self.comment = comment
    }

    /// Refuses anything that could add options or a second key to the authorized_keys line.
    public func validate() throws(GearsError) {
        guard type.range(of: #"^(ssh|ecdsa|sk)-[a-z0-9@.\-]{1,64}$"#, options: .regularExpression) != nil else {
            throw .invalidArgument(field: "ssh key type", value: type, reason: "expected e.g. ssh-rsa, ssh-ed25519, ecdsa-sha2-nistp256")
        }
        guard !key.isEmpty, key.count <= 16384, key.range(of: #"^[A-Za-z0-9+/]+={0,2}$"#, options: .regularExpression) != nil else {
            throw .invalidArgument(field: "ssh key", value: String(key.prefix(32)), reason: "must be the base64 key body")
        }
        guard comment.count <= 256, comment.range(of: #"^[A-Za-z0-9_.@\-]*$"#, options: .regularExpression) != nil else {
            throw .invalidArgument(field: "ssh key comment", value: String(comment.prefix(64)), reason: "letters, digits, _ . @ - only")
        }
    }
}

/// The broker's access to a gear: SSH keys (`.ssh/authorized_keys`), the broker auth token
/// (`.auth/`), user environment variables (`.env/user_vars/`). Each change holds the gear's lock
/// and replaces its file by rename; the files are the node's (root) with the gear's group
/// allowed to read, so a gear cannot grant itself keys.
extension GearManager {
    var authorizedKeysName: String { ".ssh/authorized_keys" }

    /// The authorized_keys line of a key: forced to the gear's shell, no X11 forwarding, and
    /// commented `OPENSHIFT-<gear uuid>-<comment>` as the original wrote it.
    func authorizedKeysLine(_ key: SSHKey, gear: Gear) -> String {
        "command=\"\(configuration.string("GEAR_SHELL"))\",no-X11-forwarding \(key.type) \(key.key) OPENSHIFT-\(gear.uuid)-\(key.comment)"
    }

    public func sshKeys(_ uuid: String) throws(GearsError) -> [String] {
        let gear = try self.gear(uuid)
        return (FileSystem.read(gear.home + "/" + authorizedKeysName) ?? "").split(separator: "\n").map(String.init)
    }

    /// Adds keys (a key already present is replaced), removes keys (by key body), or, with
    /// `replacingAll`, makes `add` the whole set.
    public func changeSSHKeys(_ uuid: String, add: [SSHKey] = [], remove: [String] = [], replacingAll: Bool = false) throws(GearsError) {
        for key in add { try key.validate() }
        let gear = try self.gear(uuid)
        try withLock("gear." + uuid) { () throws(GearsError) in
            let path = gear.home + "/" + authorizedKeysName
            var lines = replacingAll ? [] : (FileSystem.read(path) ?? "").split(separator: "\n").map(String.init)
            let dropped = Set(remove + add.map(\.key))
            lines.removeAll { line in line.split(separator: " ").contains { dropped.contains(String($0)) } }
            lines += add.map { authorizedKeysLine($0, gear: gear) }
            try writeGearFile(gear, authorizedKeysName, lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n", mode: 0o640)
        }
    }

    /// Writes (or with nil, removes) the broker auth iv and token.
    public func setBrokerAuth(_ uuid: String, iv: String?, token: String?) throws(GearsError) {
        for (field, value) in [("broker auth iv", iv), ("broker auth token", token)] {
            if let value, value.isEmpty || value.count > 4096 || value.range(of: #"^[A-Za-z0-9+/=_\-]+$"#, options: .regularExpression) == nil {
                throw .invalidArgument(field: field, value: String(value.prefix(32)), reason: "must be base64 text")
            }
        }
        let gear = try self.gear(uuid)
        try withLock("gear." + uuid) { () throws(GearsError) in
            let directory = gear.home + "/.auth"
            if let iv, let token {
                if mkdir(directory, 0o750) != 0 && errno != EEXIST { throw .io(step: "mkdir", path: directory, errno: errno) }
                try containing { () throws(ContainmentError) in try plugin.own(directory, by: gear.identity, writable: false) }
                try writeGearFile(gear, ".auth/iv", iv, mode: 0o640)
                try writeGearFile(gear, ".auth/token", token, mode: 0o640)
            } else {
                unlink(directory + "/iv")
                unlink(directory + "/token")
            }
        }
    }

    /// The user's environment variables (`rhc env`).
    public func userVariables(_ uuid: String) throws(GearsError) -> [String: String] {
        EnvDirectory(try gear(uuid).home + "/.env/user_vars").read()
    }

    /// Sets and removes user variables, within `USER_VARIABLE_MAX_COUNT`; names that the node
    /// or cartridges own (`OPENSHIFT_*` and the like) are refused.
    public func changeUserVariables(_ uuid: String, set: [String: String] = [:], remove: [String] = []) throws(GearsError) {
        for (name, value) in set {
            guard EnvDirectory.isValidName(name), !name.hasPrefix("OPENSHIFT_"), !["PATH", "HOME", "USER", "LD_PRELOAD", "LD_LIBRARY_PATH"].contains(name) else {
                throw .invalidArgument(field: "user variable name", value: name, reason: "not a name users may set")
            }
            guard value.utf8.count <= 512 * 1024, !value.contains("\0") else {
                throw .invalidArgument(field: "user variable \(name)", value: String(value.prefix(32)), reason: "too long or holds a NUL")
            }
        }
        let gear = try self.gear(uuid)
        try withLock("gear." + uuid) { () throws(GearsError) in
            let directory = EnvDirectory(gear.home + "/.env/user_vars")
            let existing = directory.read()
            let count = Set(existing.keys).subtracting(remove).union(set.keys).count
            let limit = configuration.integer("USER_VARIABLE_MAX_COUNT")
            if count > limit {
                throw .invalidArgument(field: "user variables", value: "\(count)", reason: "at most \(limit) per gear (USER_VARIABLE_MAX_COUNT)")
            }
            for name in remove where EnvDirectory.isValidName(name) { directory.remove(name) }
            for (name, value) in set.sorted(by: { $0.key < $1.key }) { try directory.write(name, value, mode: 0o640) }
        }
    }

    /// A file of the gear that the node owns and the gear may read.
    func writeGearFile(_ gear: Gear, _ relative: String, _ text: String, mode: mode_t) throws(GearsError) {
        let path = gear.home + "/" + relative
        try writeFileAtomically(path, text, mode: mode)
        try containing { () throws(ContainmentError) in try plugin.own(path, by: gear.identity, writable: false) }
        guard chmod(path, mode) == 0 else { throw .io(step: "chmod", path: path, errno: errno) }
    }
}
