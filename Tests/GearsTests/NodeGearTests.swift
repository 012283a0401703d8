import Containment
import Gears
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Gears as real Unix accounts (node mode). CI runs as root; elsewhere these skip, and under
/// CI=true they fail if not root.
@Suite("gears in node mode", .enabled(if: Prerequisites.rootOrCI), .serialized)
struct NodeGearTests {
    @Test("create: account, home layout, owners and modes, MCS label; a process as the gear has its uid, its cgroup and no capability",
          .timeLimit(.minutes(3)))
    func create() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let account = try #require(UnixAccounts.user(named: gear.uuid))
        #expect(account.uid == gear.identity.uid && account.gid == gear.identity.uid)
        #expect(account.gecos == "OpenShift guest" && account.home == gear.home)
        #expect(UnixAccounts.groupExists(named: gear.uuid))
        #expect(gear.identity.uid >= 46000 && gear.identity.uid <= 46999)
        #expect(gear.identity.mcsLabel == (try MCSLabel(uid: Int(gear.identity.uid))))
        let uid = gear.identity.uid
        #expect(mode(gear.home)! == (0, uid, 0o750))
        #expect(mode(gear.home + "/.env")! == (0, uid, 0o750))
        #expect(mode(gear.home + "/.env/OPENSHIFT_GEAR_UUID")! == (0, uid, 0o644))
        #expect(mode(gear.home + "/app-root")! == (0, uid, 0o750))
        #expect(mode(gear.home + "/app-root/data")! == (uid, uid, 0o750))
        #expect(mode(gear.home + "/app-root/runtime/.state")! == (uid, uid, 0o660))
        let status = node.manager.status(gear)
        #expect(status.mcsLabel == gear.identity.mcsLabel?.description)
        #expect(status.selinux == (SELinux.isEnabled ? "enabled" : "disabled"))

        let result = try node.runAs(gear, ["/bin/sh", "-c", "cat /proc/self/status; echo; cat /proc/self/cgroup; id -u"])
        #expect(result.status == 0, "\(result.stderr)")
        let sets = try #require(Capabilities.Sets(status: result.stdout))
        #expect(sets.effective == 0 && sets.permitted == 0 && sets.bounding == 0)
        #expect(result.stdout.hasSuffix("\(uid)\n"))
        #expect(result.stdout.contains("/openshift-node-tests/\(gear.uuid)\n"))
    }

    @Test("gear A cannot read gear B's files")
    func isolation() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let a = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("a")))
        let b = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("b")))
        #expect(try node.runAs(a, ["/bin/cat", a.home + "/.env/OPENSHIFT_GEAR_UUID"]).stdout == a.uuid)
        let read = try node.runAs(a, ["/bin/cat", b.home + "/.env/OPENSHIFT_GEAR_UUID"])
        #expect(read.status != 0 && read.stdout.isEmpty)
        let list = try node.runAs(a, ["/bin/ls", b.home])
        #expect(list.status != 0)
        let write = try node.runAs(a, ["/bin/sh", "-c", "echo x > \(b.home)/app-root/data/x"])
        #expect(write.status != 0 && !TestFiles.exists(b.home + "/app-root/data/x"))
    }

    @Test("python: configure, start, an HTTP answer on the gear's IP and port, stop closes it; destroy leaves no trace",
          .timeLimit(.minutes(3)))
    func python() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "python")
        let ip = try #require(node.env(gear)["OPENSHIFT_PYTHON_IP"])
        #expect(mode(gear.home + "/python/bin/control")!.owner == gear.identity.uid)
        #expect(mode(gear.home + "/python/env/OPENSHIFT_PYTHON_IDENT")!.owner == 0)
        let start = try node.manager.control(gear.uuid, .start)
        #expect(start.output.contains("CLIENT_RESULT: python started on \(ip):8080"))
        #expect(await eventually(within: 15) { http(ip, 8080) == "Hello from your python application\n" })
        // The server runs as the gear, in its cgroup, without capabilities.
        let server = try node.runAs(gear, ["/bin/sh", "-c", "cat /proc/$(cat \(gear.home)/python/run/server.pid)/status"])
        #expect(server.stdout.contains("Uid:\t\(gear.identity.uid)"))
        #expect(Capabilities.Sets(status: server.stdout)?.isEmpty == true)
        _ = try node.manager.control(gear.uuid, .stop)
        #expect(await eventually(within: 10) { http(ip, 8080) == nil })

        // Started again, then destroyed: the process dies and nothing is left.
        _ = try node.manager.control(gear.uuid, .start)
        #expect(await eventually(within: 15) { http(ip, 8080) != nil })
        _ = try node.manager.destroy(gear.uuid)
        #expect(http(ip, 8080) == nil)
        #expect(UnixAccounts.user(named: gear.uuid) == nil)
        #expect(!UnixAccounts.groupExists(named: gear.uuid))
        #expect(!TestFiles.exists(gear.home))
        #expect(!((try? GearCgroup(hierarchy: CgroupHierarchy.detect()!, parent: "openshift-node-tests", name: gear.uuid))?.exists ?? true))
        let leftovers = try ProcessRunner.run(["/usr/bin/pgrep", "-u", "\(gear.identity.uid)"])
        #expect(leftovers.stdout.isEmpty, "\((try? ProcessRunner.run(["/bin/ps", "-o", "pid,ppid,uid,euid,stat,cmd", "-u", "\(gear.identity.uid)"]))?.stdout ?? "")")
    }

    @Test("configure mock: its locked files belong to root afterwards, the home too; a rejected entry is not created")
    func lockedFiles() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "mock")
        let uid = gear.identity.uid
        for path in ["mock/mock_cart_locked_file", ".mock_gear_locked_file", "app-root/data/mock_gear_data_locked_file",
                     "mock/env", "mock/env/OPENSHIFT_MOCK_VERSION"] {
            #expect(mode(gear.home + "/" + path)?.owner == 0, "\(path) is locked")
            #expect(mode(gear.home + "/" + path)?.group == uid)
        }
        #expect(mode(gear.home + "/mock/bin/control")?.owner == uid, "unlisted files stay the gear's")
        #expect(mode(gear.home)! == (0, uid, 0o750))
        #expect(!TestFiles.exists(gear.home + "/invalid_mock_locked_file"))
        let write = try node.runAs(gear, ["/bin/sh", "-c", "echo x > \(gear.home)/mock/env/OPENSHIFT_MOCK_VERSION"])
        #expect(write.status != 0, "the gear cannot rewrite a locked variable")
    }

    @Test("a create that fails halfway leaves no user, group, home or cgroup")
    func rollback() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        for point in ["container.create.end", "gear.create.end"] {
            let uuid = uniqueUUID()
            FailPoint.arm(point, uuid)
            defer { FailPoint.disarm(point, uuid) }
            #expect(throws: GearsError.self) { try node.manager.create(GearCreateRequest(uuid: uuid)) }
            #expect(UnixAccounts.user(named: uuid) == nil)
            #expect(!UnixAccounts.groupExists(named: uuid))
            #expect(!TestFiles.exists(node.scratch.gearBaseDir + "/" + uuid))
            #expect(!((try? GearCgroup(hierarchy: CgroupHierarchy.detect()!, parent: "openshift-node-tests", name: uuid))?.exists ?? true))
        }
    }

    @Test("bad uids and existing system users are refused and change nothing", arguments: [
        ("root", nil), ("daemon", nil), (nil, UInt32(5)), (nil, UInt32(47000)), (nil, UInt32(0)),
    ] as [(String?, UInt32?)])
    func refusals(name: String?, uid: UInt32?) throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let uuid = name ?? uniqueUUID()
        #expect(throws: GearsError.self) { try node.manager.create(GearCreateRequest(uuid: uuid, uid: uid)) }
        if name == nil { #expect(UnixAccounts.user(named: uuid) == nil) }
        #expect(TestFiles.list(node.scratch.gearBaseDir).isEmpty)
    }

    @Test("a uid already taken is refused", .timeLimit(.minutes(3)))
    func uidTaken() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let first = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        #expect(throws: GearsError.self) {
            try node.manager.create(GearCreateRequest(uuid: uniqueUUID(), uid: first.identity.uid))
        }
        #expect(node.manager.allGears().count == 1)
    }

    @Test("50 creates and destroys in parallel: no uid collision, nothing left", .timeLimit(.minutes(3)))
    func parallel() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let manager = node.manager
        let uuids = (0..<50).map { _ in uniqueUUID("p") }
        let outcomes = await withTaskGroup(of: Result<UInt32, GearsError>.self) { group in
            for uuid in uuids {
                group.addTask {
                    (try? await onThread { Result { () throws(GearsError) in try manager.create(GearCreateRequest(uuid: uuid)).identity.uid } })
                        ?? .failure(.invalidArgument(field: "thread", value: uuid, reason: "did not run"))
                }
            }
            return await group.reduce(into: [Result<UInt32, GearsError>]()) { $0.append($1) }
        }
        let created = outcomes.map { try? $0.get() }
        let failures = outcomes.compactMap { if case .failure(let error) = $0 { return error.description } else { return nil } }
        #expect(created.compactMap { $0 }.count == 50, "\(failures)")
        #expect(Set(created.compactMap { $0 }).count == 50, "every gear has its own uid")
        await withTaskGroup(of: Void.self) { group in
            for uuid in uuids { group.addTask { _ = try? await onThread { try manager.destroy(uuid) } } }
        }
        for uuid in uuids {
            #expect(UnixAccounts.user(named: uuid) == nil)
            #expect(!TestFiles.exists(node.scratch.gearBaseDir + "/" + uuid))
        }
        #expect(manager.allGears().isEmpty)
        // No record, uid claim or lock file is left: every uid is free again.
        #expect(TestFiles.list(node.scratch.gearBaseDir + "/.gears", includeHidden: true) == [])
        #expect(TestFiles.list(node.scratch.gearBaseDir + "/.locks", includeHidden: true) == ["create"])
    }
}
