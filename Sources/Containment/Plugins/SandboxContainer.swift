import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Sandbox mode: no root, no accounts. A gear is a directory owned by the invoking user and its
/// processes run as that user; they are found again by the `OPENSHIFT_SANDBOX_GEAR` (the gear's
/// home) in their environment. Same layout, environment and hooks as node mode.
public struct SandboxContainer: ContainerPlugin {
    public let name = "sandbox"
    public let selinuxStatus = "sandbox"
    public let gearBaseDir: String
    let configuration: NodeConfiguration

    public init(configuration: NodeConfiguration, gearBaseDir: String) {
        self.gearBaseDir = gearBaseDir
        self.configuration = configuration
    }

    /// Sandbox uids only number gears (for IPs and labels); they are taken from the gears
    /// already recorded under the gear directory.
    public func allocateUID() throws(ContainmentError) -> UInt32 {
        let uidRange = try gearUIDs(configuration)
        var used = Set<UInt32>()
        for name in FileSystem.entries(gearBaseDir) ?? [] where !name.hasPrefix(".") {
            guard let text = try? String(readingFile: "\(gearBaseDir)/\(name)/.env/.uid"), let uid = UInt32(text.filter(\.isNumber)) else { continue }
            used.insert(uid)
        }
        guard let uid = uidRange.first(where: { !used.contains($0) }) else {
            throw .invalidArgument(field: "uid", value: "\(uidRange)", reason: "no free uid left in GEAR_MIN_UID...GEAR_MAX_UID")
        }
        return uid
    }

    public func create(_ gear: GearIdentity) throws(ContainmentError) {
        guard mkdir(gear.home, 0o750) == 0 else { throw .system(step: "mkdir", target: gear.home, errno: errno) }
        do {
            try FailPoint.hit("container.create.end", gear.uuid)
        } catch {
            removeTree(gear.home)
            throw error
        }
    }

    public func destroy(_ gear: GearIdentity) throws(ContainmentError) {
        try killProcesses(gear)
        removeTree(gear.home)
        if access(gear.home, F_OK) == 0 { throw .system(step: "remove home", target: gear.home, errno: ENOTEMPTY) }
    }

    /// The gear's processes are the invoking user's that carry the gear's marker variable.
    public func killProcesses(_ gear: GearIdentity) throws(ContainmentError) {
        let marker = "OPENSHIFT_SANDBOX_GEAR=\(gear.home)"
        let me = getuid()
        let deadline = monotonicSeconds() + 10
        while true {
            let pids = processes(readEnviron: true) { info in
                info.uid == me && (info.environ?.split(separator: "\0").contains { $0 == marker } ?? false)
            }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            if monotonicSeconds() > deadline { throw .system(step: "kill processes of", target: gear.uuid, errno: EBUSY) }
            usleep(10_000)
        }
    }

    public func run(_ gear: GearIdentity, _ argv: [String], environment: [String: String], directory: String?,
                    timeoutSeconds: Double) throws(ContainmentError) -> Spawner.Result {
        var environment = environment
        environment["OPENSHIFT_GEAR_UUID"] = gear.uuid
        // What destroy finds the gear's processes by: its home, unique on the host even when two
        // sandboxes have gears of the same name.
        environment["OPENSHIFT_SANDBOX_GEAR"] = gear.home
        return try Spawner.run(argv, environment: environment, directory: directory, timeoutSeconds: timeoutSeconds)
    }

    public func own(_ path: String, by gear: GearIdentity, writable: Bool) throws(ContainmentError) {}

    public func exists(_ gear: GearIdentity) -> Bool { access(gear.home, F_OK) == 0 }
}
