import Access
import Cartridges
import Containment
import Gears
import NodeConfig
import NodeTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A scratch node with no cartridges, a gear manager on the chosen plugin, and the gears' keys
/// with a Kerberos configuration file of the test's own. Node-mode gears get uids from a range
/// no real account (and no other test suite) uses.
struct KeysNode {
    /// Node-mode uid windows handed out so far in this run.
    static let windows = Atomic<Int>(0)
    let scratch: ScratchNode
    let manager: GearManager
    let keys: GearKeys
    let configuration: NodeConfiguration
    let repository: CartridgeRepository
    var krb5Config: String { scratch.root + "/krb5.conf" }

    init(_ plugin: String, base: String? = nil, shell: String = "/usr/bin/oo-trap-user", krb5Config: String? = nil) throws {
        let window = Int.random(in: 0..<1000) * 50 + 50000
        // Node mode: a window of its own in 48000...48799 (other suites' node-mode gears use other
        // ranges), a different one for each node of this run, so tests running side by side never
        // race for a uid.
        let nodeWindow = 48000 + (KeysNode.windows.add(1, ordering: .relaxed).oldValue % 16) * 50
        let uids = plugin == "selinux" ? nodeWindow...(nodeWindow + 49) : window...(window + 49)
        scratch = ScratchNode("access-test")
        chmod(scratch.root, 0o755)
        let gearBaseDir = base ?? scratch.gearBaseDir
        try TestFiles.makeDirectories(gearBaseDir)
        chmod(gearBaseDir, 0o755)
        configuration = try NodeConfiguration(parsing: """
            GEAR_MIN_UID=\(uids.lowerBound)
            GEAR_MAX_UID=\(uids.upperBound)
            GEAR_SHELL=\(shell)
            OPENSHIFT_CGROUP_ROOT=openshift-node-tests
            """, file: "test node.conf")
        repository = CartridgeRepository(configuration: .init(path: scratch.repositoryPath, cartridgeBasePath: scratch.basePath))
        let container: any ContainerPlugin = plugin == "selinux"
            ? SELinuxContainer(configuration: configuration, gearBaseDir: gearBaseDir, limits: ResourceLimits(),
                               gearExec: ProcessRunner.executable("oo-gear-exec"))
            : SandboxContainer(configuration: configuration, gearBaseDir: gearBaseDir)
        manager = GearManager(configuration: configuration, gearBaseDir: gearBaseDir, plugin: container, repository: repository,
                              hookTimeoutSeconds: 30)
        keys = GearKeys(gears: manager, kerberosConfigFile: krb5Config ?? scratch.root + "/krb5.conf")
    }

    func destroy() {
        for gear in manager.allGears() {
            _ = try? manager.destroy(gear.uuid)
            try? keys.forget(gear.uuid)
        }
        scratch.destroy()
    }

    /// Points KRB5_CONFIG_FILE's [libdefaults] k5login_directory at `directory` (nil: no such key).
    func setK5LoginDirectory(_ directory: String?) throws {
        try TestFiles.write(krb5Config, "[libdefaults]\n    default_realm = GEARS.TEST\n" + (directory.map { "    k5login_directory = \($0)\n" } ?? ""))
    }
}

func uniqueUUID(_ prefix: String = "k") -> String {
    prefix + String(UInt64.random(in: 0...UInt64.max), radix: 16)
}

func ownership(_ path: String) -> (owner: UInt32, group: UInt32, mode: UInt32)? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return (st.st_uid, st.st_gid, UInt32(st.st_mode & 0o7777))
}

func key(_ body: String, _ comment: String?, type: String = "ssh-rsa", login: String? = nil) -> KeyEntry {
    KeyEntry(type: type, content: body, comment: comment, login: login)
}

func principal(_ name: String, _ id: String?) -> KeyEntry {
    KeyEntry(type: KeyEntry.principalType, content: name, comment: id)
}
