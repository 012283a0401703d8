/// How the node asks `oo-gear-exec` (Sources/oo-gear-exec/main.c) to become a gear and run a
/// command: the argv form, built in one place. The helper itself is C, single-threaded and
/// statically linked, so no loader variable matters in the root part of its life; it ignores
/// its own environment and applies the gear's (read from `--env-fd 3`) only at the final exec.
public struct GearExec: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var supplementaryGroups: [UInt32] = []
    /// SELinux exec context; given only when SELinux is enabled.
    public var context: String?
    /// `cgroup.procs` (v2) or `cgroup.procs` per controller (v1) files to join.
    public var cgroupFiles: [String] = []
    /// Resource limits by name (`NPROC`, `NOFILE`, ...): soft and hard.
    public var rlimits: [Limit] = []
    public var directory: String?
    /// The gear's environment comes on descriptor 3 (`Spawner.run(input:)`).
    public var environmentOnDescriptor3 = true
    public var command: [String]

    public struct Limit: Sendable, Equatable {
        public var name: String
        public var soft: UInt64
        public var hard: UInt64

        public init(_ name: String, _ soft: UInt64, _ hard: UInt64) {
            self.name = name
            self.soft = soft
            self.hard = hard
        }
    }

    public init(uid: UInt32, gid: UInt32, command: [String]) {
        self.uid = uid
        self.gid = gid
        self.command = command
    }

    /// The helper's arguments (after its own path).
    public var arguments: [String] {
        var argv = ["--uid", "\(uid)", "--gid", "\(gid)"]
        if !supplementaryGroups.isEmpty { argv += ["--groups", supplementaryGroups.map(String.init).joined(separator: ",")] }
        if let context { argv += ["--context", context] }
        for file in cgroupFiles { argv += ["--cgroup", file] }
        for limit in rlimits { argv += ["--rlimit", "\(limit.name)=\(limit.soft):\(limit.hard)"] }
        if let directory { argv += ["--chdir", directory] }
        if environmentOnDescriptor3 { argv += ["--env-fd", "3"] }
        return argv + ["--"] + command
    }

    /// The environment as the helper reads it: NUL-terminated `KEY=VALUE` entries, sorted.
    public static func environmentBlock(_ environment: [String: String]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (key, value) in environment.sorted(by: { $0.key < $1.key }) {
            bytes += Array(key.utf8) + [UInt8(ascii: "=")] + Array(value.utf8).filter { $0 != 0 } + [0]
        }
        return bytes
    }

    /// The only environment the helper itself is started with.
    public static let helperEnvironment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
}
