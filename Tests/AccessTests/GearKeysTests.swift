@testable import Access
import Containment
import Dispatch
import Gears
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("a gear's keys and principals, through the gear's files")
struct GearKeysTests {
    let line = { (body: String, uuid: String, comment: String) in
        "command=\"/usr/bin/oo-trap-user\",no-X11-forwarding ssh-rsa \(body) OPENSHIFT-\(uuid)-\(comment)"
    }

    @Test("batch add, remove and replace write the original's file; principals go to ~/.k5login")
    func dispatch() throws {
        let node = try KeysNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let keysFile = gear.home + "/.ssh/authorized_keys", k5login = gear.home + "/.k5login"

        try node.keys.add(gear.uuid, [key("AAAA", "a"), principal("alice@GEARS.TEST", "pa"), key("BBBB", "b", login: "bob@example.com")])
        #expect(TestFiles.read(keysFile) == line("AAAA", gear.uuid, "a") + "\n"
                + "command=\"OPENSHIFT_LOGIN=bob@example.com /usr/bin/oo-trap-user\",no-X11-forwarding ssh-rsa BBBB OPENSHIFT-\(gear.uuid)-b\n")
        #expect(TestFiles.read(k5login) == "# id: pa\nalice@GEARS.TEST\n")
        #expect(!(TestFiles.read(keysFile) ?? "").contains("alice"))

        try node.keys.add(gear.uuid, [key("CCCC", "a")])
        #expect(try node.keys.authorizedKeys(gear).lines == [line("CCCC", gear.uuid, "a"),
                "command=\"OPENSHIFT_LOGIN=bob@example.com /usr/bin/oo-trap-user\",no-X11-forwarding ssh-rsa BBBB OPENSHIFT-\(gear.uuid)-b"])

        try node.keys.remove(gear.uuid, [KeyEntry(type: "ssh-rsa", content: nil, comment: "b"), principal("alice@GEARS.TEST", "pa")])
        #expect(TestFiles.read(keysFile) == line("CCCC", gear.uuid, "a") + "\n")
        #expect(access(k5login, F_OK) != 0, "no principal left: the file is deleted")

        try node.keys.remove(gear.uuid, [KeyEntry(type: nil, content: "CCCC", comment: nil)])
        #expect(TestFiles.read(keysFile) == "\n")

        try node.keys.replace(gear.uuid, [key("DDDD", "d"), principal("bob@GEARS.TEST", "pb")])
        #expect(TestFiles.read(keysFile) == line("DDDD", gear.uuid, "d") + "\n")
        #expect(TestFiles.read(k5login) == "# id: pb\nbob@GEARS.TEST\n")
        try node.keys.replace(gear.uuid, [])
        #expect(TestFiles.read(keysFile) == "\n")
        #expect(access(k5login, F_OK) != 0)
    }

    @Test("a refused entry anywhere in a batch changes nothing, and the error names the field")
    func badInputChangesNothing() throws {
        let node = try KeysNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        try node.keys.add(gear.uuid, [key("AAAA", "a"), principal("alice@R", "pa")])
        let before = (TestFiles.read(gear.home + "/.ssh/authorized_keys"), TestFiles.read(gear.home + "/.k5login"))
        let batches: [([KeyEntry], String)] = [
            ([key("BBBB", "b"), key("CC\nssh-rsa DD", "c")], "invalid ssh key '"),
            ([key("BBBB", "b"), key("CCCC", "c", login: "x\"y")], "invalid ssh key login"),
            ([key("BBBB", "b", type: "ssh-rsa,command=\"sh\"")], "invalid ssh key type"),
            ([key("BB BB", "b")], "invalid ssh key '"),
            ([key("BBBB", "b c")], "invalid ssh key comment"),
            ([key("BBBB", "b"), principal("bob@R\n# id: x", "pb")], "invalid Kerberos principal"),
            ([principal("bob@R", "p b")], "invalid ssh key comment"),
        ]
        for (batch, message) in batches {
            for change in [node.keys.add, node.keys.replace] {
                do { try change(gear.uuid, batch); Issue.record("\(batch) accepted") } catch {
                    #expect(error.description.hasPrefix(message), "\(error)")
                }
            }
        }
        do { try node.keys.replace(gear.uuid, [KeyEntry(type: nil, content: "AAAA", comment: "x")]); Issue.record("no type accepted") } catch {
            #expect(error.description.contains("do not have the required attributes"))
        }
        do { try node.keys.replace(gear.uuid, [KeyEntry(type: "ssh-rsa", content: nil, comment: "x")]); Issue.record("no key accepted") } catch {
            #expect(error.description.contains("do not have the required attributes"))
        }
        #expect((TestFiles.read(gear.home + "/.ssh/authorized_keys"), TestFiles.read(gear.home + "/.k5login")) == before)
        #expect(throws: AccessError.self) { try node.keys.add("no/such", [key("AAAA", "a")]) }
        #expect(throws: AccessError.self) { try node.keys.add("nosuchgear", [key("AAAA", "a")]) }
    }

    @Test("concurrent changes of one gear's keys are serialised by the gear's lock: none is lost", .timeLimit(.minutes(3)))
    func concurrentAdds() throws {
        let node = try KeysNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let keys = node.keys
        DispatchQueue.concurrentPerform(iterations: 16) { index in
            let body = "AAAA" + String(repeating: "B", count: index + 1)
            try? keys.add(gear.uuid, [key(body, "k\(index)"), principal("user\(index)@GEARS.TEST", "p\(index)")])
        }
        #expect(Set(try node.keys.authorizedKeys(gear).ids) == Set((0..<16).map { "OPENSHIFT-\(gear.uuid)-k\($0)" }))
        #expect(Set(try node.keys.k5login(gear.uuid).principals) == Set((0..<16).map { "user\($0)@GEARS.TEST" }))
    }

    @Test("with k5login_directory in [libdefaults], principals go to <dir>/<uuid>, and the file goes with the gear")
    func k5loginDirectory() throws {
        let node = try KeysNode("sandbox")
        defer { node.destroy() }
        let directory = node.scratch.root + "/k5login.d"
        try node.setK5LoginDirectory(directory)
        #expect(try node.keys.k5loginLocation() == .directory(directory))
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        try node.keys.add(gear.uuid, [principal("alice@GEARS.TEST", "pa"), principal("alice@GEARS.TEST", "pb")])
        #expect(TestFiles.read(directory + "/" + gear.uuid) == "# id: pa\n# id: pb\nalice@GEARS.TEST\n")
        #expect(access(gear.home + "/.k5login", F_OK) != 0)
        try node.keys.remove(gear.uuid, [principal("alice@GEARS.TEST", "pa")])
        #expect(try node.keys.k5login(gear.uuid).owners(of: "alice@GEARS.TEST") == ["pb"])
        try node.keys.remove(gear.uuid, [principal("alice@GEARS.TEST", "pb")])
        #expect(access(directory + "/" + gear.uuid, F_OK) != 0)
        try node.keys.add(gear.uuid, [principal("bob@GEARS.TEST", nil)])
        _ = try node.manager.destroy(gear.uuid)
        try node.keys.forget(gear.uuid)
        #expect(access(directory + "/" + gear.uuid, F_OK) != 0)

        try node.setK5LoginDirectory(nil)
        #expect(try node.keys.k5loginLocation() == .home)
    }

    @Test("node mode: both files are root's with the gear's group; the gear reads them and can change neither",
          .enabled(if: Prerequisites.rootOrCI), .timeLimit(.minutes(3)))
    func nodeModeOwnership() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try KeysNode("selinux")
        defer { node.destroy() }
        let directory = node.scratch.root + "/k5login.d"
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let other = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        try node.keys.add(gear.uuid, [key("AAAA", "a"), principal("alice@GEARS.TEST", "pa")])
        try node.setK5LoginDirectory(directory)
        try node.keys.add(gear.uuid, [principal("bob@GEARS.TEST", "pb")])
        let files = [gear.home + "/.ssh/authorized_keys", gear.home + "/.k5login", directory + "/" + gear.uuid]
        let expected: [UInt32] = [0o440, 0o640, 0o640]
        for (file, mode) in zip(files, expected) {
            let found = ownership(file)
            #expect(found?.owner == 0 && found?.group == gear.identity.gid && found?.mode == mode, "\(file): \(String(describing: found))")
        }
        for file in files {
            let read = try asUser(gear, ["/bin/cat", file])
            #expect(read.status == 0 && !read.stdout.isEmpty, "\(file): \(read.stderr)")
            let append = try asUser(gear, ["/bin/sh", "-c", "echo 'ssh-ed25519 EVIL OPENSHIFT-x-y' >> \"$1\"", "sh", file])
            #expect(append.status != 0, "the gear wrote \(file)")
            let replace = try asUser(gear, ["/bin/sh", "-c", "echo evil > \"$1.new\" && mv -f \"$1.new\" \"$1\"", "sh", file])
            #expect(replace.status != 0, "the gear replaced \(file)")
            let stranger = try asUser(other, ["/bin/cat", file])
            #expect(stranger.status != 0, "another gear read \(file)")
        }
        #expect(TestFiles.read(files[0]) == "command=\"/usr/bin/oo-trap-user\",no-X11-forwarding ssh-rsa AAAA OPENSHIFT-\(gear.uuid)-a\n")
    }

    /// Runs argv as the gear's user and group only (no capability, no supplementary group).
    func asUser(_ gear: Gear, _ argv: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.run(["/usr/bin/setpriv", "--reuid=\(gear.identity.uid)", "--regid=\(gear.identity.gid)", "--clear-groups",
                               "--inh-caps=-all", "--bounding-set=-all", "--"] + argv, environment: ["PATH": "/usr/bin:/bin"])
    }
}
