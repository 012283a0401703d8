import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The host's cgroup hierarchy: v2 (one unified tree) or v1 (one tree per controller).
public enum CgroupHierarchy: Sendable, Equatable {
    case v2(root: String)
    case v1(controllers: [String: String])

    /// The controllers the node uses on v1.
    static let v1Controllers = ["cpu", "cpuacct", "memory", "pids", "freezer"]

    /// Reads the mount table. v1 wins when its controllers are mounted (a hybrid host keeps its
    /// controllers there); nil when neither is usable.
    public static func detect(mounts: String? = nil) -> CgroupHierarchy? {
        let table = mounts ?? ((try? String(readingFile: "/proc/self/mounts")) ?? "")
        var v1: [String: String] = [:]
        var v2: String?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            let (path, type, options) = (String(fields[1]), fields[2], fields[3].split(separator: ","))
            if type == "cgroup2" && v2 == nil { v2 = path }
            if type == "cgroup" {
                for option in options where v1Controllers.contains(String(option)) { v1[String(option)] = path }
            }
        }
        if !v1.isEmpty { return .v1(controllers: v1) }
        return v2.map { .v2(root: $0) }
    }
}

/// One gear's cgroup: `<hierarchy>/<parent>/<gear uuid>` in every controller the node uses.
///
/// Created with the gear's limits, joined by `oo-gear-exec` (`procsFiles`), emptied (every
/// process killed) and removed at destroy.
public struct GearCgroup: Sendable, Equatable {
    public let hierarchy: CgroupHierarchy
    /// Relative to the hierarchy root, e.g. `openshift/<uuid>`.
    public let path: String

    public init(hierarchy: CgroupHierarchy, parent: String, name: String) throws(ContainmentError) {
        guard !name.isEmpty, !name.contains("/"), name != ".", name != "..",
              !name.unicodeScalars.contains(where: { $0.value < 0x20 }) else {
            throw .invalidArgument(field: "cgroup name", value: name, reason: "must be one path component")
        }
        let trimmed = parent.split(separator: "/").filter { $0 != "." && $0 != ".." }.joined(separator: "/")
        self.hierarchy = hierarchy
        self.path = trimmed.isEmpty ? name : trimmed + "/" + name
    }

    /// The gear's directory in each controller tree.
    public var directories: [String] {
        switch hierarchy {
        case .v2(let root): return [root + "/" + path]
        case .v1(let controllers): return controllers.keys.sorted().map { controllers[$0]! + "/" + path }
        }
    }

    /// The files a process writes its pid into to join the gear's cgroup.
    public var procsFiles: [String] { directories.map { $0 + "/cgroup.procs" } }

    /// Creates the cgroup (and its parent) and applies the limits.
    ///
    /// With `member` on v1, the gear's `cgroup.procs` and `tasks` files become that uid's, so the
    /// gear's login shell (`oo-trap-user`, which runs as the gear) can move itself into its own
    /// cgroup. It cannot move anything out: that needs write access to another cgroup's files. The
    /// shell writes `0` (itself, one thread) to `tasks`: the kernel then skips the global
    /// threadgroup lock whose RCU grace period makes a `cgroup.procs` move cost ~1.4 ms per
    /// controller. The limit files stay root's. (On v2 a move also needs write access to the
    /// common ancestor, which a gear must not have, so nothing is handed out there.)
    public func create(limits: CgroupLimits, member: UInt32? = nil) throws(ContainmentError) {
        if case .v2(let root) = hierarchy { try enableV2Controllers(root: root) }
        for directory in directories { try makeDirectories(directory) }
        try apply(limits)
        if case .v1 = hierarchy, let member {
            for file in procsFiles + directories.map({ $0 + "/tasks" }) where chown(file, member, gid_t(bitPattern: -1)) != 0 {
                throw .system(step: "chown to uid \(member)", target: file, errno: errno)
            }
        }
    }

    public func apply(_ limits: CgroupLimits) throws(ContainmentError) {
        switch hierarchy {
        case .v2(let root):
            let dir = root + "/" + path
            if let memory = limits.memoryBytes { try write(dir + "/memory.max", "\(memory)") }
            if let total = limits.memoryAndSwapBytes, let memory = limits.memoryBytes {
                try writeIfPresent(dir + "/memory.swap.max", "\(max(0, total - memory))")
            }
            if let shares = limits.cpuShares { try write(dir + "/cpu.weight", "\(Self.weight(forShares: shares))") }
            if let quota = limits.cpuQuotaMicroseconds { try write(dir + "/cpu.max", "\(quota) \(limits.cpuPeriodMicroseconds)") }
            if let processes = limits.processes { try write(dir + "/pids.max", "\(processes)") }
        case .v1(let controllers):
            if let memory = controllers["memory"].map({ $0 + "/" + path }) {
                if let bytes = limits.memoryBytes { try write(memory + "/memory.limit_in_bytes", "\(bytes)") }
                // Needs swap accounting; hosts without it have no such file.
                if let total = limits.memoryAndSwapBytes { try writeIfPresent(memory + "/memory.memsw.limit_in_bytes", "\(total)") }
            }
            if let cpu = controllers["cpu"].map({ $0 + "/" + path }) {
                if let shares = limits.cpuShares { try write(cpu + "/cpu.shares", "\(shares)") }
                if let quota = limits.cpuQuotaMicroseconds {
                    try write(cpu + "/cpu.cfs_period_us", "\(limits.cpuPeriodMicroseconds)")
                    try write(cpu + "/cpu.cfs_quota_us", "\(quota)")
                }
            }
            if let pids = controllers["pids"].map({ $0 + "/" + path }), let processes = limits.processes {
                try write(pids + "/pids.max", "\(processes)")
            }
        }
    }

    /// The processes in the gear's cgroup.
    public func processes() -> [pid_t] {
        var pids = Set<pid_t>()
        for file in procsFiles {
            let text = (try? String(readingFile: file)) ?? ""
            for line in text.split(separator: "\n") { if let pid = pid_t(line) { pids.insert(pid) } }
        }
        return pids.sorted()
    }

    /// Kills every process of the gear, including ones forked while killing (the freezer on
    /// v1, `cgroup.kill` on v2 when the kernel has it), and waits until none is left.
    public func killAll(timeoutSeconds: Double = 10) throws(ContainmentError) {
        // Nothing in it (a gear with nothing running, the usual destroy): nothing to freeze either.
        if processes().isEmpty { return }
        let deadline = monotonicSeconds() + timeoutSeconds
        var freezer: String?
        if case .v1(let controllers) = hierarchy, let root = controllers["freezer"] {
            freezer = root + "/" + path + "/freezer.state"
            try? write(freezer!, "FROZEN")
        }
        if case .v2(let root) = hierarchy { try? write(root + "/" + path + "/cgroup.kill", "1") }
        while true {
            let pids = processes()
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            if let freezer { try? write(freezer, "THAWED") }   // killed tasks must run to die
            if monotonicSeconds() > deadline {
                throw .system(step: "kill every process of", target: path, errno: EBUSY)
            }
            usleep(10_000)
            if let freezer { try? write(freezer, "FROZEN") }
        }
        if let freezer { try? write(freezer, "THAWED") }
    }

    /// Kills everything in the cgroup and removes it. Removing a missing cgroup is fine.
    ///
    /// The kernel refuses to remove a cgroup that still has a process (EBUSY), so an empty one
    /// (the gear's processes already killed, as a destroy does first) is removed at once, and the
    /// killing (freezer, every `cgroup.procs` read) happens only when one is busy.
    public func destroy() throws(ContainmentError) {
        if removeDirectories() == nil { return }
        try killAll()
        if let (directory, code) = removeDirectories() { throw .system(step: "rmdir", target: directory, errno: code) }
    }

    /// Removes every directory that can be; the first failure (with its errno), nil when none is left.
    private func removeDirectories() -> (String, Int32)? {
        var failure: (String, Int32)?
        for directory in directories where rmdir(directory) != 0 && errno != ENOENT {
            if failure == nil { failure = (directory, errno) }
        }
        return failure
    }

    public var exists: Bool { directories.contains { access($0, F_OK) == 0 } }

    /// cgroup v1 cpu.shares (2...262144, default 1024) to v2 cpu.weight (1...10000, default 100).
    static func weight(forShares shares: Int) -> Int {
        let clamped = min(max(shares, 2), 262_144)
        return 1 + ((clamped - 2) * 9999) / 262_142
    }

    private func enableV2Controllers(root: String) throws(ContainmentError) {
        var current = root
        for component in path.split(separator: "/").dropLast() {
            try writeIfPresent(current + "/cgroup.subtree_control", "+cpu +memory +pids")
            current += "/" + component
            try makeDirectories(current)
        }
        try writeIfPresent(current + "/cgroup.subtree_control", "+cpu +memory +pids")
    }

    /// `mkdir -p`, trying the directory itself first: its parents exist but for the node's first gear.
    private func makeDirectories(_ directory: String) throws(ContainmentError) {
        if mkdir(directory, 0o755) == 0 || errno == EEXIST { return }
        do { try FileSystem.makeDirectories(directory) } catch { throw ContainmentError(error) }
    }

    private func write(_ file: String, _ value: String) throws(ContainmentError) {
        let fd = open(file, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(step: "open", target: file, errno: errno) }
        defer { close(fd) }
        guard Glibc.write(fd, value, value.utf8.count) == value.utf8.count else {
            throw .system(step: "write \(value) to", target: file, errno: errno)
        }
    }

    private func writeIfPresent(_ file: String, _ value: String) throws(ContainmentError) {
        guard access(file, F_OK) == 0 else { return }
        try write(file, value)
    }
}
