@testable import Agent
import Foundation
import NodeTestSupport
import Testing

@Suite("the broker's key actions: authorized_keys and k5login through cartridge_do")
struct KeyActionTests {
    static func entry(_ fields: KeyValuePairs<String, String>) -> AgentValue {
        .hash(fields.map { .init(.string($0.key), .string($0.value)) })
    }

    func keysDo(_ node: AgentNode, _ action: String, _ uuid: String, _ entries: [AgentValue]?) async -> AgentReply {
        var args: [AgentValue.Pair] = [.init(.string("--with-container-uuid"), .string(uuid))]
        if let entries { args.append(.init(.string("--with-ssh-keys"), .array(entries))) }
        return await node.call("cartridge_do", ["cartridge": .string("mock"), "action": .string(action), "args": .hash(args)])
    }

    @Test("single add writes the key sent (the original wrote an empty one), with its login; remove by --with-ssh-comment")
    func singleKey() async throws {
        let node = try AgentNode()
        defer { node.destroy() }
        _ = await node.cartridgeDo("app-create", ["--with-container-uuid": "keygear2"])
        let file = node.agent.context.layout.gearBaseDir + "/keygear2/.ssh/authorized_keys"
        let add = await node.cartridgeDo("authorized-ssh-key-add", ["--with-container-uuid": "keygear2", "--with-ssh-key": "AAAAC3Nz",
                                                                     "--with-ssh-key-type": "ssh-ed25519", "--with-ssh-key-comment": "u1-laptop",
                                                                     "--with-ssh-key-login": "alice@example.com"])
        #expect(add.statuscode == 0 && add.data["exitcode"] == .int(0) && add.data["output"] == .string(""), "\(add)")
        #expect(TestFiles.read(file) == "command=\"OPENSHIFT_LOGIN=alice@example.com /usr/bin/oo-trap-user\",no-X11-forwarding ssh-ed25519 AAAAC3Nz OPENSHIFT-keygear2-u1-laptop\n")
        let badLogin = await node.cartridgeDo("authorized-ssh-key-add", ["--with-container-uuid": "keygear2", "--with-ssh-key": "BBBB",
                                                                          "--with-ssh-key-type": "ssh-rsa", "--with-ssh-key-login": "a b\nc"])
        #expect(badLogin.data["exitcode"] == .int(1))
        #expect(badLogin.data["output"]?.string?.hasPrefix("invalid ssh key login") == true, "\(badLogin)")
        let remove = await node.cartridgeDo("authorized-ssh-key-remove", ["--with-container-uuid": "keygear2", "--with-ssh-key": "AAAAC3Nz",
                                                                           "--with-ssh-comment": "u1-laptop"])
        #expect(remove.data["exitcode"] == .int(0) && TestFiles.read(file) == "\n")
    }

    @Test("batch add and remove dispatch principals to .k5login; replace sets both; get_all_gears_sshkeys keeps its shape")
    func batches() async throws {
        let node = try AgentNode()
        defer { node.destroy() }
        _ = await node.cartridgeDo("app-create", ["--with-container-uuid": "keygear3"])
        let home = node.agent.context.layout.gearBaseDir + "/keygear3"
        let add = await keysDo(node, "authorized-ssh-key-batch-add", "keygear3", [
            Self.entry(["content": "AAAA", "type": "ssh-rsa", "comment": "u1-a", "login": "alice"]),
            Self.entry(["content": "alice@GEARS.TEST", "type": "krb5-principal", "comment": "u1-k"]),
            Self.entry(["content": "BBBB", "type": "ssh-ed25519", "comment": "domain-b"]),
        ])
        #expect(add.data["exitcode"] == .int(0) && add.data["output"] == .string(""), "\(add)")
        #expect(TestFiles.read(home + "/.ssh/authorized_keys") == """
            command="OPENSHIFT_LOGIN=alice /usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa AAAA OPENSHIFT-keygear3-u1-a
            command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-ed25519 BBBB OPENSHIFT-keygear3-domain-b

            """)
        #expect(TestFiles.read(home + "/.k5login") == "# id: u1-k\nalice@GEARS.TEST\n")

        // md5 of the key bodies (`printf AAAA | md5sum`), as the original reported them.
        let md5 = ["AAAA": "098890dde069e9abad63f19a0d9e1f32", "BBBB": "f50881ced34c7d9e6bce100bf33dec60"]
        let listed = await node.call("get_all_gears_sshkeys")
        #expect(listed.data["output"]?["keygear3"] == .array([.string("OPENSHIFT-keygear3-u1-a::\(md5["AAAA"]!)"),
                                                               .string("OPENSHIFT-keygear3-domain-b::\(md5["BBBB"]!)")]), "\(listed)")

        let hostile = await keysDo(node, "authorized-ssh-key-batch-add", "keygear3", [
            Self.entry(["content": "CCCC", "type": "ssh-rsa", "comment": "ok"]),
            Self.entry(["content": "DDDD", "type": "ssh-rsa", "comment": "x\nssh-rsa EVIL"]),
        ])
        #expect(hostile.data["exitcode"] == .int(1) && hostile.statuscode == 1)
        #expect(TestFiles.read(home + "/.ssh/authorized_keys")?.contains("CCCC") == false, "a refused batch changes nothing")

        let remove = await keysDo(node, "authorized-ssh-key-batch-remove", "keygear3", [
            Self.entry(["content": "AAAA", "type": "ssh-rsa", "comment": "u1-a"]),
            Self.entry(["content": "alice@GEARS.TEST", "type": "krb5-principal", "comment": "u1-k"]),
        ])
        #expect(remove.data["exitcode"] == .int(0), "\(remove)")
        #expect(TestFiles.read(home + "/.ssh/authorized_keys") == "command=\"/usr/bin/oo-trap-user\",no-X11-forwarding ssh-ed25519 BBBB OPENSHIFT-keygear3-domain-b\n")
        #expect(!FileManager.default.fileExists(atPath: home + "/.k5login"))

        let replace = await keysDo(node, "authorized-ssh-keys-replace", "keygear3", [
            Self.entry(["key": "EEEE", "type": "ssh-rsa", "comment": "e"]),
            Self.entry(["key": "bob@GEARS.TEST", "type": "krb5-principal", "comment": "k"]),
        ])
        #expect(replace.data["exitcode"] == .int(0), "\(replace)")
        #expect(TestFiles.read(home + "/.ssh/authorized_keys") == "command=\"/usr/bin/oo-trap-user\",no-X11-forwarding ssh-rsa EEEE OPENSHIFT-keygear3-e\n")
        #expect(TestFiles.read(home + "/.k5login") == "# id: k\nbob@GEARS.TEST\n")

        let incomplete = await keysDo(node, "authorized-ssh-keys-replace", "keygear3", [Self.entry(["key": "FFFF", "comment": "f"])])
        #expect(incomplete.data["exitcode"] == .int(1))
        #expect(incomplete.data["output"]?.string?.contains("do not have the required attributes") == true, "\(incomplete)")
        #expect(TestFiles.read(home + "/.ssh/authorized_keys")?.contains("EEEE") == true)

        let empty = await keysDo(node, "authorized-ssh-keys-replace", "keygear3", nil)
        #expect(empty.data["exitcode"] == .int(0), "\(empty)")
        #expect(TestFiles.read(home + "/.ssh/authorized_keys") == "\n")
        #expect(!FileManager.default.fileExists(atPath: home + "/.k5login"))
        #expect((await node.call("get_all_gears_sshkeys")).data["output"]?["keygear3"] == nil)
    }

    @Test("with k5login_directory, principals go to <dir>/<uuid> and app-destroy removes that file too")
    func k5loginDirectoryAndDestroy() async throws {
        let node = try AgentNode()
        defer { node.destroy() }
        let layout = node.agent.context.layout
        let directory = node.scratch.root + "/k5login.d"
        try TestFiles.write(layout.path("KRB5_CONFIG_FILE"), "[libdefaults]\n    k5login_directory = \(directory)\n")
        _ = await node.cartridgeDo("app-create", ["--with-container-uuid": "keygear4"])
        let add = await keysDo(node, "authorized-ssh-key-batch-add", "keygear4",
                               [Self.entry(["content": "alice@GEARS.TEST", "type": "krb5-principal", "comment": "k"])])
        #expect(add.data["exitcode"] == .int(0), "\(add)")
        #expect(TestFiles.read(directory + "/keygear4") == "# id: k\nalice@GEARS.TEST\n")
        #expect(!FileManager.default.fileExists(atPath: layout.gearBaseDir + "/keygear4/.k5login"))
        let destroyed = await node.cartridgeDo("app-destroy", ["--with-container-uuid": "keygear4"])
        #expect(destroyed.data["exitcode"] == .int(0), "\(destroyed)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/keygear4"), "the gear's principals outlived it")
    }
}
