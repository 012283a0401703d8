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

    public func allocateUID() throws(ContainmentError) -> UInt32 {
        let uidRange = try gearUIDs(configuration)
        guard let uid = UnixAccounts.lowestFreeID(in: uidRange) else {
            throw .invalidArgument(field: "uid", value: "\(uidRange)", reason: "no free uid left in GEAR_MIN_UID...GEAR_MAX_UID")
        }
        return uid
    }

    func cgroup(_ gear: GearIdentity) throws(ContainmentError) -> GearCgroup? {
        guard let cgroupHierarchy else { return nil }
        return try GearCgroup(hierarchy: cgroupHierarchy, parent: configuration.string("OPENSHIFT_CGROUP_ROOT"), name: gear.uuid)
    }

    public func create(_ gear: GearIdentity) throws(ContainmentError) {
        var undo: [() -> Void] = []
        do {
            try UnixAccounts.addGroup(name: gear.uuid, gid: gear.gid)
            undo.append { try? UnixAccounts.deleteGroup(name: gear.uuid) }
            try UnixAccounts.addUser(
                name: gear.uuid, uid: gear.uid, gid: gear.gid, home: gear.home, shell: configuration.string("GEAR_SHELL"),
                gecos: configuration.string("GEAR_GECOS"), supplementaryGroups: configuration.list("GEAR_SUPPLEMENTARY_GROUPS"),
                disablePasswordAging: configuration.boolean("DISABLE_PASSWORD_AGING"))
            undo.append { try? UnixAccounts.deleteUser(name: gear.uuid) }
            guard mkdir(gear.home, 0o750) == 0 else { throw ContainmentError.system(step: "mkdir", target: gear.home, errno: errno) }
            undo.append { removeTree(gear.home) }
            try own(gear.home, by: gear, writable: false)
            guard chmod(gear.home, 0o750) == 0 else { throw ContainmentError.system(step: "chmod", target: gear.home, errno: errno) }
            if let cgroup = try cgroup(gear) {
                try cgroup.create(limits: limits.cgroupLimits)
                undo.append { try? cgroup.destroy() }
            }
            try quota.set(user: gear.uuid, blocks: limits.integer("quota_blocks") ?? 1_048_576,
                          inodes: limits.integer("quota_files") ?? 80_000)
            undo.append { try? quota.clear(uid: gear.uid) }
            try FailPoint.hit("container.create.end", gear.uuid)
        } catch {
            for step in undo.reversed() { step() }
            throw error as! ContainmentError
        }
    }

    public func killProcesses(_ gear: GearIdentity) throws(ContainmentError) {
        try cgroup(gear)?.killAll()
        try Containment.killProcesses(ofUID: gear.uid)
    }

    public func destroy(_ gear: GearIdentity) throws(ContainmentError) {
        try killProcesses(gear)
        try UnixAccounts.deleteUser(name: gear.uuid)
        try UnixAccounts.deleteGroup(name: gear.uuid)
        removeTree(gear.home)
        try cgroup(gear)?.destroy()
        try quota.clear(uid: gear.uid)
        if access(gear.home, F_OK) == 0 { throw .system(step: "remove home", target: gear.home, errno: ENOTEMPTY) }
    }

    public func run(_ gear: GearIdentity, _ argv: [String], environment: [String: String], directory: String?,
                    timeoutSeconds: Double) throws(ContainmentError) -> Spawner.Result {
        var spec = GearExec(uid: gear.uid, gid: gear.gid, command: argv)
        spec.cgroupFiles = try cgroup(gear)?.procsFiles ?? []
        if let label = gear.mcsLabel { spec.context = SELinux.gearProcessContext(label) }
        spec.supplementaryGroups = configuration.list("GEAR_SUPPLEMENTARY_GROUPS").compactMap { UnixAccounts.groupID(named: $0) }
        // resource_limits.conf's limits_<item> (what the original wrote to PAM limits), as rlimits.
        for (key, name) in [("limits_nproc", "NPROC"), ("limits_nofile", "NOFILE"), ("limits_core", "CORE"), ("limits_fsize", "FSIZE"),
                            ("limits_as", "AS"), ("limits_cpu", "CPU"), ("limits_stack", "STACK"), ("limits_memlock", "MEMLOCK")] {
            if let value = limits.integer(key), value >= 0 { spec.rlimits.append((name, UInt64(value), UInt64(value))) }
        }
        spec.directory = directory
        return try Spawner.run([gearExec] + spec.arguments, environment: environment, timeoutSeconds: timeoutSeconds)
    }

    public func own(_ path: String, by gear: GearIdentity, writable: Bool) throws(ContainmentError) {
        guard lchown(path, writable ? gear.uid : 0, gear.gid) == 0 else { throw .system(step: "lchown", target: path, errno: errno) }
        if SELinux.isEnabled, let label = gear.mcsLabel {
            let current = (try? SELinux.fileContext(path)) ?? "system_u:object_r:openshift_var_lib_t:s0"
            let parts = current.split(separator: ":", maxSplits: 3).map(String.init)
            if parts.count >= 3 { try SELinux.setFileContext(path, "\(parts[0]):\(parts[1]):\(parts[2]):\(label)") }
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
    var environ: String?
}

/// Processes from /proc matching a predicate (zombies included: they still hold their uid).
func processes(readEnviron: Bool = false, where predicate: (ProcessInfo) -> Bool) -> [pid_t] {
    guard let dir = opendir("/proc") else { return [] }
    defer { closedir(dir) }
    var result: [pid_t] = []
    let me = getpid()
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        guard let pid = pid_t(name), pid != me else { continue }
        var st = stat()
        guard stat("/proc/\(pid)", &st) == 0 else { continue }
        let environ = readEnviron ? try? String(readingFile: "/proc/\(pid)/environ") : nil
        if predicate(ProcessInfo(pid: pid, uid: st.st_uid, environ: environ)) { result.append(pid) }
    }
    return result
}

/// `rm -rf` without following links; errors are ignored (the caller checks what is left).
func removeTree(_ path: String) { FileSystem.removeTree(path) }
