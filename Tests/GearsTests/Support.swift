import Cartridges
import Containment
import Frontend
import Gears
import NodeConfig
import NodeTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

let shippedCartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"

/// A scratch node with the shipped cartridges in its repository and a gear manager on the
/// chosen plugin. Node-mode gears get uids from a range no real account uses.
struct GearNode {
    let scratch: ScratchNode
    let manager: GearManager
    let configuration: NodeConfiguration
    /// What the frontend serves for the node's gears.
    let routes: InMemoryFrontend

    /// Node-mode uid windows handed out so far in this run.
    static let nodeWindows = Atomic<Int>(0)

    /// Sandbox nodes get a random window of uids: their gears' loopback IPs come from the uid,
    /// and tests run side by side on one host. Node-mode nodes get a window of their own in
    /// 46000...46999 (other suites' node-mode gears use other ranges): tests running side by side
    /// never race for one account.
    init(_ plugin: String, label: String = "gears-test", uidRange: ClosedRange<Int>? = nil) throws {
        let window = Int.random(in: 0..<1000) * 50 + 50000
        let nodeWindow = 46000 + (Self.nodeWindows.add(1, ordering: .relaxed).oldValue % 20) * 50
        let uidRange = uidRange ?? (plugin == "selinux" ? nodeWindow...(nodeWindow + 49) : window...(window + 49))
        scratch = ScratchNode(label)
        chmod(scratch.root, 0o755)
        chmod(scratch.gearBaseDir, 0o755)
        configuration = try NodeConfiguration(parsing: """
            GEAR_MIN_UID=\(uidRange.lowerBound)
            GEAR_MAX_UID=\(uidRange.upperBound)
            GEAR_SHELL=/bin/sh
            OPENSHIFT_CGROUP_ROOT=openshift-node-tests
            """, file: "test node.conf")
        let repository = CartridgeRepository(configuration: .init(
            path: scratch.repositoryPath, cartridgeBasePath: shippedCartridges))
        let report = repository.rescan()
        #expect(report.failed == 0)
        let container: any ContainerPlugin = plugin == "selinux"
            ? SELinuxContainer(configuration: configuration, gearBaseDir: scratch.gearBaseDir, limits: ResourceLimits(),
                               gearExec: ProcessRunner.executable("oo-gear-exec"))
            : SandboxContainer(configuration: configuration, gearBaseDir: scratch.gearBaseDir)
        routes = InMemoryFrontend()
        manager = GearManager(configuration: configuration, gearBaseDir: scratch.gearBaseDir, plugin: container,
                              repository: repository,
                              frontend: FrontendManager(stateDirectory: scratch.gearBaseDir + "/.frontend", plugins: [routes],
                                                        cloudDomain: "example.com"),
                              hookTimeoutSeconds: 30)
    }

    func destroy() {
        for gear in manager.allGears() { _ = try? manager.destroy(gear.uuid) }
        scratch.destroy()
        // The tests' parent cgroup, once no test gear is left in it.
        if let parent = try? GearCgroup(hierarchy: CgroupHierarchy.detect() ?? .v2(root: "/nonexistent"), parent: "", name: "openshift-node-tests") {
            for directory in parent.directories { rmdir(directory) }
        }
    }

    /// Runs a command as the gear (through the plugin, as hooks run).
    func runAs(_ gear: Gear, _ argv: [String]) throws -> Spawner.Result {
        try manager.plugin.run(gear.identity, argv, environment: manager.environment(gear, cartridge: nil), directory: nil,
                               timeoutSeconds: 20)
    }

    func env(_ gear: Gear) -> [String: String] { TestFiles.environment(gear.home + "/.env") }
}

func uniqueUUID(_ prefix: String = "g") -> String {
    prefix + String(UInt64.random(in: 0...UInt64.max), radix: 16)
}

func mode(_ path: String) -> (owner: UInt32, group: UInt32, mode: UInt32)? {
    var st = stat()
    guard lstat(path, &st) == 0 else { return nil }
    return (st.st_uid, st.st_gid, UInt32(st.st_mode & 0o7777))
}

/// Waits until an HTTP GET of `ip:port` gives `body`, or until nothing answers (`body` nil).
func http(_ ip: String, _ port: Int) -> String? {
    let result = try? ProcessRunner.run(["/usr/bin/python3", "-c", """
        import sys, urllib.request
        try:
            print(urllib.request.urlopen("http://\(ip):\(port)/", timeout=2).read().decode(), end="")
        except Exception:
            sys.exit(1)
        """])
    return result?.status == 0 ? result?.stdout : nil
}

