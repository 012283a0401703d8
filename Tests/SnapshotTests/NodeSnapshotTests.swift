import Access
import Cartridges
import Containment
import Gears
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

let shippedCartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"

/// A node with real accounts (node mode) and the shipped cartridges, as the gear tests build it.
struct SnapshotNode {
    let scratch: ScratchNode
    let manager: GearManager

    init() throws {
        scratch = ScratchNode("snapshot-test")
        chmod(scratch.root, 0o755)
        chmod(scratch.gearBaseDir, 0o755)
        let configuration = try NodeConfiguration(parsing: """
            GEAR_MIN_UID=44000
            GEAR_MAX_UID=44999
            GEAR_SHELL=/bin/sh
            OPENSHIFT_CGROUP_ROOT=openshift-node-tests
            """, file: "test node.conf")
        let repository = CartridgeRepository(configuration: .init(path: scratch.repositoryPath, cartridgeBasePath: shippedCartridges))
        _ = repository.rescan()
        let plugin = SELinuxContainer(configuration: configuration, gearBaseDir: scratch.gearBaseDir, limits: ResourceLimits(),
                                      gearExec: ProcessRunner.executable("oo-gear-exec"))
        manager = GearManager(configuration: configuration, gearBaseDir: scratch.gearBaseDir, plugin: plugin, repository: repository,
                              hookTimeoutSeconds: 30)
    }

    func destroy() {
        for gear in manager.allGears() { _ = try? manager.destroy(gear.uuid) }
        scratch.destroy()
        if let parent = try? GearCgroup(hierarchy: CgroupHierarchy.detect() ?? .v2(root: "/nonexistent"), parent: "", name: "openshift-node-tests") {
            for directory in parent.directories { rmdir(directory) }
        }
    }

    /// Runs the built `gear` as the gear's user (setpriv, no capability, its own group only), with
    /// the environment its login shell gives it, stdin and stdout from and to files.
    func gear(_ gear: Gear, _ arguments: [String], stdin: String = "/dev/null", stdout: String) throws -> (status: Int32, stderr: String) {
        var environment = manager.environment(gear, cartridge: nil)
        environment["PATH"] = (environment["PATH"] ?? "") + ":/usr/bin:/bin"
        let argv = ["/usr/bin/setpriv", "--reuid=\(gear.identity.uid)", "--regid=\(gear.identity.gid)", "--clear-groups",
                    "--inh-caps=-all", "--bounding-set=-all", "--", "/usr/bin/env", "--chdir=" + gear.home, ProcessRunner.executable("gear")] + arguments
        let errors = stdout + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errors, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, nil, cArgs, cEnv)
        guard rc == 0 else { throw TestFiles.Failure(description: "posix_spawn setpriv: \(rc)") }
        return (ProcessRunner.wait(pid), TestFiles.read(errors) ?? "")
    }
}

/// Snapshot and restore for real: a gear with the mock cartridge, `gear` run as the gear's user,
/// the gear destroyed and created again with the same uuid, the data restored byte for byte.
@Suite("gear snapshot and restore (node mode)", .enabled(if: Prerequisites.rootOrCI), .serialized, .timeLimit(.minutes(5)))
struct NodeSnapshotTests {
    static func fill(_ gear: Gear) throws {
        let data = gear.home + "/app-root/data"
        try TestFiles.makeDirectories(data + "/nested/deeper")
        try TestFiles.write(data + "/binary.bin", bytes: (0..<300_000).map { UInt8(truncatingIfNeeded: ($0 &* 7919) >> 3) }, mode: 0o640)
        try TestFiles.write(data + "/nested/deeper/notes.txt", "notes\n", mode: 0o600)
        try TestFiles.write(data + "/with space\nand newline", "odd\n")
        try TestFiles.write(data + "/.bash_history", "mysql -p hunter2\n", mode: 0o600)
        symlink("nested/deeper/notes.txt", data + "/link")
        chmod(data + "/nested", 0o710)
        for directory in [gear.home + "/.auth", gear.home + "/.openshift_ssh"] { try TestFiles.makeDirectories(directory) }
        try TestFiles.write(gear.home + "/.auth/token", "broker token", mode: 0o640)
        try TestFiles.write(gear.home + "/.openshift_ssh/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n", mode: 0o600)
        try TestFiles.write(gear.home + "/.openshift_ssh/id_rsa.pub", "ssh-rsa AAAA gear\n", mode: 0o644)
        for path in [data, gear.home + "/.auth", gear.home + "/.openshift_ssh"] {
            _ = try ProcessRunner.run(["/bin/chown", "-hR", "\(gear.identity.uid):\(gear.identity.gid)", path])
        }
    }

    /// The user's data (the mock cartridge's own markers change with every hook and are left out).
    static func userData(_ gear: Gear) -> [TreeEntry] {
        Tree.entries(gear.home + "/app-root/data", excluding: [".mock_cartridge_state", ".bash_history"])
    }

    @Test("snapshot as the gear: no secrets in the archive, the started gear stopped and started again; restore into a new gear with the same uuid brings the data back byte for byte")
    func snapshotDestroyRestore() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try SnapshotNode()
        defer { node.destroy() }
        let uuid = "snap" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        var gear = try node.manager.create(GearCreateRequest(uuid: uuid))
        _ = try node.manager.configure(uuid, cartridge: "mock")
        _ = try node.manager.control(uuid, .start)
        try Self.fill(gear)
        let before = Self.userData(gear)
        #expect(before.count == 7, "\(before)")
        let archive = node.scratch.root + "/snapshot.tar.gz"

        let snapshot = try node.gear(gear, ["snapshot"], stdout: archive)
        #expect(snapshot.status == 0, "\(snapshot.stderr)")
        #expect(snapshot.stderr.contains("Creating and sending tar.gz"))
        #expect(node.manager.state(gear) == .started && !node.manager.hasStopLock(gear), "the started gear is started again")
        let markers = gear.home + "/app-root/data/.mock_cartridge_state/"
        for marker in ["control_stop", "control_pre-snapshot", "control_post-snapshot", "control_start"] {
            #expect(TestFiles.exists(markers + marker), "\(marker) ran")
        }

        let listing = try ProcessRunner.run(["/bin/tar", "-tzf", archive])
        #expect(listing.status == 0, "\(listing.stderr)")
        let names = listing.stdout.split(separator: "\n").map(String.init)
        #expect(names.allSatisfy { $0.hasPrefix("./\(uuid)/") || $0 == "./\(uuid)" || $0.hasPrefix("and newline") }, "\(names.prefix(5))")
        #expect(names.contains("./\(uuid)/app-root/data/binary.bin"))
        #expect(names.contains("./\(uuid)/.openshift_ssh/id_rsa.pub"))
        for secret in ["/.auth", "/.ssh/", "/.openshift_ssh/id_rsa", "/app-root/data/.bash_history", "/.tmp/", "/app-root/runtime/.state"] {
            #expect(!names.contains { $0.contains(secret) && !$0.hasSuffix(".pub") }, "\(secret) is not in the archive")
        }

        // The gear goes; a new one with the same uuid (another uid) gets the data back.
        _ = try node.manager.destroy(uuid)
        gear = try node.manager.create(GearCreateRequest(uuid: uuid))
        _ = try node.manager.configure(uuid, cartridge: "mock")
        #expect(Self.userData(gear).map(\.path) == ["mock_gear_data_locked_file"], "a new gear: only what configure made")
        let restore = try node.gear(gear, ["restore"], stdin: archive, stdout: node.scratch.root + "/restore.out")
        #expect(restore.status == 0, "\(restore.stderr)")
        #expect(Self.userData(gear) == before, "app-root/data comes back byte for byte, with its modes and links")
        #expect(!TestFiles.exists(gear.home + "/app-root/data/.bash_history"))
        // pre-restore's marker went with the old data (the mock keeps its markers there); post-restore's is new.
        #expect(TestFiles.exists(markers + "control_post-restore"), "post-restore ran")
        var target = [CChar](repeating: 0, count: 64)
        #expect(readlink(gear.home + "/app-root/runtime/data", &target, 63) == 7)
        var st = stat()
        #expect(lstat(gear.home + "/app-root/data/binary.bin", &st) == 0 && st.st_uid == gear.identity.uid, "restored files are the new gear's")
        #expect(node.manager.state(gear) != .started, "a gear that was not started is not started by restore")
    }

    @Test("a hostile archive restored into a real gear is refused and changes nothing of the gear")
    func hostileArchiveChangesNothing() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try SnapshotNode()
        defer { node.destroy() }
        let uuid = "snap" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let gear = try node.manager.create(GearCreateRequest(uuid: uuid))
        _ = try node.manager.configure(uuid, cartridge: "mock")
        _ = try node.manager.control(uuid, .start)
        try Self.fill(gear)
        let cases: [(String, (inout TarBuilder) -> Void)] = [
            ("symlink out", { $0.symlink("./\(uuid)/app-root/data/etc", to: "../../../../../../etc") }),
            ("hard link to the gear's authorized_keys", { $0.hardLink("./\(uuid)/app-root/data/keys", to: "./\(uuid)/.ssh/authorized_keys") }),
            ("a link planted, then written through", {
                $0.symlink("./\(uuid)/app-root/data/d", to: "../../.env")
                $0.file("./\(uuid)/app-root/data/d/OPENSHIFT_GEAR_UUID", "forged")
            }),
        ]
        for (label, build) in cases {
            var tar = TarBuilder()
            tar.directory("./\(uuid)/")
            tar.directory("./\(uuid)/app-root/data/")
            tar.file("./\(uuid)/app-root/data/binary.bin", "replaced")
            build(&tar)
            let path = node.scratch.root + "/hostile.tar.gz"
            try TestFiles.write(path, bytes: try Archives.gzip(tar.ended()))
            let before = Tree.entries(gear.home)
            let state = node.manager.state(gear)
            let result = try node.gear(gear, ["restore"], stdin: path, stdout: node.scratch.root + "/restore.out")
            #expect(result.status == 2, "\(label): \(result.stderr)")
            #expect(result.stderr.contains("archive refused: member") && result.stderr.contains("nothing was changed"), "\(label): \(result.stderr)")
            #expect(Tree.entries(gear.home) == before, "\(label): the gear's files changed")
            #expect(node.manager.state(gear) == state, "\(label): the gear was not stopped")
        }
    }

    @Test("gear refuses to run as root; start and stop as the gear record the state and the stop lock as the node does")
    func controlAsTheGear() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let asRoot = try ProcessRunner.run([ProcessRunner.executable("gear"), "status"])
        #expect(asRoot.status == 6 && asRoot.stderr.contains("never as root"), "\(asRoot.stderr)")
        let node = try SnapshotNode()
        defer { node.destroy() }
        let uuid = "snap" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let gear = try node.manager.create(GearCreateRequest(uuid: uuid))
        _ = try node.manager.configure(uuid, cartridge: "mock")
        let out = node.scratch.root + "/control.out"
        let start = try node.gear(gear, ["start"], stdout: out)
        #expect(start.status == 0 && node.manager.state(gear) == .started && !node.manager.hasStopLock(gear), "\(start.stderr)")
        #expect(start.stderr.contains("mock started"), "the control's output is shown: \(start.stderr)")
        let status = try node.gear(gear, ["status"], stdout: out)
        #expect(status.status == 0 && (TestFiles.read(out) ?? "").contains("mock is running"))
        let stop = try node.gear(gear, ["stop"], stdout: out)
        #expect(stop.status == 0 && node.manager.state(gear) == .stopped && node.manager.hasStopLock(gear), "\(stop.stderr)")
        // A stopped gear's snapshot leaves it stopped, with its stop lock.
        let snapshot = try node.gear(gear, ["snapshot"], stdout: node.scratch.root + "/s.tar.gz")
        #expect(snapshot.status == 0 && node.manager.state(gear) == .stopped && node.manager.hasStopLock(gear), "\(snapshot.stderr)")
        // A failing control is reported with its output and a non-zero exit.
        _ = try ProcessRunner.run(["/usr/bin/setpriv", "--reuid=\(gear.identity.uid)", "--regid=\(gear.identity.gid)", "--clear-groups", "--",
                                   "/bin/sh", "-c", "printf '#!/bin/sh\\necho broken start >&2\\nexit 3\\n' > \(gear.home)/mock/bin/control"])
        let failed = try node.gear(gear, ["start"], stdout: out)
        #expect(failed.status != 0 && failed.stderr.contains("control start of cartridge mock failed (exit 3)") && failed.stderr.contains("broken start"),
                "\(failed.stderr)")
    }
}

