import NodeConfig

/// Who a gear is on the host: its name, ids, home and MCS label.
public struct GearIdentity: Sendable, Equatable {
    public var uuid: String
    public var uid: UInt32
    public var gid: UInt32
    public var home: String
    /// Computed from the uid; recorded and applied when SELinux is enabled.
    public var mcsLabel: MCSLabel?

    public init(uuid: String, uid: UInt32, gid: UInt32, home: String, mcsLabel: MCSLabel?) {
        self.uuid = uuid
        self.uid = uid
        self.gid = gid
        self.home = home
        self.mcsLabel = mcsLabel
    }

    /// A gear name is a Unix login: lower-case letters, digits, `-` and `_`, starting with a
    /// letter or digit, at most 32 characters. Nothing else can reach a path or a command.
    public static func validate(uuid: String) throws(ContainmentError) {
        let bytes = Array(uuid.utf8)
        guard !bytes.isEmpty, bytes.count <= 32,
              bytes.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }),
              let first = bytes.first, first != 45, first != 95 else {
            throw .invalidArgument(field: "container uuid", value: String(uuid.unicodeScalars.map { $0.value < 0x20 ? "?" : Character($0) }),
                                   reason: "expected 1 to 32 lower-case letters, digits, '-' or '_', starting with a letter or digit")
        }
    }
}

/// Where the privileged work of containing a gear happens. Two implementations: the SELinux
/// plugin (node mode, root: real accounts, cgroups, labels, capability-free processes) and the
/// sandbox plugin (no root: directories owned by the invoking user). Code above this seam never
/// asks which one it has.
///
/// Every file operation inside a gear goes through the `GearHome` a plugin hands out; every gear
/// process through `run`.
public protocol ContainerPlugin: Sendable {
    /// `selinux` or `sandbox`.
    var name: String { get }
    /// What the facts report: `enabled`, `disabled` or `sandbox`.
    var selinuxStatus: String { get }

    /// Picks the uid of a new gear when the broker sends none, avoiding `used` (the node's gears).
    func allocateUID(excluding used: Set<UInt32>) throws(ContainmentError) -> UInt32

    /// Whether `uid` may be given to a new gear (not used by another account of the host).
    func isFree(uid: UInt32) -> Bool

    /// Creates the account, the home directory (owned as the reference says) and the cgroup, and
    /// runs `layout` on the new home (what the node puts in every gear's home). Fails atomically:
    /// on error, `layout`'s included, nothing of it is left. `layout` may run while the account is
    /// still being made: it must need only the gear's ids, never the account.
    func create(_ gear: GearIdentity, layout: (GearHome) throws(ContainmentError) -> Void) throws(ContainmentError)

    /// Kills every process of the gear and removes whatever of account, group, cgroup, quota
    /// and home exists (a half-created gear included). Idempotent.
    func destroy(_ gear: GearIdentity) throws(ContainmentError)

    /// Kills every process of the gear (`force-stop`); the gear itself stays.
    func killProcesses(_ gear: GearIdentity) throws(ContainmentError)

    /// The gear's home, opened by descriptor: the only way to its files.
    func home(_ gear: GearIdentity) throws(ContainmentError) -> GearHome

    /// Runs a program as the gear, with exactly `environment`, and waits for it.
    func run(_ gear: GearIdentity, _ argv: [String], environment: [String: String], directory: String?,
             timeoutSeconds: Double) throws(ContainmentError) -> Spawner.Result

    /// Whether the gear's account exists on the host (always true in the sandbox once created).
    func exists(_ gear: GearIdentity) -> Bool
}

extension ContainerPlugin {
    /// Creates the gear with an empty home.
    public func create(_ gear: GearIdentity) throws(ContainmentError) {
        try create(gear) { (_: GearHome) throws(ContainmentError) in }
    }
}

/// The uids a plugin allocates from, or the error that says why the configuration has none.
func gearUIDs(_ configuration: NodeConfiguration) throws(ContainmentError) -> ClosedRange<UInt32> {
    guard let range = configuration.gearUIDs else {
        throw .invalidArgument(field: "GEAR_MIN_UID...GEAR_MAX_UID",
                               value: "\(configuration.string("GEAR_MIN_UID"))...\(configuration.string("GEAR_MAX_UID"))",
                               reason: "not a range of uids from 1 to 4294967294")
    }
    return range
}
