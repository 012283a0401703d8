import Cartridges
import Containment
import Gears
import Logging
import NodeConfig
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A node-mode node for the benches that log in over SSH (root): a scratch directory, the built
/// gear shell and `gear` tool in its `bin/` (GEAR_SHELL, GEAR_TOOL), its node.conf, a repository
/// of the shipped cartridges, a gear manager on real accounts and a client key.
struct BenchNode {
    let work: String
    let nodeConf: String
    let configuration: NodeConfiguration
    let plugin: SELinuxContainer
    let manager: GearManager
    let key: (path: String, type: String, body: String)
    let client: String
    let logger: Logger
    let cgroupRoot: String

    init(label: String, uids: ClosedRange<Int>, cgroupRoot: String, extraSettings: String = "") throws {
        work = try SSHServer.scratchDirectory(label)
        let bin = work + "/bin"
        mkdir(bin, 0o755)
        chmod(bin, 0o755)
        for tool in ["oo-trap-user", "gear"] {
            try TestFiles.write(bin + "/" + tool, bytes: try FileSystem.readBytes(siblingPath(tool), limit: 256 << 20), mode: 0o755)
            chmod(bin + "/" + tool, 0o755)
        }
        nodeConf = work + "/node.conf"
        let gearBase = work + "/gears"
        let cartridges = String(#filePath.split(separator: "/Sources/", omittingEmptySubsequences: false)[0]) + "/cartridges"
        let settings = "GEAR_BASE_DIR=\(gearBase)\nGEAR_MIN_UID=\(uids.lowerBound)\nGEAR_MAX_UID=\(uids.upperBound)\n"
            + "GEAR_SHELL=\(bin)/oo-trap-user\nGEAR_TOOL=\(bin)/gear\n"
            + "CARTRIDGE_REPO_DIR=\(work)/repository\nCARTRIDGE_BASE_PATH=\(cartridges)\n"
            + "OPENSHIFT_CGROUP_ROOT=\(cgroupRoot)\nOPENSHIFT_HTTP_CONF_DIR=\(work)/httpd\nLAST_ACCESS_DIR=\(work)/last_access\n"
            + "AGENT_SOCKET=\(work)/agent.sock\nFRONTEND_WAKE_PORT=0\n" + extraSettings
        try TestFiles.write(nodeConf, settings)
        configuration = try NodeConfiguration(parsing: settings, file: nodeConf)
        mkdir(gearBase, 0o755)
        chmod(gearBase, 0o755)
        let repository = CartridgeRepository(configuration: .init(path: work + "/repository", cartridgeBasePath: cartridges))
        _ = repository.rescan()
        plugin = SELinuxContainer(configuration: configuration, gearBaseDir: gearBase, limits: ResourceLimits(),
                                  gearExec: siblingPath("oo-gear-exec"))
        var quiet = Logger(label: "node-bench")
        quiet.logLevel = .warning
        logger = quiet
        manager = GearManager(configuration: configuration, gearBaseDir: gearBase, plugin: plugin, repository: repository, logger: quiet)
        client = work + "/client"
        mkdir(client, 0o700)
        key = try SSHServer.generateKey(in: client)
        self.cgroupRoot = cgroupRoot
    }

    /// Destroys the gears, their parent cgroup directories and the scratch directory.
    func destroy(_ gears: [Gear]) {
        for gear in gears { _ = try? manager.destroy(gear.uuid) }
        if let hierarchy = CgroupHierarchy.detect(), let parent = try? GearCgroup(hierarchy: hierarchy, parent: "", name: cgroupRoot) {
            for directory in parent.directories { rmdir(directory) }
        }
        TestFiles.remove(work)
    }
}
