import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Sandbox mode: no root, no accounts. A gear is a directory owned by the invoking user and its
/// processes run as that user; they are found again by the `OPENSHIFT_SANDBOX_GEAR` (the gear's
/// home) in their environment. Same layout, environment and hooks as node mode; the `GearHome`
/// it hands out makes no ownership change.
public struct SandboxContainer: ContainerPlugin {
    public let name = "sandbox"
    public let selinuxStatus = "sandbox"
    public let gearBaseDir: String
    let configuration: NodeConfiguration

    public init(configuration: NodeConfiguration, gearBaseDir: String) {
        self.gearBaseDir = gearBaseDir
        self.configuration = configuration
    }

    /// Sandbox uids only number gears (for IPs and labels): the lowest one no gear of this node has.
    public func allocateUID(excluding used: Set<UInt32>) throws(ContainmentError) -> UInt32 {
        let uidRange = try gearUIDs(configuration)
        guard let uid = uidRange.first(where: { !used.contains($0) }) else {
            throw .invalidArgument(field: "uid", value: "\(uidRange)", reason: "no free uid left in GEAR_MIN_UID...GEAR_MAX_UID")
        }
        return uid
    }

    public func isFree(uid: UInt32) -> Bool { true }

    func ownership(_ gear: GearIdentity) -> GearHome.Ownership {
        GearHome.Ownership(uid: gear.uid, gid: gear.gid, label: gear.mcsLabel, enforced: false)
    }

    public func create(_ gear: GearIdentity, layout: (GearHome) throws(ContainmentError) -> Void) throws(ContainmentError) {
        let home = try GearHome.create(base: gearBaseDir, name: gear.uuid, ownership: ownership(gear))
        do {
            try layout(home)
            try FailPoint.hit("container.create.end", gear.uuid)
        } catch {
            try? destroy(gear)
            throw error
        }
    }

    public func destroy(_ gear: GearIdentity) throws(ContainmentError) {
        try killProcesses(gear)
        let basefd = open(gearBaseDir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard basefd >= 0 else { throw .system(step: "open", target: gearBaseDir, errno: errno) }
        defer { close(basefd) }
        do { try FileSystem.removeTree(in: basefd, named: gear.uuid) } catch { throw ContainmentError(error) }
    }

    /// The gear's processes are the invoking user's that carry the gear's marker variable.
    public func killProcesses(_ gear: GearIdentity) throws(ContainmentError) {
        let marker = "OPENSHIFT_SANDBOX_GEAR=\(gear.home)"
        let me = getuid()
        let deadline = monotonicSeconds() + 10
        while true {
            let pids = processes { info in
                info.uid == me && (info.procFile("environ")?.split(separator: "\0").contains { $0 == marker } ?? false)
            }
            if pids.isEmpty { break }
            for pid in pids { kill(pid, SIGKILL) }
            if monotonicSeconds() > deadline { throw .system(step: "kill processes of", target: gear.uuid, errno: EBUSY) }
            usleep(10_000)
        }
    }

    public func home(_ gear: GearIdentity) throws(ContainmentError) -> GearHome {
        try GearHome.open(base: gearBaseDir, name: gear.uuid, ownership: ownership(gear))
    }

    public func run(_ gear: GearIdentity, _ argv: [String], environment: [String: String], directory: String?,
                    timeoutSeconds: Double) throws(ContainmentError) -> Spawner.Result {
        var environment = environment
        environment["OPENSHIFT_GEAR_UUID"] = gear.uuid
        // What destroy finds the gear's processes by: its home, unique on the host even when two
        // sandboxes have gears of the same name.
        environment["OPENSHIFT_SANDBOX_GEAR"] = gear.home
        do {
            return try Spawner.run(argv, environment: environment, directory: directory, timeoutSeconds: timeoutSeconds)
        } catch {
            throw ContainmentError(error)
        }
    }

    public func exists(_ gear: GearIdentity) -> Bool { access(gear.home, F_OK) == 0 }
}
