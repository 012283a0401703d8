import Access
import Agent
import Gears
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Logins through a real sshd (NodeTestSupport.SSHServer) to real gear accounts, with keys and
/// principals set through the agent's sub-actions: what users rely on, end to end.
///
/// The gear shell is a two-line stand-in that reports OPENSHIFT_LOGIN and the client's command,
/// so these tests check who gets in, not what oo-trap-user then allows (its own tests do).
@Suite("SSH and Kerberos logins to gears, end to end", .serialized)
struct SSHLoginTests {
    static var prerequisitesMet: Bool {
        (Prerequisites.isRoot && KerberosRealm.isInstalled && SSHServer.isInstalled) || Prerequisites.inCI
    }

    /// A realm with a host keytab for the names the client may use, an sshd that reads it, and a
    /// gear base under a root 0755 directory (StrictModes refuses homes under /tmp).
    final class Lab {
        let root: String
        let base: String
        let shell: String
        let realm: KerberosRealm
        let server: SSHServer

        /// A node.conf for the gear shell (`OPENSHIFT_NODE_CONF`, set by sshd).
        var nodeConf: String { root + "/node.conf" }

        init() throws {
            root = try SSHServer.scratchDirectory("access")
            base = root + "/gears"
            shell = root + "/gear-shell"
            try TestFiles.makeDirectories(base)
            chmod(base, 0o755)
            // sshd runs `<shell> -c <forced command>`; the forced command runs the shell again
            // with OPENSHIFT_LOGIN set, which then says who logged in and what was asked.
            try TestFiles.write(shell, """
                #!/bin/sh
                if [ "$1" = "-c" ]; then exec /bin/sh -c "$2"; fi
                echo "gear-shell login=${OPENSHIFT_LOGIN:-none} command=${SSH_ORIGINAL_COMMAND:-none}"

                """, mode: 0o755)
            realm = try KerberosRealm.start()
            let keytab = realm.directory + "/sshd.keytab"
            try realm.addHostKeytab("localhost", path: keytab)
            try realm.addHostKeytab("127.0.0.1", path: keytab)
            // The trap's cgroup root is not the test gears' (joining it is GearSSHTests' subject);
            // who may log in is what is tested here.
            try TestFiles.write(root + "/node.conf", "GEAR_BASE_DIR=\(base)\nOPENSHIFT_CGROUP_ROOT=openshift-node-tests-access-none\nSYSLOG_GEAR_LOGIN=false\n")
            server = try SSHServer.start(nodeConf: root + "/node.conf",
                                         environment: ["KRB5_CONFIG": realm.configFile, "KRB5_KTNAME": "FILE:" + keytab])
        }

        func newKey(_ name: String) throws -> (path: String, type: String, body: String) {
            try SSHServer.generateKey(in: root, name: name)
        }

        /// `ssh <user>@127.0.0.1 true` with a key only; the output, or nil when sshd refused.
        func sshWithKey(_ user: String, _ key: String) throws -> String? {
            let result = try sshResult(user, key, "true")
            return result.status == 0 ? result.stdout : nil
        }

        func sshResult(_ user: String, _ key: String, _ command: String) throws -> ProcessRunner.Result {
            try server.ssh(user: user, key: key, command: command,
                           options: ["-n", "-o", "PreferredAuthentications=publickey", "-o", "GSSAPIAuthentication=no"])
        }

        /// `ssh` with GSSAPI only, using the tickets in `ccache`; the output, or nil when refused.
        func sshWithKerberos(_ user: String, ccache: String, key: String, command: String = "echo kerberos-ok") throws -> String? {
            let result = try kerberosResult(user, ccache: ccache, key: key, command: command)
            return result.status == 0 ? result.stdout : nil
        }

        func kerberosResult(_ user: String, ccache: String, key: String, command: String) throws -> ProcessRunner.Result {
            try server.ssh(user: user, key: key, command: command,
                                        options: ["-n", "-o", "GSSAPIAuthentication=yes", "-o", "PreferredAuthentications=gssapi-with-mic",
                                                  "-o", "PubkeyAuthentication=no"],
                                        environment: ["KRB5_CONFIG": realm.configFile, "KRB5CCNAME": "FILE:" + ccache])
        }

        func stop() {
            server.stop()
            realm.stop()
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
        let node = try KeysNode("selinux", base: lab.base, shell: lab.shell, krb5Config: lab.realm.configFile)
        defer { node.destroy() }
        let agent = agent(node, krb5Config: lab.realm.configFile)
        let first = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let second = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let alice = try lab.newKey("alice"), bob = try lab.newKey("bob")

        #expect(try lab.sshWithKey(first.uuid, alice.path) == nil, "no key yet")
        let added = await keysDo(agent, "authorized-ssh-key-batch-add", first.uuid,
                                 [["content": alice.body, "type": alice.type, "comment": "u1-laptop", "login": "alice@example.com"]])
        #expect(added.data["exitcode"] == .int(0), "\(added)")
        _ = await keysDo(agent, "authorized-ssh-key-batch-add", second.uuid, [["content": bob.body, "type": bob.type, "comment": "u2-desk"]])

        #expect(try lab.sshWithKey(first.uuid, alice.path) == "gear-shell login=alice@example.com command=true\n",
                "\(lab.server.logTail())")
        #expect(try lab.sshWithKey(second.uuid, alice.path) == nil, "alice's key opened another gear")
        #expect(try lab.sshWithKey(first.uuid, bob.path) == nil, "the second gear's key opened the first gear")
        #expect(try lab.sshWithKey(second.uuid, bob.path) == "gear-shell login=none command=true\n")

        let removed = await keysDo(agent, "authorized-ssh-key-batch-remove", first.uuid, [["content": alice.body, "type": alice.type, "comment": "u1-laptop"]])
        #expect(removed.data["exitcode"] == .int(0), "\(removed)")
        #expect(try lab.sshWithKey(first.uuid, alice.path) == nil, "a removed key still logs in")
        #expect(try lab.sshWithKey(second.uuid, bob.path) != nil)
    }

    @Test("with the real oo-trap-user as the gear shell, a key added through the agent runs the trap's commands; removed, sshd refuses",
          .enabled(if: prerequisitesMet), .timeLimit(.minutes(3)))
    func keyLoginThroughTrap() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let trap = ProcessRunner.executable("oo-trap-user")
        try #require(access(trap, X_OK) == 0, "build oo-trap-user first")
        let lab = try Lab()
        defer { lab.stop() }
        let node = try KeysNode("selinux", base: lab.base, shell: trap, krb5Config: lab.realm.configFile)
        defer { node.destroy() }
        let agent = agent(node, krb5Config: lab.realm.configFile)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let alice = try lab.newKey("alice")
        #expect(try lab.sshResult(gear.uuid, alice.path, "true").status == 255, "no key yet")
        let added = await keysDo(agent, "authorized-ssh-key-batch-add", gear.uuid,
                                 [["content": alice.body, "type": alice.type, "comment": "u1-laptop", "login": "alice@example.com"]])
        #expect(added.data["exitcode"] == .int(0), "\(added)")
        let allowed = try lab.sshResult(gear.uuid, alice.path, "true")
        #expect(allowed.status == 0, "\(allowed.stderr)\n\(lab.server.logTail())")
        let refused = try lab.sshResult(gear.uuid, alice.path, "cat /etc/shadow")
        #expect(refused.status == 126, "the trap, not a shell, ran the command: \(refused.stderr)")
        _ = await keysDo(agent, "authorized-ssh-keys-replace", gear.uuid, [])
        #expect(try lab.sshResult(gear.uuid, alice.path, "true").status == 255, "a replaced-away key still logs in")
    }

    @Test("with the real oo-trap-user, a Kerberos login runs the trap's commands only and cannot claim a login",
          .enabled(if: prerequisitesMet), .timeLimit(.minutes(3)))
    func kerberosLoginThroughTrap() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let trap = ProcessRunner.executable("oo-trap-user")
        try #require(access(trap, X_OK) == 0, "build oo-trap-user first")
        let lab = try Lab()
        defer { lab.stop() }
        try lab.realm.addPrincipal("alice", password: "alice-password")
        let node = try KeysNode("selinux", base: lab.base, shell: trap, krb5Config: lab.realm.configFile)
        defer { node.destroy() }
        let agent = agent(node, krb5Config: lab.realm.configFile)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let ccache = lab.realm.directory + "/alice.ccache"
        try #require(try lab.realm.kinit("alice", password: "alice-password", ccache: ccache).status == 0)
        let key = try lab.newKey("unused")
        let principal = ["content": "alice@GEARS.TEST", "type": "krb5-principal", "comment": "u1-kerberos"]
        #expect((await keysDo(agent, "authorized-ssh-key-batch-add", gear.uuid, [principal])).data["exitcode"] == .int(0))
        let allowed = try lab.kerberosResult(gear.uuid, ccache: ccache, key: key.path, command: "true")
        #expect(allowed.status == 0, "\(allowed.stderr)\n\(lab.server.logTail())")
        let refused = try lab.kerberosResult(gear.uuid, ccache: ccache, key: key.path, command: "cat /etc/shadow")
        #expect(refused.status == 126 && refused.stdout.isEmpty, "the trap, not a shell, ran the command: \(refused.stderr)")
        // The forced command's form sent as a Kerberos command: the trap's interactive shell, which
        // reads its commands from stdin here, with no login claimed.
        let script = lab.root + "/who.sh"
        try TestFiles.write(script, "echo \"login=${OPENSHIFT_LOGIN-unset}\"\n", mode: 0o644)
        let claimed = try lab.server.ssh(user: gear.uuid, key: key.path, command: "OPENSHIFT_LOGIN=mallory \(trap)", stdin: script,
                                         options: ["-T", "-o", "GSSAPIAuthentication=yes", "-o", "PreferredAuthentications=gssapi-with-mic",
                                                   "-o", "PubkeyAuthentication=no"],
                                         environment: ["KRB5_CONFIG": lab.realm.configFile, "KRB5CCNAME": "FILE:" + ccache])
        #expect(claimed.stdout.contains("login=unset"), "\(claimed.status) \(claimed.stdout) \(claimed.stderr)")
    }

    @Test("a principal added through the agent logs in with GSSAPI; removed (or replaced by none) it no longer does; both k5login locations",
          .enabled(if: prerequisitesMet), .timeLimit(.minutes(3)))
    func kerberosLogin() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let lab = try Lab()
        defer { lab.stop() }
        let realm = lab.realm
        try realm.addPrincipal("alice", password: "alice-password")
        let node = try KeysNode("selinux", base: lab.base, shell: lab.shell, krb5Config: realm.configFile)
        defer { node.destroy() }
        let agent = agent(node, krb5Config: realm.configFile)
        let unauthorizedKey = try lab.newKey("unused")
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("s")))
        let ccache = realm.directory + "/alice.ccache"
        let kinit = try realm.kinit("alice", password: "alice-password", ccache: ccache)
        try #require(kinit.status == 0, "\(kinit.stderr)")
        let login = { try lab.sshWithKerberos(gear.uuid, ccache: ccache, key: unauthorizedKey.path) }
        let principal = ["content": "alice@GEARS.TEST", "type": "krb5-principal", "comment": "u1-kerberos"]

        #expect(try login() == nil, "alice logged in before her principal was added")
        #expect((await keysDo(agent, "authorized-ssh-key-batch-add", gear.uuid, [principal])).data["exitcode"] == .int(0))
        #expect(TestFiles.read(gear.home + "/.k5login") == "# id: u1-kerberos\nalice@GEARS.TEST\n")
        #expect(try login() == "kerberos-ok\n", "\(lab.server.logTail())")
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
        #expect(try login() == "kerberos-ok\n", "\(lab.server.logTail())")
        let replaced = await agent.handle(AgentRequest(action: "cartridge_do", data: .symbols([
            "cartridge": .string("mock"), "action": .string("authorized-ssh-keys-replace"),
            "args": .hash([.init(.string("--with-container-uuid"), .string(gear.uuid))]),
        ])))
        #expect(replaced.data["exitcode"] == .int(0), "\(replaced)")
        #expect(access(directory + "/" + gear.uuid, F_OK) != 0)
        #expect(try login() == nil, "alice still logs in after replace with no keys")
    }
}
