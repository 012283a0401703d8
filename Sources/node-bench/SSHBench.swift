import Access
import ArgumentParser
import Cartridges
import Containment
import Gears
import Logging
import NodeConfig
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench ssh --count N` (root): login-to-command latency of `ssh <gear> true` through the
/// gear shell (`oo-trap-user`, beside this executable: forced command, clean environment built
/// from the gear's files, cgroup join, no_new_privs, syslog line) against a second gear of the
/// same node whose login shell is `/bin/bash` (a plain key, sshd runs `bash -c true`). Same
/// private sshd, same run, the two logins alternating so that load affects both alike.
struct SSHBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ssh", abstract: "ssh gear true: through oo-trap-user vs /bin/bash as the shell; medians and p90.")

    @Option(help: "Logins per shell.") var count = 100

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("node-bench ssh needs root (real gear accounts and an sshd)") }
        guard SSHServer.isInstalled else { throw ValidationError("OpenSSH is not installed (apt-get install openssh-server openssh-client)") }
        let work = try SSHServer.scratchDirectory("ssh-bench")
        defer { TestFiles.remove(work) }
        let bin = work + "/bin"
        mkdir(bin, 0o755)
        let trap = bin + "/oo-trap-user"
        try TestFiles.write(trap, bytes: try FileSystem.readBytes(siblingPath("oo-trap-user"), limit: 64 << 20), mode: 0o755)
        chmod(trap, 0o755)
        let nodeConf = work + "/node.conf"
        let gearBase = work + "/gears"
        let settings = "GEAR_BASE_DIR=\(gearBase)\nGEAR_MIN_UID=48900\nGEAR_MAX_UID=48999\nGEAR_SHELL=\(trap)\n"
            + "OPENSHIFT_CGROUP_ROOT=openshift-ssh-bench\nSYSLOG_GEAR_LOGIN=true\n"
        try TestFiles.write(nodeConf, settings)
        let configuration = try NodeConfiguration(parsing: settings, file: nodeConf)
        mkdir(gearBase, 0o755)
        chmod(gearBase, 0o755)
        let cartridges = String(#filePath.split(separator: "/Sources/", omittingEmptySubsequences: false)[0]) + "/cartridges"
        let repository = CartridgeRepository(configuration: .init(path: work + "/repository", cartridgeBasePath: cartridges))
        _ = repository.rescan()
        let plugin = SELinuxContainer(configuration: configuration, gearBaseDir: gearBase, limits: ResourceLimits(),
                                      gearExec: siblingPath("oo-gear-exec"))
        var quiet = Logger(label: "node-bench")
        quiet.logLevel = .warning
        let manager = GearManager(configuration: configuration, gearBaseDir: gearBase, plugin: plugin, repository: repository, logger: quiet)
        let client = work + "/client"
        mkdir(client, 0o700)
        let key = try SSHServer.generateKey(in: client)
        let trapped = try manager.create(GearCreateRequest(uuid: "benchtrap"))
        let plain = try manager.create(GearCreateRequest(uuid: "benchbash"))
        defer {
            _ = try? manager.destroy(trapped.uuid)
            _ = try? manager.destroy(plain.uuid)
            if let hierarchy = CgroupHierarchy.detect(), let parent = try? GearCgroup(hierarchy: hierarchy, parent: "", name: "openshift-ssh-bench") {
                for directory in parent.directories { rmdir(directory) }
            }
        }
        try GearKeys(gears: manager, kerberosConfigFile: configuration.string("KRB5_CONFIG_FILE"))
            .add(trapped.uuid, [KeyEntry(type: key.type, content: key.body, comment: "bench")])
        // The baseline: bash as the login shell, a key without forced command.
        let usermod = try ProcessRunner.run(["/usr/sbin/usermod", "-s", "/bin/bash", plain.uuid])
        guard usermod.status == 0 else { throw ValidationError("usermod -s /bin/bash \(plain.uuid): \(usermod.stderr)") }
        try plugin.home(plain.identity).write(".ssh/authorized_keys", "\(key.type) \(key.body) bench\n", mode: 0o640, owner: .root)

        let server = try SSHServer.start(nodeConf: nodeConf)
        defer { server.stop() }
        let clock = ContinuousClock()
        func login(_ gear: Gear) throws -> Double {
            var result: ProcessRunner.Result?
            let elapsed = try clock.measure { result = try server.ssh(user: gear.uuid, key: key.path, command: "true") }
            guard result?.status == 0 else {
                throw ValidationError("ssh \(gear.uuid) true failed (\(result?.status ?? -1)): \(result?.stderr ?? "")\n\(server.logTail())")
            }
            return seconds(elapsed)
        }
        _ = try login(trapped)   // host key accepted, caches warm
        _ = try login(plain)
        var throughTrap: [Double] = []
        var throughBash: [Double] = []
        for _ in 0..<count {
            throughTrap.append(try login(trapped))
            throughBash.append(try login(plain))
        }
        var cgroups = "no cgroups"
        switch CgroupHierarchy.detect() {
        case .v1?: cgroups = "cgroup v1 (joined by the gear shell)"
        case .v2?: cgroups = "cgroup v2 (not joined)"
        case nil: break
        }
        print("node-bench ssh: `ssh <gear> true`, \(count) logins each, alternating, private sshd on 127.0.0.1:\(server.port), "
            + "ed25519 key, \(cgroups)")
        report("oo-trap-user", throughTrap)
        report("/bin/bash", throughBash)
        let difference = median(throughTrap) - median(throughBash)
        print(pad("difference", 16) + "median \(difference >= 0 ? "+" : "-")\(format(abs(difference))) for the gear shell")
    }

    func report(_ label: String, _ values: [Double]) {
        let sorted = values.sorted()
        let p90 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
        print(pad(label, 16) + "median \(format(median(values)))  p90 \(format(p90))  min \(format(sorted.first ?? 0))  (n=\(values.count))")
    }
}
