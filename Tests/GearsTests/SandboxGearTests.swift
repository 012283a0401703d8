import Containment
import Frontend
import Gears
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The gear life cycle on the sandbox plugin: no root needed, same layout, env and hooks.
@Suite("gears in the sandbox")
struct SandboxGearTests {
    @Test("create, configure mock, start, stop, deconfigure, destroy", .timeLimit(.minutes(2)))
    func lifecycle() async throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID(), appName: "myapp", namespace: "dom"))
        #expect(node.manager.state(gear) == .new)
        let env = node.env(gear)
        #expect(env["OPENSHIFT_GEAR_UUID"] == gear.uuid)
        #expect(env["OPENSHIFT_APP_DNS"] == "myapp-dom.example.com")
        #expect(env["OPENSHIFT_DATA_DIR"] == gear.home + "/app-root/data/")
        #expect(TestFiles.exists(gear.home + "/app-root/runtime/repo"))

        let configured = try node.manager.configure(gear.uuid, cartridge: "mock")
        #expect(configured.output.contains("CLIENT_MESSAGE: mock setup for version 0.1"))
        let cartridge = try #require(node.manager.cartridges(of: gear).first)
        #expect(cartridge.ident == "redhat:mock:0.1:0.0.1")
        let after = node.env(gear)
        let ip = try #require(after["OPENSHIFT_MOCK_EXAMPLE_IP1"])
        #expect(ip == GearAddress.ip(uid: gear.identity.uid, host: 1))
        #expect(after["OPENSHIFT_MOCK_EXAMPLE_IP2"] == GearAddress.ip(uid: gear.identity.uid, host: 2))
        #expect(after["OPENSHIFT_MOCK_EXAMPLE_PORT1"] == "8080")
        #expect(after["OPENSHIFT_PRIMARY_CARTRIDGE_DIR"] == gear.home + "/mock/")
        let mockEnv = TestFiles.environment(gear.home + "/mock/env")
        #expect(mockEnv["OPENSHIFT_MOCK_SERVICE_URL"] == "http://\(ip):8080/", "env/*.erb rendered from the environment")
        #expect(!TestFiles.exists(gear.home + "/mock/env/OPENSHIFT_MOCK_SERVICE_URL.erb"))
        #expect(TestFiles.read(gear.home + "/app-root/data/.mock_cartridge_state/setup_called") == "setup_called --version 0.1\n")
        #expect(throws: GearsError.self, "configured twice") { try node.manager.configure(gear.uuid, cartridge: "mock") }

        let start = try node.manager.control(gear.uuid, .start)
        #expect(start.output.contains("CLIENT_RESULT: mock started"))
        #expect(node.manager.state(gear) == .started)
        #expect(await eventually(within: 30) { http(ip, 8080) == "mock cartridge\n" })
        _ = try node.manager.control(gear.uuid, .stop)
        #expect(node.manager.state(gear) == .stopped)
        #expect(node.manager.hasStopLock(gear))
        #expect(await eventually(within: 30) { http(ip, 8080) == nil })

        _ = try node.manager.deconfigure(gear.uuid, cartridge: "mock")
        #expect(!TestFiles.exists(gear.home + "/mock"))
        #expect(node.env(gear)["OPENSHIFT_MOCK_EXAMPLE_IP1"] == nil)
        #expect(node.env(gear)["OPENSHIFT_PRIMARY_CARTRIDGE_DIR"] == nil)
        _ = try node.manager.destroy(gear.uuid)
        #expect(!TestFiles.exists(gear.home))
        #expect(try node.manager.destroy(gear.uuid) == "", "destroying again is fine")
    }

    @Test("post-configure runs post_install; the repository refuses to erase a version a gear uses")
    func postConfigureAndErase() throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "mock-0.2")
        let post = try node.manager.postConfigure(gear.uuid, cartridge: "mock")
        #expect(post.output == "CLIENT_RESULT: mock cartridge 0.2 is ready\n")
        #expect(TestFiles.read(gear.home + "/app-root/data/.mock_cartridge_state/post_install_called") == "post_install_called --version 0.2\n")
        #expect {
            try node.manager.repository.erase(vendor: "redhat", name: "mock", version: "0.1", cartridgeVersion: "0.0.1", usage: node.manager)
        } throws: { error in
            "\(error)".contains("used by gear(s) \(gear.uuid)")
        }
        #expect(TestFiles.exists(node.scratch.repositoryPath + "/redhat-mock/0.0.1/bin/control"))
    }

    @Test("diy and cron: configure, start, status, stop, deconfigure in one gear", .timeLimit(.minutes(2)))
    func diyAndCron() async throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "diy")
        _ = try node.manager.configure(gear.uuid, cartridge: "cron")
        #expect(TestFiles.exists(gear.home + "/app-root/runtime/repo/.openshift/action_hooks/start"), "diy's template is the first code")
        let ip = try #require(node.env(gear)["OPENSHIFT_DIY_IP"])
        _ = try node.manager.control(gear.uuid, .start)
        #expect(await eventually(within: 30) { http(ip, 8080)?.contains("your own start script") == true })
        #expect(TestFiles.exists(gear.home + "/cron/run/jobs.enabled"))
        let status = try node.manager.control(gear.uuid, .status)
        #expect(status.output.contains("CLIENT_RESULT: application is running"))
        #expect(status.output.contains("CLIENT_RESULT: cron jobs are enabled"))
        _ = try node.manager.control(gear.uuid, .stop)
        #expect(await eventually(within: 30) { http(ip, 8080) == nil })
        #expect(!TestFiles.exists(gear.home + "/cron/run/jobs.enabled"))
        _ = try node.manager.deconfigure(gear.uuid, cartridge: "cron")
        _ = try node.manager.deconfigure(gear.uuid, cartridge: "diy")
        #expect(node.manager.cartridges(of: gear).isEmpty)
    }

    @Test("templates: ENV substitutions only, anything else is refused")
    func templates() throws {
        #expect(try Templates.render("http://<%= ENV['IP'] %>:<%=ENV[\"PORT\"]%>/", environment: ["IP": "127.0.0.2", "PORT": "8080"])
            == "http://127.0.0.2:8080/")
        #expect(throws: Templates.Problem.self) { try Templates.render("<%= `id` %>", environment: [:]) }
        #expect(throws: Templates.Problem.self) { try Templates.render("<% system('x') %>", environment: [:]) }
        #expect(throws: Templates.Problem.self) { try Templates.render("<%= ENV['A'] ", environment: [:]) }
    }

    @Test("routes follow the gear: created, connected by configure, idled, disconnected, destroyed", .timeLimit(.minutes(2)))
    func routes() async throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID(), appName: "shop", gearName: "shop", namespace: "acme"))
        #expect(try node.routes.served(gear.uuid)?.fqdn == "shop-acme.example.com")
        let configured = try node.manager.configure(gear.uuid, cartridge: "python")
        #expect(configured.output.contains("CLIENT_RESULT: routed http://shop-acme.example.com/"))
        let ip = try #require(node.env(gear)["OPENSHIFT_PYTHON_IP"])
        let served = try #require(try node.routes.served(gear.uuid))
        #expect(served.connections.contains(Connection(path: "", target: "\(ip):8080", options: {
            var options = Connection.Options()
            options.websocket = true
            options.protocols = ["http", "ws"]
            return options
        }())))
        #expect(served.connections.contains { $0.path == "/health" && $0.options.health })
        // A second cartridge does not take the root route.
        _ = try node.manager.configure(gear.uuid, cartridge: "mock")
        #expect(try node.routes.served(gear.uuid)?.connections.first { $0.path == "" }?.target == "\(ip):8080")
        #expect(try node.routes.served(gear.uuid)?.connections.contains { $0.path == "/front1a" } == true)

        _ = try node.manager.control(gear.uuid, .start)
        #expect(await eventually(within: 30) { http(ip, 8080) != nil })
        try node.manager.idle(gear.uuid)
        #expect(try node.routes.served(gear.uuid)?.idle == true)
        #expect(node.manager.state(gear) == .idle)
        #expect(await eventually(within: 30) { http(ip, 8080) == nil })
        _ = try node.manager.unidle(gear.uuid)
        #expect(try node.routes.served(gear.uuid)?.idle == false)
        #expect(await eventually(within: 30) { http(ip, 8080) != nil })

        _ = try node.manager.deconfigure(gear.uuid, cartridge: "mock")
        #expect(try node.routes.served(gear.uuid)?.connections.contains { $0.path == "/front1a" } == false)
        _ = try node.manager.destroy(gear.uuid)
        #expect(try node.routes.served(gear.uuid) == nil)
        #expect(try node.manager.frontend?.frontend(gear.uuid) == nil)
    }

    @Test("a create that fails halfway leaves nothing")
    func createRollback() throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let uuid = uniqueUUID()
        FailPoint.arm("gear.create.end", uuid)
        defer { FailPoint.disarm("gear.create.end", uuid) }
        #expect(throws: GearsError.self) { try node.manager.create(GearCreateRequest(uuid: uuid)) }
        #expect(!TestFiles.exists(node.scratch.gearBaseDir + "/" + uuid))
        #expect(node.manager.allGears().isEmpty)
    }

    @Test("a create killed after claiming its uid: allocation skips the claim, a create or destroy of that uuid drops it")
    func killedCreateClaim() throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let low = UInt32(node.configuration.integer("GEAR_MIN_UID"))
        let records = node.scratch.gearBaseDir + "/.gears"
        // What two creates killed between claiming a uid and writing the record leave.
        try TestFiles.write(records + "/ghost.uid-\(low)", "")
        try TestFiles.write(records + "/again.uid-\(low + 1)", "")
        #expect(try node.manager.create(GearCreateRequest(uuid: "other")).identity.uid == low + 2)
        #expect(try node.manager.create(GearCreateRequest(uuid: "again")).identity.uid == low + 1)
        #expect(TestFiles.list(records).filter { $0.hasPrefix("again.") } == ["again.json", "again.uid-\(low + 1)"])
        _ = try node.manager.destroy("ghost")
        #expect(TestFiles.list(records).filter { $0.hasPrefix("ghost.") } == [])
        #expect(try node.manager.create(GearCreateRequest(uuid: "new")).identity.uid == low)
        for uuid in ["other", "again", "new"] { _ = try node.manager.destroy(uuid) }
        #expect(TestFiles.list(records, includeHidden: true) == [])
        #expect(TestFiles.list(node.scratch.gearBaseDir + "/.locks", includeHidden: true) == ["create"])
    }

    @Test("a configure that fails halfway leaves no cartridge, variables or primary")
    func configureRollback() throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let before = node.env(gear)
        FailPoint.arm("gear.configure.before-hooks", gear.uuid)
        defer { FailPoint.disarm("gear.configure.before-hooks", gear.uuid) }
        #expect(throws: GearsError.self) { try node.manager.configure(gear.uuid, cartridge: "mock") }
        #expect(!TestFiles.exists(gear.home + "/mock"))
        #expect(node.env(gear) == before)
    }

    @Test("a failing hook is reported with its output and rolls the configure back")
    func failingHook() throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        var broken = CartridgeBuilder(name: "broken")
        broken.endpoints = 1
        broken.files["bin/setup"] = "#!/bin/sh\necho 'CLIENT_ERROR: cannot set up'\nexit 3\n"
        try node.manager.repository.install(from: try broken.write(into: node.scratch.root + "/src"))
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let before = node.env(gear)
        #expect {
            try node.manager.configure(gear.uuid, cartridge: "broken")
        } throws: { error in
            guard case let .hookFailed(_, hook, status, output) = error as? GearsError else { return false }
            return hook == "broken bin/setup" && status == 3 && output.contains("CLIENT_ERROR: cannot set up")
        }
        #expect(!TestFiles.exists(gear.home + "/broken"))
        #expect(node.env(gear) == before, "the endpoint variables it had written are gone")
    }

    @Test("hostile names are refused before anything happens", arguments: ["../etc", "a b", "UPPER", "x/y", "", "-dash", "semi;colon", "new\nline"])
    func hostileUUIDs(uuid: String) throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        #expect(throws: GearsError.self) { try node.manager.create(GearCreateRequest(uuid: uuid)) }
        #expect(TestFiles.list(node.scratch.gearBaseDir).isEmpty)
    }

    @Test("hostile cartridge names and unknown cartridges are refused", arguments: ["../../etc", "mock/../x", "nosuchcart", "mock-9.9"])
    func hostileCartridges(token: String) throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        #expect(throws: GearsError.self) { try node.manager.configure(gear.uuid, cartridge: token) }
        #expect(node.manager.cartridges(of: gear).isEmpty)
    }

    @Test("a hook that hangs is stopped at the time limit; one that forks a daemon does not hang the caller",
          .timeLimit(.minutes(3)))
    func hooksThatMisbehave() throws {
        let node = try GearNode("sandbox")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let hang = try node.manager.plugin.run(gear.identity, ["/bin/sleep", "30"], environment: [:], directory: nil, timeoutSeconds: 0.5)
        #expect(hang.timedOut)
        let start = ContinuousClock.now
        let fork = try node.manager.plugin.run(gear.identity, ["/bin/sh", "-c", "(/bin/sleep 30 &) ; echo forked"], environment: [:],
                                               directory: nil, timeoutSeconds: 20)
        #expect(fork.status == 0 && fork.stdout == "forked\n")
        #expect(!fork.timedOut, "the caller waited for the forked sleep: \(ContinuousClock.now - start)")
        let flood = try node.manager.plugin.run(gear.identity, ["/bin/sh", "-c", "head -c 5000000 /dev/zero"], environment: [:],
                                                directory: nil, timeoutSeconds: 20)
        #expect(flood.truncated && flood.stdout.utf8.count == 1 << 20)
    }
}
