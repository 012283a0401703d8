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
        let node = try BenchNode(label: "ssh-bench", uids: 48900...48999, cgroupRoot: "openshift-ssh-bench", extraSettings: "SYSLOG_GEAR_LOGIN=true\n")
        let (nodeConf, manager, key, plugin, configuration) = (node.nodeConf, node.manager, node.key, node.plugin, node.configuration)
        var created: [Gear] = []
        defer { node.destroy(created) }
        let trapped = try manager.create(GearCreateRequest(uuid: "benchtrap"))
        created.append(trapped)
        let plain = try manager.create(GearCreateRequest(uuid: "benchbash"))
        created.append(plain)
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
