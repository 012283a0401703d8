import Access
import Agent
import Gears
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Logins through a real sshd to real gear accounts, with keys and principals set through the
/// agent's sub-actions: what users rely on, end to end.
///
/// The sshd here is a minimal private one (loopback port, StrictModes, UsePAM, GSSAPI with the
/// test realm's host keytab). The gear shell is a two-line stand-in that reports OPENSHIFT_LOGIN
/// and the client's command, so these tests do not depend on oo-trap-user.
@Suite("SSH and Kerberos logins to gears, end to end", .serialized)
struct SSHLoginTests {
    static var prerequisitesMet: Bool {
        (Prerequisites.isRoot && KerberosRealm.isInstalled && access("/usr/sbin/sshd", X_OK) == 0) || Prerequisites.inCI
    }

    /// A scratch lab under a root 0755 directory (sshd's StrictModes refuses homes under /tmp).
    final class Lab {
        let root: String
        let base: String
        let shell: String
        var sshd: pid_t?
        let port: Int

        init() throws {
            try TestFiles.makeDirectories("/var/lib/openshift-node-tests")
            chmod("/var/lib/openshift-node-tests", 0o755)
            root = "/var/lib/openshift-node-tests/ssh-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            base = root + "/gears"
            shell = root + "/gear-shell"
            port = Int(HTTPProbe.freePort())
            try TestFiles.makeDirectories(base)
            chmod(root, 0o755)
            chmod(base, 0o755)
            // sshd runs `<shell> -c <forced command>`; the forced command runs the shell again
            // with OPENSHIFT_LOGIN set, which then says who logged in and what was asked.
            try TestFiles.write(shell, """
                #!/bin/sh
                if [ "$1" = "-c" ]; then exec /bin/sh -c "$2"; fi
                echo "gear-shell login=${OPENSHIFT_LOGIN:-none} command=${SSH_ORIGINAL_COMMAND:-none}"

                """, mode: 0o755)
        }

        func startSSHD(realm: KerberosRealm, keytab: String) throws {
            _ = try ProcessRunner.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", root + "/host_key"])
            try TestFiles.write(root + "/sshd_config", """
                Port \(port)
                ListenAddress 127.0.0.1
                HostKey \(root)/host_key
                PidFile \(root)/sshd.pid
                AuthorizedKeysFile .ssh/authorized_keys
                StrictModes yes
                UsePAM yes
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PubkeyAuthentication yes
                GSSAPIAuthentication yes
                GSSAPIStrictAcceptorCheck no
                LogLevel VERBOSE

                """)
            try TestFiles.makeDirectories("/run/sshd")
            sshd = try ProcessRunner.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", root + "/sshd_config"], stdout: root + "/sshd.log",
                                           stderr: root + "/sshd.err",
                                           environment: ["KRB5_CONFIG": realm.configFile, "KRB5_KTNAME": "FILE:" + keytab])
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if acceptsConnections(port) { return }
                usleep(20_000)
            }
            throw TestFiles.Failure(description: "sshd did not listen: \(TestFiles.read(root + "/sshd.err") ?? "")")
        }

        func newKey(_ name: String) throws -> (path: String, type: String, body: String) {
            let path = root + "/" + name
            _ = try ProcessRunner.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path])
            let fields = (TestFiles.read(path + ".pub") ?? "").split(separator: " ").map(String.init)
            return (path, fields[0], fields[1])
        }

        /// `ssh <user>@localhost true` with a key only; the output, or nil when sshd refused.
        func sshWithKey(_ user: String, _ key: String) throws -> String? {
            let result = try ProcessRunner.run(common + ["-i", key, "-o", "IdentitiesOnly=yes", "-o", "PreferredAuthentications=publickey",
                                                         "-o", "GSSAPIAuthentication=no", user + "@localhost", "true"])
            return result.status == 0 ? result.stdout : nil
        }

        /// `ssh` with GSSAPI only, using the tickets in `ccache`; the output, or nil when refused.
        func sshWithKerberos(_ user: String, realm: KerberosRealm, ccache: String) throws -> String? {
            let result = try ProcessRunner.run(common + ["-o", "GSSAPIAuthentication=yes", "-o", "PreferredAuthentications=gssapi-with-mic",
                                                         "-o", "PubkeyAuthentication=no", user + "@localhost", "echo", "kerberos-ok"],
                                               environment: ["KRB5_CONFIG": realm.configFile, "KRB5CCNAME": "FILE:" + ccache])
            return result.status == 0 ? result.stdout : nil
        }

        var common: [String] {
            ["/usr/bin/ssh", "-n", "-p", "\(port)", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "StrictHostKeyChecking=no", "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]
        }

        func stop() {
            if let sshd {
                kill(sshd, SIGTERM)
                _ = ProcessRunner.wait(sshd)
            }
            TestFiles.remove(root)
        }
    }

    func agent(_ node: KeysNode, krb5Config: String) -> OpenShiftAgent {
        let layout = PathLayout(configuration: node.configuration,
                                overrides: ["GEAR_BASE_DIR": node.manager.gearBaseDir, "KRB5_CONFIG_FILE": krb5Config])
        return OpenShiftAgent(context: NodeContext(layout: layout, repository: node.repository, gears: node.manager, frontend: nil,
                                                   identity: "node.test"),
                              pool: BlockingPool(size: 2))
    }

    func keysDo(_ agent: OpenShiftAgent, _ action: String, _ uuid: String, _ entries: [[String: String]]) async -> AgentReply {
        let list = AgentValue.array(entries.map { entry in .hash(entry.sorted { $0.key < $1.key }.map { .init(.string($0.key), .string($0.value)) }) })
        return await agent.handle(AgentRequest(action: "cartridge_do", data: .symbols([
            "cartridge": .string("mock"), "action": .string(action),
            "args": .hash([.init(.string("--with-container-uuid"), .string(uuid)), .init(.string("--with-ssh-keys"), list)]),
        ])))
    }

    @Test("a key added through the agent logs in to its gear only, with its login; once removed it no longer does",
          .enabled(if: prerequisitesMet), .timeLimit(.minutes(3)))
    func keyLogin() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let lab = try Lab()
        defer { lab.stop() }
        let realm = try KerberosRealm.start()
        defer { realm.stop() }
        try realm.addHostKeytab("localhost", path: realm.directory + "/sshd.keytab")
        let node = try KeysNode("selinux", base: lab.base, shell: lab.shell, krb5Config: realm.configFile)
        defer { node.destroy() }
        let agent = agent(node, krb5Config: realm.configFile)
        try lab.startSSHD(realm: realm, keytab: realm.directory + "/sshd.keytab")
        let first = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let second = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let alice = try lab.newKey("alice"), bob = try lab.newKey("bob")

        #expect(try lab.sshWithKey(first.uuid, alice.path) == nil, "no key yet")
        let added = await keysDo(agent, "authorized-ssh-key-batch-add", first.uuid,
                                 [["content": alice.body, "type": alice.type, "comment": "u1-laptop", "login": "alice@example.com"]])
        #expect(added.data["exitcode"] == .int(0), "\(added)")
        _ = await keysDo(agent, "authorized-ssh-key-batch-add", second.uuid, [["content": bob.body, "type": bob.type, "comment": "u2-desk"]])

        #expect(try lab.sshWithKey(first.uuid, alice.path) == "gear-shell login=alice@example.com command=true\n",
                "\(TestFiles.read(lab.root + "/sshd.err") ?? "")")
        #expect(try lab.sshWithKey(second.uuid, alice.path) == nil, "alice's key opened another gear")
        #expect(try lab.sshWithKey(first.uuid, bob.path) == nil, "the second gear's key opened the first gear")
        #expect(try lab.sshWithKey(second.uuid, bob.path) == "gear-shell login=none command=true\n")

        let removed = await keysDo(agent, "authorized-ssh-key-batch-remove", first.uuid, [["content": alice.body, "type": alice.type, "comment": "u1-laptop"]])
        #expect(removed.data["exitcode"] == .int(0), "\(removed)")
        #expect(try lab.sshWithKey(first.uuid, alice.path) == nil, "a removed key still logs in")
        #expect(try lab.sshWithKey(second.uuid, bob.path) != nil)
    }

    @Test("a principal added through the agent logs in with GSSAPI; removed (or replaced by none) it no longer does; both k5login locations",
          .enabled(if: prerequisitesMet), .timeLimit(.minutes(3)))
    func kerberosLogin() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let lab = try Lab()
        defer { lab.stop() }
        let realm = try KerberosRealm.start()
        defer { realm.stop() }
        try realm.addPrincipal("alice", password: "alice-password")
        try realm.addHostKeytab("localhost", path: realm.directory + "/sshd.keytab")
        let node = try KeysNode("selinux", base: lab.base, shell: lab.shell, krb5Config: realm.configFile)
        defer { node.destroy() }
        let agent = agent(node, krb5Config: realm.configFile)
        try lab.startSSHD(realm: realm, keytab: realm.directory + "/sshd.keytab")
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let ccache = realm.directory + "/alice.ccache"
        let kinit = try realm.kinit("alice", password: "alice-password", ccache: ccache)
        try #require(kinit.status == 0, "\(kinit.stderr)")
        let login = { try lab.sshWithKerberos(gear.uuid, realm: realm, ccache: ccache) }
        let principal = ["content": "alice@GEARS.TEST", "type": "krb5-principal", "comment": "u1-kerberos"]

        #expect(try login() == nil, "alice logged in before her principal was added")
        #expect((await keysDo(agent, "authorized-ssh-key-batch-add", gear.uuid, [principal])).data["exitcode"] == .int(0))
        #expect(TestFiles.read(gear.home + "/.k5login") == "# id: u1-kerberos\nalice@GEARS.TEST\n")
        #expect(try login() == "kerberos-ok\n", "\(TestFiles.read(lab.root + "/sshd.err") ?? "")")
        #expect((await keysDo(agent, "authorized-ssh-key-batch-remove", gear.uuid, [principal])).data["exitcode"] == .int(0))
        #expect(access(gear.home + "/.k5login", F_OK) != 0)
        #expect(try login() == nil, "alice still logs in after removal")

        // The same with k5login_directory in the configuration both sshd and the node read.
        let directory = lab.root + "/k5login.d"
        let config = TestFiles.read(realm.configFile) ?? ""
        try #require(config.hasPrefix("[libdefaults]\n"))
        try TestFiles.write(realm.configFile, "[libdefaults]\n    k5login_directory = \(directory)\n" + config.dropFirst("[libdefaults]\n".count))
        #expect((await keysDo(agent, "authorized-ssh-key-batch-add", gear.uuid, [principal])).data["exitcode"] == .int(0))
        #expect(TestFiles.read(directory + "/" + gear.uuid) == "# id: u1-kerberos\nalice@GEARS.TEST\n")
        #expect(try login() == "kerberos-ok\n", "\(TestFiles.read(lab.root + "/sshd.err") ?? "")")
        let replaced = await agent.handle(AgentRequest(action: "cartridge_do", data: .symbols([
            "cartridge": .string("mock"), "action": .string("authorized-ssh-keys-replace"),
            "args": .hash([.init(.string("--with-container-uuid"), .string(gear.uuid))]),
        ])))
        #expect(replaced.data["exitcode"] == .int(0), "\(replaced)")
        #expect(access(directory + "/" + gear.uuid, F_OK) != 0)
        #expect(try login() == nil, "alice still logs in after replace with no keys")
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
func acceptsConnections(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = UInt16(port).bigEndian
    address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
