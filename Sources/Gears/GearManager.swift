import Cartridges
import Containment
import Frontend
import Logging
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Creates, configures, runs and destroys the gears of this node. The only code that changes a
/// gear's state: the agent and the commands come here for everything that touches a gear.
///
/// - Every operation on a gear validates its input first, then holds that gear's lock file
///   (`<GEAR_BASE_DIR>/.locks/gear.<uuid>`), so requests for one gear are serialised across
///   processes. The lock file lives only as long as the gear's record: a destroy, a rolled-back
///   create or a request for a gear that does not exist leaves none.
/// - A uid is claimed (its marker beside the record, `GearRecords`) under the node's create lock,
///   held from choosing the uid to recording it, so creates running at once never share a uid.
/// - What the node trusts about a gear is its `GearRecord`, outside the gear's reach; the
///   record is written before each multi-step operation and after it, so any operation killed
///   at any instruction is finished or removed by the next one (see `GearRecord`).
/// - Root touches the gear's files only through its `GearHome` (by descriptor, never following
///   a link), and runs its processes only through the container plugin. The home and `.env` are
///   root's and stay root's; the gear owns what the reference gives it (app-root/data, logs,
///   runtime, its cartridge directories).
public final class GearManager: Sendable, CartridgeUsage {
    public let configuration: NodeConfiguration
    public let gearBaseDir: String
    public let plugin: any ContainerPlugin
    public let repository: CartridgeRepository
    public let hookTimeoutSeconds: Double
    /// The gears' web routes; nil when the node runs without a frontend.
    public let frontend: FrontendManager?
    let records: GearRecords
    let logger: Logger

    public init(configuration: NodeConfiguration, gearBaseDir: String, plugin: any ContainerPlugin, repository: CartridgeRepository,
                frontend: FrontendManager? = nil, hookTimeoutSeconds: Double = 120, logger: Logger = Logger(label: "openshift.gears")) {
        self.frontend = frontend
        self.configuration = configuration
        self.gearBaseDir = gearBaseDir
        self.plugin = plugin
        self.repository = repository
        self.hookTimeoutSeconds = hookTimeoutSeconds
        self.records = GearRecords(gearBaseDir: gearBaseDir)
        self.logger = logger
    }

    var locksDir: String { gearBaseDir + "/.locks" }
    var mcsParameters: MCSLabel.Parameters { MCSLabel.Parameters(configuration: configuration) }

    // MARK: Create

    @discardableResult
    public func create(_ request: GearCreateRequest) throws(GearsError) -> Gear {
        try Self.validate(uuid: request.uuid)
        for (field, value) in [("application uuid", request.appUUID), ("application name", request.appName),
                               ("gear name", request.gearName), ("namespace", request.namespace)] {
            try Self.validateName(field, value)
        }
        try prepareBaseDirectory()
        return try withGearLock(request.uuid) { () throws(GearsError) -> Gear in
            if let existing = try records.read(request.uuid) {
                if existing.state == .created { throw .gearExists(request.uuid) }
                // A create or destroy killed half way: remove what it left, then create anew.
                try removeEverything(of: existing)
            } else {
                // A create killed between claiming its uid and writing the record left the claim.
                try records.remove(request.uuid)
            }
            let record = try withLock("create") { () throws(GearsError) -> GearRecord in
                if access(gearBaseDir + "/" + request.uuid, F_OK) == 0 {
                    throw .invalidArgument(field: "container uuid", value: request.uuid, reason: "\(gearBaseDir)/\(request.uuid) exists and is not a gear of this node")
                }
                if plugin.name == "selinux" && UnixAccounts.user(named: request.uuid) != nil {
                    throw .invalidArgument(field: "container uuid", value: request.uuid, reason: "a user of that name already exists")
                }
                let used = records.usedUIDs()
                let uid: UInt32
                if let given = request.uid {
                    uid = try checkRequestedUID(given, used: used)
                } else {
                    uid = try containing { () throws(ContainmentError) in try plugin.allocateUID(excluding: used) }
                }
                _ = try containing { () throws(ContainmentError) in try MCSLabel(uid: Int(uid), parameters: mcsParameters) }
                // The journal first: from here on, whatever exists of the gear can be found and removed.
                let record = GearRecord(uuid: request.uuid, uid: uid, appUUID: request.appUUID, appName: request.appName,
                                        gearName: request.gearName, namespace: request.namespace, state: .creating)
                try records.write(record)
                try fail("gear.create.journaled", request.uuid)
                let gear = self.gear(from: record)
                do throws(GearsError) {
                    try containing { () throws(ContainmentError) in
                        try plugin.create(gear.identity) { (home: GearHome) throws(ContainmentError) in try layOut(gear, in: home) }
                    }
                } catch {
                    try? removeEverything(of: record)
                    throw error
                }
                return record
            }
            let gear = self.gear(from: record)
            do throws(GearsError) {
                try routing { () throws(FrontendError) in
                    try frontend?.create(uuid: gear.uuid, appUUID: gear.appUUID, gearName: gear.gearName, namespace: gear.namespace)
                }
                try fail("gear.create.end", gear.uuid)
                var done = record
                done.state = .created
                try records.write(done)
            } catch {
                try? removeEverything(of: record)
                throw error
            }
            logger.info("created gear", metadata: ["gear.uuid": "\(gear.uuid)", "gear.uid": "\(record.uid)"])
            return gear
        }
    }

    func checkRequestedUID(_ uid: UInt32, used: Set<UInt32>) throws(GearsError) -> UInt32 {
        let low = configuration.integer("GEAR_MIN_UID"), high = configuration.integer("GEAR_MAX_UID")
        guard Int(uid) >= low, Int(uid) <= high else {
            throw .invalidArgument(field: "uid", value: "\(uid)", reason: "outside GEAR_MIN_UID...GEAR_MAX_UID (\(low)...\(high))")
        }
        guard !used.contains(uid) else { throw .invalidArgument(field: "uid", value: "\(uid)", reason: "already used by another gear") }
        guard plugin.isFree(uid: uid) else {
            throw .invalidArgument(field: "uid", value: "\(uid)", reason: "already used by a user or group of this host")
        }
        return uid
    }

    /// A gear name is a Unix login (`GearIdentity.validate(uuid:)`): the one check of a gear uuid,
    /// made before anything (a lock file included) is created, by every entry point.
    public static func validate(uuid: String) throws(GearsError) {
        try containing { () throws(ContainmentError) in try GearIdentity.validate(uuid: uuid) }
    }

    static func validateName(_ field: String, _ value: String) throws(GearsError) {
        let ok = !value.isEmpty && value.utf8.count <= 64
            && value.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }
        if !ok { throw .invalidArgument(field: field, value: value, reason: "expected 1 to 64 letters, digits, '-' or '_'") }
    }

    private func prepareBaseDirectory() throws(GearsError) {
        do {
            try FileSystem.makeDirectories(gearBaseDir, mode: 0o755)
            try FileSystem.makeDirectories(locksDir, mode: 0o700)
        } catch {
            throw GearsError(error)
        }
        try records.prepare()
    }

    /// The home layout of the reference: owners, modes and the gear's environment. The home and
    /// `.env` (with `user_vars`) are root's, the gear's group may read them. Run by the plugin on
    /// the new home, possibly while the account is being made: it uses only the gear's ids.
    private func layOut(_ gear: Gear, in home: GearHome) throws(ContainmentError) {
        try home.makeDirectory(".env", mode: 0o750, owner: .root)
        try home.makeDirectory(".env/user_vars", mode: 0o750, owner: .root)
        try home.makeDirectory(".ssh", mode: 0o750, owner: .root)
        try home.makeDirectory(".tmp", mode: 0o750, owner: .gear)
        try home.makeDirectory(".sandbox", mode: 0o750, owner: .gear)
        try home.makeDirectory(".gem", mode: 0o750, owner: .gear)
        try home.makeDirectory("app-root", mode: 0o750, owner: .root)
        for relative in ["app-root/data", "app-root/logs", "app-root/runtime", "app-root/runtime/repo",
                         "app-root/runtime/dependencies", "app-root/runtime/build-dependencies", "app-deployments"] {
            try home.makeDirectory(relative, mode: 0o750, owner: .gear)
        }
        for name in ["repo", "dependencies", "build-dependencies"] { try home.symlink("runtime/" + name, at: "app-root/" + name) }
        try home.symlink("../data", at: "app-root/runtime/data")
        let domain = configuration.string("CLOUD_DOMAIN")
        let memory = (ResourceLimitsCache.shared.cgroupLimits.memoryBytes ?? 536_870_912) / (1024 * 1024)
        let path = gear.home
        let variables: [String: String] = [
            "OPENSHIFT_GEAR_UUID": gear.uuid, "OPENSHIFT_GEAR_NAME": gear.gearName,
            "OPENSHIFT_APP_UUID": gear.appUUID, "OPENSHIFT_APP_NAME": gear.appName, "OPENSHIFT_NAMESPACE": gear.namespace,
            "OPENSHIFT_APP_DNS": "\(gear.appName)-\(gear.namespace).\(domain)",
            "OPENSHIFT_GEAR_DNS": "\(gear.gearName)-\(gear.namespace).\(domain)",
            "OPENSHIFT_HOMEDIR": path + "/", "HOME": path + "/",
            "OPENSHIFT_DATA_DIR": path + "/app-root/data/", "OPENSHIFT_LOG_DIR": path + "/app-root/logs/",
            "OPENSHIFT_REPO_DIR": path + "/app-root/runtime/repo/",
            "OPENSHIFT_DEPENDENCIES_DIR": path + "/app-root/runtime/dependencies/",
            "OPENSHIFT_BUILD_DEPENDENCIES_DIR": path + "/app-root/runtime/build-dependencies/",
            "OPENSHIFT_DEPLOYMENTS_DIR": path + "/app-deployments/", "HISTFILE": path + "/app-root/data/.bash_history",
            "GEM_HOME": path + "/.gem", "OPENSHIFT_TMP_DIR": "/tmp/", "TMP_DIR": "/tmp/", "TMPDIR": "/tmp/", "TMP": "/tmp/",
            "OPENSHIFT_GEAR_MEMORY_MB": "\(memory)",
        ]
        try home.writeNewFiles(in: ".env", variables.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, mode: 0o644, owner: .root)
        try home.writeNewFiles(in: "app-root/runtime", [(".state", GearState.new.rawValue + "\n")], mode: 0o660, owner: .gear)
    }

    // MARK: Lookup

    /// The gear recorded as `uuid` (a complete one: a half-created gear is not found).
    public func gear(_ uuid: String) throws(GearsError) -> Gear {
        try Self.validate(uuid: uuid)
        guard let record = try records.read(uuid), record.state == .created else { throw .gearNotFound(uuid) }
        return gear(from: record)
    }

    func record(_ uuid: String) throws(GearsError) -> GearRecord {
        try Self.validate(uuid: uuid)
        guard let record = try records.read(uuid), record.state == .created else { throw .gearNotFound(uuid) }
        return record
    }

    func gear(from record: GearRecord) -> Gear {
        Gear(identity: identity(of: record), appUUID: record.appUUID, appName: record.appName, gearName: record.gearName,
             namespace: record.namespace)
    }

    func identity(of record: GearRecord) -> GearIdentity {
        GearIdentity(uuid: record.uuid, uid: record.uid, gid: record.uid, home: gearBaseDir + "/" + record.uuid,
                     mcsLabel: try? MCSLabel(uid: Int(record.uid), parameters: mcsParameters))
    }

    /// The gear's home, opened by descriptor (reads only: changes hold the lock, `withGearHome`).
    public func home(_ gear: Gear) throws(GearsError) -> GearHome {
        try containing { () throws(ContainmentError) in try plugin.home(gear.identity) }
    }

    /// Every gear of this node, sorted by uuid.
    public func allGears() -> [Gear] {
        records.all().filter { $0.state == .created }.map(gear(from:))
    }

    /// Gears using a cartridge version (asked by the repository before an erase).
    public func gears(using vendor: String, name: String, cartridgeVersion: String) -> [String] {
        RecordedCartridgeUsage(gearBaseDir: gearBaseDir).gears(using: vendor, name: name, cartridgeVersion: cartridgeVersion)
    }

    // MARK: Destroy

    /// Runs every cartridge's teardown, then removes the gear entirely: account, group, home,
    /// cgroup, quota, routes, record and lock file. Destroying a gear that does not exist
    /// succeeds (the broker retries destroys); a half-created or half-destroyed one is removed.
    @discardableResult
    public func destroy(_ uuid: String, skipHooks: Bool = false) throws(GearsError) -> String {
        try Self.validate(uuid: uuid)
        try prepareBaseDirectory()
        return try withGearLock(uuid) { () throws(GearsError) -> String in
            guard var record = try records.read(uuid) else {
                try records.remove(uuid)   // what a create killed while journaling left
                return ""
            }
            var output = ""
            if record.state == .created && !skipHooks {
                let gear = self.gear(from: record)
                for cartridge in cartridges(of: gear, record: record) where hookExists(gear, cartridge, "teardown") {
                    if let result = try? runHook(gear, cartridge: cartridge, [cartridge.directory + "/bin/teardown"]) {
                        output += result.stdout
                        if result.status != 0 { output += "CLIENT_ERROR: teardown of \(cartridge.name) failed (exit \(result.status))\n" }
                    }
                }
            }
            if record.state != .destroying {
                record.state = .destroying
                try records.write(record)
            }
            try removeEverything(of: record)
            logger.info("destroyed gear", metadata: ["gear.uuid": "\(uuid)"])
            return output
        }
    }

    /// Removes whatever exists of a recorded gear, in any state; the record goes last.
    func removeEverything(of record: GearRecord) throws(GearsError) {
        try fail("gear.destroy.begin", record.uuid)
        try routing { () throws(FrontendError) in try frontend?.destroy(uuid: record.uuid) }
        try containing { () throws(ContainmentError) in try plugin.destroy(identity(of: record)) }
        try records.remove(record.uuid)
    }

    // MARK: Locks

    /// Runs `body` holding the gear's lock (the uuid checked first: no path is made of anything
    /// else). When `body` ends and the gear has no record (destroyed, a create rolled back, or
    /// never there), the lock file is removed before it is released, and later lockers start on
    /// a new file (`LockFile`): no lock file outlives its gear.
    func withGearLock<T>(_ uuid: String, _ body: () throws(GearsError) -> T) throws(GearsError) -> T {
        try Self.validate(uuid: uuid)
        let lock: LockFile
        do { lock = try LockFile.acquire(locksDir + "/gear." + uuid) } catch { throw GearsError(error) }
        defer {
            if !records.exists(uuid) { lock.remove() }
            lock.release()
        }
        return try body()
    }

    func withLock<T>(_ name: String, _ body: () throws(GearsError) -> T) throws(GearsError) -> T {
        try LockFile.withLock(locksDir + "/" + name, wrap: GearsError.init, body)
    }

    /// Runs `body` on a complete gear, holding its lock: what every change to a gear does.
    public func withGear<T>(_ uuid: String, _ body: (Gear) throws(GearsError) -> T) throws(GearsError) -> T {
        try Self.validate(uuid: uuid)
        return try withGearLock(uuid) { () throws(GearsError) -> T in try body(try gear(uuid)) }
    }

    func fail(_ point: String, _ uuid: String) throws(GearsError) {
        try containing { () throws(ContainmentError) in try FailPoint.hit(point, uuid) }
    }

    // MARK: State

    public func state(_ gear: Gear) -> GearState {
        guard let home = try? home(gear), let text = home.readText("app-root/runtime/.state", limit: 64) else { return .unknown }
        return GearState(rawValue: text.trimmingWhitespace) ?? .unknown
    }

    func setState(_ gear: Gear, _ state: GearState, in given: GearHome? = nil) throws(GearsError) {
        let home: GearHome
        if let given { home = given } else { home = try self.home(gear) }
        try containing { () throws(ContainmentError) in
            try home.write("app-root/runtime/.state", state.rawValue + "\n", mode: 0o660, owner: .gear)
        }
    }

    var stopLockName: String { "app-root/runtime/.stop_lock" }

    public func hasStopLock(_ gear: Gear) -> Bool { (try? home(gear))?.exists(stopLockName) ?? false }

    public func status(_ gear: Gear) -> GearStatus {
        GearStatus(uuid: gear.uuid, uid: gear.identity.uid, state: state(gear), stopLock: hasStopLock(gear),
                   cartridges: cartridges(of: gear).map(\.ident), mcsLabel: gear.identity.mcsLabel?.description,
                   selinux: plugin.selinuxStatus)
    }
}

/// resource_limits.conf, read once per process (the node reads it at start, like the original).
enum ResourceLimitsCache {
    static let shared: ResourceLimits = {
        if let text = FileSystem.read("/etc/openshift/resource_limits.conf"),
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
