import Containment
import Frontend
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The broker's access to a gear: the broker auth token
/// (`.auth/`), environment variables (`.env/`), user variables (`.env/user_vars/`), deployment
/// settings, and the gear's routes. Each change holds the gear's lock and replaces its file by
/// rename; the files are the node's (root) with the gear's group allowed to read, so a gear
/// cannot grant itself keys or variables.
extension GearManager {
    /// Runs `body` on a complete gear and its home, holding the gear's lock: how other modules
    /// (Access: authorized_keys, .k5login) change a gear's files.
    public func withGearHome<T>(_ uuid: String, _ body: (Gear, GearHome) throws(GearsError) -> T) throws(GearsError) -> T {
        try withGear(uuid) { (gear: Gear) throws(GearsError) -> T in try body(gear, try home(gear)) }
    }

    /// Whether the gear holds a broker auth token.
    public func hasBrokerAuth(_ gear: Gear) -> Bool { (try? home(gear))?.exists(".auth/token") ?? false }

    /// Writes (or with nil, removes) the broker auth iv and token.
    public func setBrokerAuth(_ uuid: String, iv: String?, token: String?) throws(GearsError) {
        for (field, value) in [("broker auth iv", iv), ("broker auth token", token)] {
            if let value, value.isEmpty || value.count > 4096 || !value.utf8.allSatisfy({ ASCII.isAlphanumeric($0) || "+/=_-".utf8.contains($0) }) {
                throw .invalidArgument(field: field, value: String(value.prefix(32)), reason: "must be base64 text")
            }
        }
        try withGear(uuid) { (gear: Gear) throws(GearsError) in
            let home = try self.home(gear)
            try containing { () throws(ContainmentError) in
                if let iv, let token {
                    try home.makeDirectory(".auth", mode: 0o750, owner: .root)
                    try home.write(".auth/iv", iv, mode: 0o640, owner: .root)
                    try home.write(".auth/token", token, mode: 0o640, owner: .root)
                } else {
                    try home.remove(".auth/iv")
                    try home.remove(".auth/token")
                }
            }
        }
    }

    /// The user's environment variables (`rhc env`).
    public func userVariables(_ uuid: String) throws(GearsError) -> [String: String] {
        EnvDirectory(try home(try gear(uuid)), ".env/user_vars").read()
    }

    /// Sets and removes user variables, within `USER_VARIABLE_MAX_COUNT`; names that the node
    /// or cartridges own, and loader and shell start-up variables, are refused.
    public func changeUserVariables(_ uuid: String, set: [String: String] = [:], remove: [String] = []) throws(GearsError) {
        for (name, value) in set {
            if let reason = VariablePolicy.userRefusal(name) {
                throw .invalidArgument(field: "user variable name", value: name, reason: reason)
            }
            guard value.utf8.count <= GearHome.environmentValueLimit, !value.utf8.contains(0) else {
                throw .invalidArgument(field: "user variable \(name)", value: String(value.prefix(32)), reason: "longer than 128 KiB or holds a NUL")
            }
        }
        try withGear(uuid) { (gear: Gear) throws(GearsError) in
            let directory = EnvDirectory(try home(gear), ".env/user_vars")
            let existing = directory.read()
            let count = Set(existing.keys).subtracting(remove).union(set.keys).count
            let limit = configuration.integer("USER_VARIABLE_MAX_COUNT")
            if count > limit {
                throw .invalidArgument(field: "user variables", value: "\(count)", reason: "at most \(limit) per gear (USER_VARIABLE_MAX_COUNT)")
            }
            for name in remove where EnvDirectory.isValidName(name) { try directory.remove(name) }
            for (name, value) in set.sorted(by: { $0.key < $1.key }) { try directory.write(name, value, mode: 0o640) }
        }
    }

    /// Sets (`env-var-add`) or, with nil, removes (`env-var-remove`) a variable of the gear's
    /// `.env`. Names the node manages (what it wrote at create and for endpoints, identities,
    /// deployment settings) and loader and shell start-up variables are refused.
    public func setEnvironmentVariable(_ uuid: String, _ name: String, _ value: String?) throws(GearsError) {
        if let value, value.utf8.contains(where: { ($0 < 32 && $0 != 9) || $0 == 127 }) {
            throw .invalidArgument(field: "value of \(name)", value: String(value.prefix(32)), reason: "must not contain control characters")
        }
        try Self.validate(uuid: uuid)
        try withGearLock(uuid) { () throws(GearsError) in
            let record = try self.record(uuid)
            let written = Set(record.cartridges.flatMap(\.variables))
            if let reason = VariablePolicy.brokerRefusal(name, nodeVariables: written) {
                throw .invalidArgument(field: "environment variable name", value: name, reason: reason)
            }
            let env = EnvDirectory(try home(gear(from: record)), ".env")
            if let value { try env.write(name, value) } else { try env.remove(name) }
        }
    }

    /// The broker's deployment settings (`update-configuration`), as node-managed `.env` variables.
    public func setDeploymentSettings(_ uuid: String, _ settings: [String: String]) throws(GearsError) {
        let names = ["auto_deploy": "OPENSHIFT_AUTO_DEPLOY", "deployment_branch": "OPENSHIFT_DEPLOYMENT_BRANCH",
                     "keep_deployments": "OPENSHIFT_KEEP_DEPLOYMENTS", "deployment_type": "OPENSHIFT_DEPLOYMENT_TYPE"]
        for (key, value) in settings {
            guard names[key] != nil else {
                throw .invalidArgument(field: "deployment setting", value: key, reason: "expected one of \(names.keys.sorted().joined(separator: ", "))")
            }
            guard (1...128).contains(value.utf8.count), value.utf8.allSatisfy({ ASCII.isAlphanumeric($0) || "_.-/".utf8.contains($0) }) else {
                throw .invalidArgument(field: key, value: String(value.prefix(64)), reason: "expected 1 to 128 letters, digits or _ . - /")
            }
        }
        try withGear(uuid) { (gear: Gear) throws(GearsError) in
            let env = EnvDirectory(try home(gear), ".env")
            for (key, value) in settings.sorted(by: { $0.key < $1.key }) { try env.write(names[key]!, value) }
        }
    }

    /// The gear's `.env` variables (the broker's `get_gear_envs`).
    public func environmentVariables(_ uuid: String) throws(GearsError) -> [String: String] {
        EnvDirectory(try home(try gear(uuid)), ".env").read()
    }

    /// Runs a change of the gear's routes holding the gear's lock, like every other change to it.
    public func withFrontend<T>(_ uuid: String, _ body: (Gear, FrontendManager) throws(FrontendError) -> T) throws(GearsError) -> T {
        guard let frontend else {
            throw .frontend(.plugin(name: "frontend", reason: "no frontend is configured on this node (OPENSHIFT_FRONTEND_HTTP_PLUGINS)"))
        }
        return try withGear(uuid) { (gear: Gear) throws(GearsError) -> T in
            try routing { () throws(FrontendError) -> T in try body(gear, frontend) }
        }
    }
}
