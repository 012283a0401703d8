import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Node mode: a gear is a real Unix account with its own group, a cgroup, an MCS label, and
/// processes started through `oo-gear-exec` with no capabilities. Requires root.
public struct SELinuxContainer: ContainerPlugin {
    public let name = "selinux"
    public let configuration: NodeConfiguration
    public let gearBaseDir: String
    public let cgroupHierarchy: CgroupHierarchy?
    public let limits: ResourceLimits
    /// The `oo-gear-exec` helper.
    public let gearExec: String

    public init(configuration: NodeConfiguration, gearBaseDir: String, limits: ResourceLimits, gearExec: String,
                cgroupHierarchy: CgroupHierarchy? = CgroupHierarchy.detect()) {
        self.configuration = configuration
        self.gearBaseDir = gearBaseDir
        self.limits = limits
        self.gearExec = gearExec
        self.cgroupHierarchy = cgroupHierarchy
    }

    public var selinuxStatus: String { SELinux.isEnabled ? "enabled" : "disabled" }

    /// Disk quotas of the file system holding the gears (reported, not faked, when off).
    public var quota: DiskQuota { DiskQuota(path: gearBaseDir) }

    public func allocateUID(excluding used: Set<UInt32>) throws(ContainmentError) -> UInt32 {
        let uidRange = try gearUIDs(configuration)
        guard let uid = UnixAccounts.lowestFreeID(in: uidRange, excluding: used) else {
            throw .invalidArgument(field: "uid", value: "\(uidRange)", reason: "no free uid left in GEAR_MIN_UID...GEAR_MAX_UID")
        }
        return uid
    }

    public func isFree(uid: UInt32) -> Bool { !UnixAccounts.uidExists(uid) && !UnixAccounts.gidExists(uid) }

    func cgroup(_ gear: GearIdentity) throws(ContainmentError) -> GearCgroup? {
        guard let cgroupHierarchy else { return nil }
        return try GearCgroup(hierarchy: cgroupHierarchy, parent: configuration.string("OPENSHIFT_CGROUP_ROOT"), name: gear.uuid)
    }

    func ownership(_ gear: GearIdentity) -> GearHome.Ownership {
        GearHome.Ownership(uid: gear.uid, gid: gear.gid, label: gear.mcsLabel, enforced: true)
    }

    /// The account tools (`groupadd`, `useradd`: most of a create's time, spent in their fsyncs)
    /// run at once on this thread, while the home, its layout and the cgroup are made on another:
    /// those need only the gear's ids, which the node has claimed (its record) and checked free.
    /// The quota names the user, so it comes once the account exists. Whatever fails, both halves
    /// have ended before the rollback removes what either made.
    public func create(_ gear: GearIdentity, layout: (GearHome) throws(ContainmentError) -> Void) throws(ContainmentError) {
        do {
            try concurrently(beside: { () throws(ContainmentError) in
                let home = try GearHome.create(base: gearBaseDir, name: gear.uuid, ownership: ownership(gear))
                if let cgroup = try cgroup(gear) { try cgroup.create(limits: limits.cgroupLimits, member: gear.uid) }
                try layout(home)
            }) { () throws(ContainmentError) in
                try UnixAccounts.addGroup(name: gear.uuid, gid: gear.gid)
                try UnixAccounts.addUser(
                    name: gear.uuid, uid: gear.uid, gid: gear.gid, home: gear.home, shell: configuration.string("GEAR_SHELL"),
                    gecos: configuration.string("GEAR_GECOS"), supplementaryGroups: configuration.list("GEAR_SUPPLEMENTARY_GROUPS"),
                    disablePasswordAging: configuration.boolean("DISABLE_PASSWORD_AGING"))
            }
            try quota.set(user: gear.uuid, blocks: limits.integer("quota_blocks") ?? 1_048_576,
                          inodes: limits.integer("quota_files") ?? 80_000)
            try FailPoint.hit("container.create.end", gear.uuid)
        } catch {
            try? destroy(gear)
            throw error
        }
    }

    public func killProcesses(_ gear: GearIdentity) throws(ContainmentError) {
        try cgroup(gear)?.killAll()
        try Containment.killProcesses(ofUID: gear.uid)
    }

    /// Everything of the gear that exists is removed, in an order that works from any partial
    /// state: account tools still running for it (a killed create's `useradd`, which goes on and
    /// would add the account after the cleanup) are waited for when the account is not there yet,
    /// processes killed, the account and group removed only when they carry the gear's ids.
    ///
    /// The home is removed (on another thread) while `userdel` runs; the cgroup only once the
    /// account is gone, so it still catches a login that came in before the account went.
    public func destroy(_ gear: GearIdentity) throws(ContainmentError) {
        if UnixAccounts.user(named: gear.uuid) == nil { UnixAccounts.waitForAccountTools(of: gear.uuid) }
        try killProcesses(gear)
        try concurrently(beside: { () throws(ContainmentError) in try removeHome(gear) }) { () throws(ContainmentError) in
            if let account = UnixAccounts.user(named: gear.uuid), account.uid == gear.uid {
                try UnixAccounts.deleteUser(name: gear.uuid)
            }
            if UnixAccounts.groupID(named: gear.uuid) == gear.gid { try UnixAccounts.deleteGroup(name: gear.uuid) }
        }
        try cgroup(gear)?.destroy()
        try quota.clear(uid: gear.uid)
    }

    public func home(_ gear: GearIdentity) throws(ContainmentError) -> GearHome {
        try GearHome.open(base: gearBaseDir, name: gear.uuid, ownership: ownership(gear))
    }

    func removeHome(_ gear: GearIdentity) throws(ContainmentError) {
        let basefd = open(gearBaseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard basefd >= 0 else { throw .system(step: "open", target: gearBaseDir, errno: errno) }
        defer { close(basefd) }
        do { try FileSystem.removeTree(in: basefd, named: gear.uuid) } catch { throw ContainmentError(error) }
    }

    public func run(_ gear: GearIdentity, _ argv: [String], environment: [String: String], directory: String?,
                    timeoutSeconds: Double) throws(ContainmentError) -> Spawner.Result {
        var spec = GearExec(uid: gear.uid, gid: gear.gid, command: argv)
        spec.cgroupFiles = try cgroup(gear)?.procsFiles ?? []
        if let label = gear.mcsLabel, SELinux.isEnabled { spec.context = SELinux.gearProcessContext(label) }
        spec.supplementaryGroups = configuration.list("GEAR_SUPPLEMENTARY_GROUPS").compactMap { UnixAccounts.groupID(named: $0) }
        // resource_limits.conf's limits_<item> (what the original wrote to PAM limits), as rlimits.
        for (key, name) in [("limits_nproc", "NPROC"), ("limits_nofile", "NOFILE"), ("limits_core", "CORE"), ("limits_fsize", "FSIZE"),
                            ("limits_as", "AS"), ("limits_cpu", "CPU"), ("limits_stack", "STACK"), ("limits_memlock", "MEMLOCK")] {
            if let value = limits.integer(key), value >= 0 { spec.rlimits.append(.init(name, UInt64(value), UInt64(value))) }
        }
        spec.directory = directory
        // The helper starts as root with a fixed environment; the gear's reaches it on descriptor 3
        // and becomes the environment only of the gear's own program.
        do {
            return try Spawner.run([gearExec] + spec.arguments, environment: GearExec.helperEnvironment,
                                   input: GearExec.environmentBlock(environment), timeoutSeconds: timeoutSeconds)
        } catch {
            throw ContainmentError(error)
        }
    }

    public func exists(_ gear: GearIdentity) -> Bool { UnixAccounts.user(named: gear.uuid) != nil }
}

/// Sends SIGKILL to every process of `uid` until none is left (or 10 s pass).
func killProcesses(ofUID uid: UInt32) throws(ContainmentError) {
    let deadline = monotonicSeconds() + 10
    while true {
        let pids = processes { $0.uid == uid }
        if pids.isEmpty { return }
        for pid in pids { kill(pid, SIGKILL) }
        if monotonicSeconds() > deadline { throw .system(step: "kill processes of uid", target: "\(uid)", errno: EBUSY) }
        usleep(10_000)
    }
}

struct ProcessInfo {
    var pid: pid_t
    var uid: UInt32
    /// Reads a bounded file of the process's /proc directory (`environ`, `cmdline`).
    var procFile: (String) -> String?
}

/// Processes from /proc matching a predicate (zombies included: they still hold their uid).
func processes(where predicate: (ProcessInfo) -> Bool) -> [pid_t] {
    var result: [pid_t] = []
    let me = getpid()
    for name in FileSystem.entries("/proc") ?? [] {
        guard let pid = pid_t(name), pid != me else { continue }
        var st = stat()
        guard stat("/proc/\(pid)", &st) == 0 else { continue }
        let info = ProcessInfo(pid: pid, uid: st.st_uid) { file in FileSystem.read("/proc/\(pid)/" + file, limit: 1 << 20) }
        if predicate(info) { result.append(pid) }
    }
    return result
}
