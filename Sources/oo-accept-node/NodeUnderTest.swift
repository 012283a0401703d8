import Cartridges
import Containment
import FoundationEssentials
import Frontend
import Gears
import NodeCLI
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The node being checked, read once: its layout, the container plugin its gears use, and the
/// gears, accounts and directory entries as they were when the run started.
///
/// Nothing here writes: the gear manager is only asked for records, the repository is never
/// loaded through `CartridgeRepository.load` (which creates the repository's directory and lock
/// file when they are missing), and no plugin is asked to create anything.
final class NodeUnderTest {
    /// A Unix account as `getpwent` lists it.
    struct Account: Sendable {
        var name: String
        var uid: UInt32
        var gid: UInt32
        var home: String
        var gecos: String
    }

    let layout: PathLayout
    /// The options this run was given (`--root`, `--config`, `--cartridge-base-path`), repeated
    /// in the commands a fix suggests so that they act on the same node.
    let commandOptions: [String]
    /// The Apache configuration to test (`--httpd-config`), nil for the default.
    let httpdConfig: String?
    /// Seconds to wait for a broker to accept a connection.
    let brokerTimeout: Double
    /// `selinux` (real accounts) or `sandbox`: what the node's commands use here.
    let pluginName: String
    let manager: GearManager
    /// The entries of GEAR_BASE_DIR, listed before the gear records were read: a gear created
    /// meanwhile has its record before its home, so it is never mistaken for a stray directory.
    let baseDirectoryEntries: [String]
    /// Accounts with `GEAR_GECOS` (node mode), listed before the records for the same reason.
    let gearAccounts: [Account]
    /// Complete gears, sorted by uuid.
    let gears: [Gear]
    /// Every uuid with a record, complete or not (a create or destroy running or interrupted).
    let recordedUUIDs: Set<String>

    init(layout: PathLayout, commandOptions: [String], httpdConfig: String?, brokerTimeout: Double) {
        self.layout = layout
        self.commandOptions = commandOptions
        self.httpdConfig = httpdConfig
        self.brokerTimeout = brokerTimeout
        let configuration = layout.configuration
        let configured = configuration.string("CONTAINERIZATION_PLUGIN")
        pluginName = layout.isSandbox ? "sandbox" : configured
        let gearBaseDir = layout.gearBaseDir
        let plugin: any ContainerPlugin
        if pluginName == "selinux" {
            plugin = SELinuxContainer(configuration: configuration, gearBaseDir: gearBaseDir, limits: ResourceLimits(),
                                      gearExec: siblingExecutable("oo-gear-exec"))
        } else {
            plugin = SandboxContainer(configuration: configuration, gearBaseDir: gearBaseDir)
        }
        manager = GearManager(configuration: configuration, gearBaseDir: gearBaseDir, plugin: plugin,
                              repository: CartridgeRepository(configuration: .init(layout: layout)))
        baseDirectoryEntries = FileSystem.entries(gearBaseDir) ?? []
        let gecos = configuration.string("GEAR_GECOS")
        gearAccounts = pluginName == "selinux" && !layout.isSandbox ? Self.accounts().filter { $0.gecos == gecos } : []
        recordedUUIDs = Set((FileSystem.entries(gearBaseDir + "/.gears") ?? [])
            .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }.map { String($0.dropLast(5)) })
        gears = manager.allGears()
    }

    var configuration: NodeConfiguration { layout.configuration }
    var isSandbox: Bool { layout.isSandbox }
    var gearBaseDir: String { layout.gearBaseDir }

    /// Gears are real accounts with cgroups (node mode with the SELinux plugin).
    var usesAccounts: Bool { !isSandbox && pluginName == "selinux" }

    /// `OPENSHIFT_FRONTEND_HTTP_PLUGINS`, in order.
    var frontendPlugins: [String] { configuration.list("OPENSHIFT_FRONTEND_HTTP_PLUGINS") }
    var apacheConfigured: Bool { frontendPlugins.contains("apache") }
    var mapDirectory: String { layout.path("OPENSHIFT_HTTP_CONF_DIR") }

    /// The gears' route documents, read without the plugins (nothing is applied).
    var frontend: FrontendManager {
        FrontendManager(stateDirectory: gearBaseDir + "/.frontend", plugins: [], cloudDomain: configuration.string("CLOUD_DOMAIN"))
    }

    /// Whether a command is working on the gear now (it holds the gear's lock file): its home,
    /// account and routes may be half changed, so the gear is not judged (the original screened
    /// gears that changed during its run the same way). The lock is only tried, never created.
    func isBusy(_ uuid: String) -> Bool {
        let fd = open(gearBaseDir + "/.locks/gear." + uuid, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK
    }

    /// Why this run cannot check the node at all, if it cannot.
    var privilegeProblem: Finding? {
        guard usesAccounts, geteuid() != 0 else { return nil }
        return .fail("node mode checks gear accounts, cgroups and root's gear records (\(gearBaseDir)/.gears is 0700), "
                     + "and this user (uid \(geteuid())) is not root",
                     fix: "run oo-accept-node as root, or give --root DIR to check a sandbox")
    }

    /// A command to suggest, with this run's node options so that it acts on the same node.
    func command(_ words: [String]) -> String {
        (words + commandOptions).map(Self.quoted).joined(separator: " ")
    }

    /// A word as a shell user would type it.
    static func quoted(_ word: String) -> String {
        if word.isEmpty { return "''" }
        let plain = word.unicodeScalars.allSatisfy { scalar in
            (scalar.value >= 0x30 && scalar.value <= 0x39) || (scalar.value >= 0x41 && scalar.value <= 0x5a)
                || (scalar.value >= 0x61 && scalar.value <= 0x7a) || "-_./:=,@%+".unicodeScalars.contains(scalar)
        }
        return plain ? word : "'" + String(word.replacing("'", with: "'\\''")) + "'"
    }

    /// Every account the account databases enumerate.
    static func accounts() -> [Account] {
        var result: [Account] = []
        setpwent()
        while let entry = getpwent() {
            let e = entry.pointee
            result.append(Account(name: String(cString: e.pw_name), uid: e.pw_uid, gid: e.pw_gid,
                                  home: String(cString: e.pw_dir), gecos: String(cString: e.pw_gecos)))
        }
        endpwent()
        return result
    }
}
