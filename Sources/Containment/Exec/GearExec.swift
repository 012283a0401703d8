import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// What `oo-gear-exec` does to become a gear before it execs the gear's command.
///
/// The steps run in the helper's own, single-threaded process (never in a forked child of a
/// threaded daemon), in an order where each step still has the privilege it needs:
/// cgroup placement and rlimits, supplementary groups and gid, the bounding and ambient sets,
/// the SELinux exec context, the uid (which clears permitted and effective), then the remaining
/// sets; finally it checks that no capability is left.
public struct GearExec: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var supplementaryGroups: [UInt32] = []
    /// SELinux exec context; applied only when SELinux is enabled.
    public var context: String?
    /// `cgroup.procs` (v2) or `tasks`/`cgroup.procs` (v1) files to join.
    public var cgroupFiles: [String] = []
    /// Resource limits by name (`NPROC`, `NOFILE`, ...): soft and hard.
    public var rlimits: [(name: String, soft: UInt64, hard: UInt64)] = []
    public var directory: String?
    public var command: [String]

    public init(uid: UInt32, gid: UInt32, command: [String]) {
        self.uid = uid
        self.gid = gid
        self.command = command
    }

    public static func == (a: GearExec, b: GearExec) -> Bool {
        a.uid == b.uid && a.gid == b.gid && a.supplementaryGroups == b.supplementaryGroups && a.context == b.context
            && a.cgroupFiles == b.cgroupFiles && a.directory == b.directory && a.command == b.command
            && a.rlimits.map { "\($0.name)=\($0.soft):\($0.hard)" } == b.rlimits.map { "\($0.name)=\($0.soft):\($0.hard)" }
    }

    // MARK: Arguments

    public static let usage = """
        usage: oo-gear-exec --uid UID --gid GID [--groups G1,G2] [--context CONTEXT] [--cgroup FILE]...
                            [--rlimit NAME=SOFT:HARD]... [--chdir DIR] -- PROGRAM [ARGUMENT...]
        Runs PROGRAM as the gear: in its cgroups, with its limits, groups, uid and SELinux context,
        and with no capability at all. The environment is passed through unchanged.
        """

    /// The argv form `oo-gear-exec` takes; `arguments` round-trips through `init(arguments:)`.
    public var arguments: [String] {
        var argv = ["--uid", "\(uid)", "--gid", "\(gid)"]
        if !supplementaryGroups.isEmpty { argv += ["--groups", supplementaryGroups.map(String.init).joined(separator: ",")] }
        if let context { argv += ["--context", context] }
        for file in cgroupFiles { argv += ["--cgroup", file] }
        for limit in rlimits { argv += ["--rlimit", "\(limit.name)=\(limit.soft):\(limit.hard)"] }
        if let directory { argv += ["--chdir", directory] }
        return argv + ["--"] + command
    }

    public init(arguments: [String]) throws(ContainmentError) {
        var uid: UInt32?
        var gid: UInt32?
        var spec = GearExec(uid: 0, gid: 0, command: [])
        var index = 0
        func value(_ option: String) throws(ContainmentError) -> String {
            index += 1
            guard index < arguments.count else { throw .invalidArgument(field: option, value: "", reason: "needs a value") }
            return arguments[index]
        }
        func id(_ option: String, _ text: String) throws(ContainmentError) -> UInt32 {
            guard let number = UInt32(text), number > 0 else {
                throw .invalidArgument(field: option, value: text, reason: "must be a number above 0: a gear never runs as root")
            }
            return number
        }
        while index < arguments.count {
            let option = arguments[index]
            switch option {
            case "--uid": uid = try id(option, try value(option))
            case "--gid": gid = try id(option, try value(option))
            case "--groups":
                let list = try value(option)
                var groups: [UInt32] = []
                for part in list.split(separator: ",") { groups.append(try id(option, String(part))) }
                spec.supplementaryGroups = groups
            case "--context": spec.context = try value(option)
            case "--cgroup": spec.cgroupFiles.append(try value(option))
            case "--chdir": spec.directory = try value(option)
            case "--rlimit":
                let text = try value(option)
                let parts = text.split(separator: "=", maxSplits: 1)
                let bounds = parts.count == 2 ? parts[1].split(separator: ":") : []
                guard parts.count == 2, bounds.count == 2, let soft = UInt64(bounds[0]), let hard = UInt64(bounds[1]), soft <= hard else {
                    throw .invalidArgument(field: option, value: text, reason: "expected NAME=SOFT:HARD with SOFT <= HARD")
                }
                spec.rlimits.append((String(parts[0]), soft, hard))
            case "--":
                spec.command = Array(arguments[(index + 1)...])
                index = arguments.count
                continue
            default:
                throw .invalidArgument(field: "option", value: option, reason: "unknown option")
            }
            index += 1
        }
        guard let uid, let gid else { throw .invalidArgument(field: "--uid/--gid", value: "", reason: "both are required") }
        guard let program = spec.command.first, program.hasPrefix("/") else {
            throw .invalidArgument(field: "PROGRAM", value: spec.command.first ?? "", reason: "an absolute path is required after --")
        }
        spec.uid = uid
        spec.gid = gid
        self = spec
    }

    // MARK: Becoming the gear

    /// Changes this process into the gear. Only call in the helper process.
    public func become() throws(ContainmentError) {
        let pid = "\(getpid())\n"
        for file in cgroupFiles {
            let fd = open(file, O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else { throw .system(step: "open cgroup file", target: file, errno: errno) }
            let written = write(fd, pid, pid.utf8.count)
            let code = errno
            close(fd)
            guard written == pid.utf8.count else { throw .system(step: "join cgroup", target: file, errno: code) }
        }
        for limit in rlimits {
            let rc = cl_setrlimit_named(limit.name, limit.soft, limit.hard)
            if rc == -2 { throw .invalidArgument(field: "--rlimit", value: limit.name, reason: "unknown resource limit") }
            guard rc == 0 else { throw .system(step: "setrlimit", target: limit.name, errno: errno) }
        }
        let groups = supplementaryGroups
        guard groups.withUnsafeBufferPointer({ cl_setgroups(Int32($0.count), $0.baseAddress) }) == 0 else {
            throw .system(step: "setgroups", target: groups.map(String.init).joined(separator: ","), errno: errno)
        }
        guard cl_setresgid(gid) == 0 else { throw .system(step: "setresgid", target: "\(gid)", errno: errno) }
        try Capabilities.dropBoundingSet()
        try Capabilities.clearAmbient()
        if let context, SELinux.isEnabled { try SELinux.setExecContext(context) }
        guard cl_setresuid(uid) == 0 else { throw .system(step: "setresuid", target: "\(uid)", errno: errno) }
        try Capabilities.clearProcessSets()
        let status = try String(readingFile: "/proc/self/status")
        guard let sets = Capabilities.Sets(status: status), sets.isEmpty else {
            throw .system(step: "verify that no capability is left", target: "/proc/self/status", errno: EPERM)
        }
        if let directory, chdir(directory) != 0 { throw .system(step: "chdir", target: directory, errno: errno) }
    }

    /// Replaces this process with the command; returns only on failure (with errno).
    public func exec() -> Int32 {
        let argv = command.map { strdup($0) } + [nil]
        execv(command[0], argv)
        return errno
    }
}
