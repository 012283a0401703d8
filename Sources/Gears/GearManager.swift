import Cartridges
import Containment
import Frontend
import Logging
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Creates, configures, runs and destroys the gears of this node.
///
/// Every operation on a gear holds that gear's lock file (`<GEAR_BASE_DIR>/.locks/gear.<uuid>`,
/// persistent), so concurrent requests for one gear are serialised across processes; uid
/// allocation and account creation also hold the node's create lock. Each multi-step operation
/// undoes its own steps when one fails: a failed create leaves no account, home or cgroup; a
/// failed configure leaves no cartridge directory or variables.
public final class GearManager: Sendable {
    public let configuration: NodeConfiguration
    public let gearBaseDir: String
    public let plugin: any ContainerPlugin
    public let repository: CartridgeRepository
    public let hookTimeoutSeconds: Double
    /// The gears' web routes; nil when the node runs without a frontend.
    public let frontend: FrontendManager?
    let logger: Logger

    public init(configuration: NodeConfiguration, gearBaseDir: String, plugin: any ContainerPlugin, repository: CartridgeRepository,
                frontend: FrontendManager? = nil, hookTimeoutSeconds: Double = 120, logger: Logger = Logger(label: "openshift.gears")) {
        self.frontend = frontend
        self.configuration = configuration
        self.gearBaseDir = gearBaseDir
        self.plugin = plugin
        self.repository = repository
        self.hookTimeoutSeconds = hookTimeoutSeconds
        self.logger = logger
    }

    var locksDir: String { gearBaseDir + "/.locks" }
    var mcsParameters: MCSLabel.Parameters { MCSLabel.Parameters(configuration: configuration) }

    // MARK: Create

    @discardableResult
    public func create(_ request: GearCreateRequest) throws(GearsError) -> Gear {
        try containing { () throws(ContainmentError) in try GearIdentity.validate(uuid: request.uuid) }
        for (field, value) in [("application uuid", request.appUUID), ("application name", request.appName),
                               ("gear name", request.gearName), ("namespace", request.namespace)] {
            try Self.validateName(field, value)
        }
        try prepareBaseDirectory()
        return try withLock("gear." + request.uuid) { () throws(GearsError) -> Gear in
            let home = gearBaseDir + "/" + request.uuid
            if access(home, F_OK) == 0 { throw .gearExists(request.uuid) }
            let identity = try withLock("create") { () throws(GearsError) -> GearIdentity in
                if UnixAccounts.user(named: request.uuid) != nil && plugin.name == "selinux" {
                    throw .invalidArgument(field: "container uuid", value: request.uuid, reason: "a user of that name already exists")
                }
                let uid: UInt32
                if let given = request.uid {
                    uid = try containing { () throws(ContainmentError) in try checkRequestedUID(given) }
                } else {
                    uid = try containing { () throws(ContainmentError) in try plugin.allocateUID() }
                }
                let label = try containing { () throws(ContainmentError) in try MCSLabel(uid: Int(uid), parameters: mcsParameters) }
                let identity = GearIdentity(uuid: request.uuid, uid: uid, gid: uid, home: home, mcsLabel: label)
                try containing { () throws(ContainmentError) in try plugin.create(identity) }
                return identity
            }
            let gear = Gear(identity: identity, appUUID: request.appUUID, appName: request.appName, gearName: request.gearName,
                            namespace: request.namespace)
            do throws(GearsError) {
                try initializeHome(gear)
                try routing { () throws(FrontendError) in
                    try frontend?.create(uuid: gear.uuid, appUUID: gear.appUUID, gearName: gear.gearName, namespace: gear.namespace)
                }
                try fail("gear.create.end", gear)
            } catch {
                try? frontend?.destroy(uuid: identity.uuid)
                try? plugin.destroy(identity)
                throw error
            }
            logger.info("created gear", metadata: ["gear.uuid": "\(gear.uuid)", "gear.uid": "\(identity.uid)"])
            return gear
        }
    }

    func checkRequestedUID(_ uid: UInt32) throws(ContainmentError) -> UInt32 {
        let low = configuration.integer("GEAR_MIN_UID"), high = configuration.integer("GEAR_MAX_UID")
        guard Int(uid) >= low, Int(uid) <= high else {
            throw .invalidArgument(field: "uid", value: "\(uid)", reason: "outside GEAR_MIN_UID...GEAR_MAX_UID (\(low)...\(high))")
        }
        if plugin.name == "selinux" && (UnixAccounts.uidExists(uid) || UnixAccounts.gidExists(uid)) {
            throw .invalidArgument(field: "uid", value: "\(uid)", reason: "already used by a user or group of this host")
        }
        if plugin.name == "sandbox" && allGears().contains(where: { $0.identity.uid == uid }) {
            throw .invalidArgument(field: "uid", value: "\(uid)", reason: "already used by another gear")
        }
        return uid
    }

    static func validateName(_ field: String, _ value: String) throws(GearsError) {
        let ok = !value.isEmpty && value.utf8.count <= 64
            && value.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
        if !ok { throw .invalidArgument(field: field, value: value, reason: "expected 1 to 64 letters, digits, '-' or '_'") }
    }

    private func prepareBaseDirectory() throws(GearsError) {
        for directory in [gearBaseDir, locksDir] where access(directory, F_OK) != 0 {
            var current = ""
            for part in directory.split(separator: "/") {
                current += "/" + part
                if mkdir(current, 0o755) != 0 && errno != EEXIST { throw .io(step: "mkdir", path: current, errno: errno) }
            }
        }
    }

    /// The home layout of the reference: owners, modes and the gear's environment.
    private func initializeHome(_ gear: Gear) throws(GearsError) {
        let home = gear.home
        let id = gear.identity
        func dir(_ relative: String, _ mode: mode_t, writable: Bool) throws(GearsError) {
            let path = home + "/" + relative
            if mkdir(path, mode) != 0 && errno != EEXIST { throw .io(step: "mkdir", path: path, errno: errno) }
            try containing { () throws(ContainmentError) in try plugin.own(path, by: id, writable: writable) }
            guard chmod(path, mode) == 0 else { throw .io(step: "chmod", path: path, errno: errno) }
        }
        try dir(".env", 0o750, writable: false)
        try dir(".env/user_vars", 0o770, writable: false)
        try dir(".ssh", 0o750, writable: false)
        try dir(".tmp", 0o750, writable: true)
        try dir(".sandbox", 0o750, writable: true)
        try dir("app-root", 0o750, writable: false)
        for relative in ["app-root/data", "app-root/logs", "app-root/runtime", "app-root/runtime/repo",
                         "app-root/runtime/dependencies", "app-root/runtime/build-dependencies", "app-deployments"] {
            try dir(relative, 0o750, writable: true)
        }
        for name in ["repo", "dependencies", "build-dependencies"] {
            symlink("runtime/" + name, home + "/app-root/" + name)
        }
        symlink("../data", home + "/app-root/runtime/data")
        let domain = configuration.string("CLOUD_DOMAIN")
        let memory = (ResourceLimitsCache.shared.cgroupLimits.memoryBytes ?? 536_870_912) / (1024 * 1024)
        let variables: [String: String] = [
            "OPENSHIFT_GEAR_UUID": gear.uuid, "OPENSHIFT_GEAR_NAME": gear.gearName,
            "OPENSHIFT_APP_UUID": gear.appUUID, "OPENSHIFT_APP_NAME": gear.appName, "OPENSHIFT_NAMESPACE": gear.namespace,
            "OPENSHIFT_APP_DNS": "\(gear.appName)-\(gear.namespace).\(domain)",
            "OPENSHIFT_GEAR_DNS": "\(gear.gearName)-\(gear.namespace).\(domain)",
            "OPENSHIFT_HOMEDIR": home + "/", "HOME": home + "/",
            "OPENSHIFT_DATA_DIR": home + "/app-root/data/", "OPENSHIFT_LOG_DIR": home + "/app-root/logs/",
            "OPENSHIFT_REPO_DIR": home + "/app-root/runtime/repo/",
            "OPENSHIFT_DEPENDENCIES_DIR": home + "/app-root/runtime/dependencies/",
            "OPENSHIFT_BUILD_DEPENDENCIES_DIR": home + "/app-root/runtime/build-dependencies/",
            "OPENSHIFT_DEPLOYMENTS_DIR": home + "/app-deployments/", "HISTFILE": home + "/app-root/data/.bash_history",
            "GEM_HOME": home + "/.gem", "OPENSHIFT_TMP_DIR": "/tmp/", "TMP_DIR": "/tmp/", "TMPDIR": "/tmp/", "TMP": "/tmp/",
            "OPENSHIFT_GEAR_MEMORY_MB": "\(memory)",
        ]
        let env = EnvDirectory(home + "/.env")
        for (name, value) in variables {
            try env.write(name, value)
            try containing { () throws(ContainmentError) in try plugin.own(env.path + "/" + name, by: id, writable: false) }
        }
        // Node bookkeeping (not a variable: dot files are never read as environment).
        try writeFileAtomically(home + "/.env/.uid", "\(id.uid)\n")
        try setState(gear, .new)
    }

    // MARK: Lookup

    /// The gear recorded at `<GEAR_BASE_DIR>/<uuid>`.
    public func gear(_ uuid: String) throws(GearsError) -> Gear {
        try containing { () throws(ContainmentError) in try GearIdentity.validate(uuid: uuid) }
        let home = gearBaseDir + "/" + uuid
        let env = EnvDirectory(home + "/.env")
        guard let uidText = readSmallFile(home + "/.env/.uid"), let uid = UInt32(uidText.filter(\.isNumber)),
              env.value("OPENSHIFT_GEAR_UUID") == uuid else { throw .gearNotFound(uuid) }
        let label = try? MCSLabel(uid: Int(uid), parameters: mcsParameters)
        return Gear(identity: GearIdentity(uuid: uuid, uid: uid, gid: uid, home: home, mcsLabel: label),
                    appUUID: env.value("OPENSHIFT_APP_UUID") ?? "", appName: env.value("OPENSHIFT_APP_NAME") ?? "",
                    gearName: env.value("OPENSHIFT_GEAR_NAME") ?? "", namespace: env.value("OPENSHIFT_NAMESPACE") ?? "")
    }

    /// Every gear of this node, sorted by uuid.
    public func allGears() -> [Gear] {
        (FileSystem.entries(gearBaseDir) ?? []).filter { !$0.hasPrefix(".") }.compactMap { try? gear($0) }
    }

    // MARK: Destroy

    /// Runs every cartridge's teardown, then removes the gear entirely. Destroying a gear that
    /// does not exist succeeds (the broker retries destroys).
    @discardableResult
    public func destroy(_ uuid: String, skipHooks: Bool = false) throws(GearsError) -> String {
        try containing { () throws(ContainmentError) in try GearIdentity.validate(uuid: uuid) }
        try prepareBaseDirectory()
        return try withLock("gear." + uuid) { () throws(GearsError) -> String in
            let gear: Gear
            do {
                gear = try self.gear(uuid)
            } catch {
                // A half-created gear (home without records) is still removed.
                let home = gearBaseDir + "/" + uuid
                if access(home, F_OK) == 0 {
                    let uid = UnixAccounts.user(named: uuid)?.uid ?? 0
                    try? plugin.destroy(GearIdentity(uuid: uuid, uid: uid, gid: uid, home: home, mcsLabel: nil))
                }
                return ""
            }
            var output = ""
            if !skipHooks {
                for cartridge in cartridges(of: gear) {
                    let teardown = cartridge.directory + "/bin/teardown"
                    guard access(teardown, X_OK) == 0 else { continue }
                    if let result = try? runHook(gear, cartridge: cartridge, [teardown]) {
                        output += result.stdout
                        if result.status != 0 { output += "CLIENT_ERROR: teardown of \(cartridge.name) failed (exit \(result.status))\n" }
                    }
                }
            }
            try routing { () throws(FrontendError) in try frontend?.destroy(uuid: uuid) }
            try containing { () throws(ContainmentError) in try plugin.destroy(gear.identity) }
            logger.info("destroyed gear", metadata: ["gear.uuid": "\(uuid)"])
            return output
        }
    }

    // MARK: Locks

    func withLock<T>(_ name: String, _ body: () throws(GearsError) -> T) throws(GearsError) -> T {
        let path = locksDir + "/" + name
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .io(step: "open lock", path: path, errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw .io(step: "flock", path: path, errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        return try body()
    }

    func fail(_ point: String, _ gear: Gear) throws(GearsError) {
        try containing { () throws(ContainmentError) in try FailPoint.hit(point, gear.uuid) }
    }

    // MARK: State

    public func state(_ gear: Gear) -> GearState {
        readSmallFile(gear.home + "/app-root/runtime/.state").flatMap { GearState(rawValue: $0.trimmingWhitespace) } ?? .unknown
    }

    func setState(_ gear: Gear, _ state: GearState) throws(GearsError) {
        let path = gear.home + "/app-root/runtime/.state"
        try writeFileAtomically(path, state.rawValue + "\n", mode: 0o660)
        try containing { () throws(ContainmentError) in try plugin.own(path, by: gear.identity, writable: true) }
    }

    var stopLockName: String { "app-root/runtime/.stop_lock" }

    public func hasStopLock(_ gear: Gear) -> Bool { access(gear.home + "/" + stopLockName, F_OK) == 0 }

    public func status(_ gear: Gear) -> GearStatus {
        GearStatus(uuid: gear.uuid, uid: gear.identity.uid, state: state(gear), stopLock: hasStopLock(gear),
                   cartridges: cartridges(of: gear).map(\.ident), mcsLabel: gear.identity.mcsLabel?.description,
                   selinux: plugin.selinuxStatus)
    }
}

/// resource_limits.conf, read once per process (the node reads it at start, like the original).
enum ResourceLimitsCache {
    static let shared: ResourceLimits = {
        if let text = readSmallFile("/etc/openshift/resource_limits.conf"),
           let limits = try? ResourceLimits(parsing: text, file: "/etc/openshift/resource_limits.conf") { return limits }
        return ResourceLimits()
    }()
}

extension String {
    var trimmingWhitespace: String {
        String(drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
            .reversed().drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).reversed())
    }
}
