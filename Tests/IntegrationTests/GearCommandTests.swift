import Foundation
import NodeTestSupport
import Testing

/// The gear commands as an admin (or the broker, through oo-devel-node) runs them, in sandbox mode.
@Suite("gear commands")
struct GearCommandTests {
    static let cartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"
    let node = ScratchNode("gear-commands")
    let config: String
    var sandbox: [String] { ["--root", node.root + "/sandbox", "--cartridge-base-path", Self.cartridges, "--config", config] }

    init() throws { config = try sandboxConfig(node) }

    func run(_ tool: String, _ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.node(tool, arguments + sandbox)
    }

    @Test("oo-devel-node drives a python gear; oo-admin-ctl-gears lists and controls it; oo-cartridge adds and deletes",
          .timeLimit(.minutes(3)))
    func lifecycle() async throws {
        defer { node.destroy() }
        #expect(try run("openshift-node", ["rescan"]).status == 0)
        let create = try run("oo-devel-node", ["app-create", "--with-container-uuid", "g1", "--with-app-name", "shop", "--with-namespace", "acme"])
        #expect(create.status == 0 && create.stdout.hasPrefix("CLIENT_RESULT: created gear g1"), "\(create.stderr)")
        #expect(try run("oo-devel-node", ["app-create", "--with-container-uuid", "g1"]).status == 4, "already exists")
        #expect(try run("oo-devel-node", ["configure", "--with-container-uuid", "g1", "--cart-name", "python-3.11"]).status == 0)
        let start = try run("oo-devel-node", ["start", "--with-container-uuid", "g1"])
        #expect(start.status == 0 && start.stdout.contains("CLIENT_RESULT: python started on"), "\(start.stderr)")

        struct Status: Decodable { var uuid: String; var state: String; var cartridges: [String]; var stop_lock: Bool }
        let statusJSON = try run("oo-admin-ctl-gears", ["status", "--json"])
        let statuses = try JSONDecoder().decode([Status].self, from: Data(statusJSON.stdout.utf8))
        #expect(statuses.count == 1 && statuses[0].uuid == "g1" && statuses[0].state == "started")
        #expect(statuses[0].cartridges == ["redhat:python:3.11:0.0.1"])
        let ip = try #require(TestFiles.read(node.root + "/sandbox/var/lib/openshift/g1/.env/OPENSHIFT_PYTHON_IP"))
        #expect(ip.hasPrefix("127."))
        let port = UInt16(8080)
        #expect(await eventually(within: 15) { HTTPProbe.get(port: port, host: ip)?.body == "Hello from your python application\n" })

        let stop = try run("oo-admin-ctl-gears", ["stop", "g1"])
        #expect(stop.stdout == "[ OK ] stop g1\n")
        #expect(await eventually(within: 10) { HTTPProbe.get(port: port, host: ip) == nil })
        // A system-wide start (no uuids) skips the gear its user stopped.
        #expect(try run("oo-admin-ctl-gears", ["start"]).status == 0)
        let after = try JSONDecoder().decode([Status].self, from: Data(try run("oo-admin-ctl-gears", ["status", "--json"]).stdout.utf8))
        #expect(after[0].state == "stopped" && after[0].stop_lock)

        let add = try run("oo-cartridge", ["-a", "add", "-c", "g1", "-n", "mock"])
        #expect(add.status == 0 && add.stdout.hasPrefix("Cartridge add succeeded\n"))
        let delete = try run("oo-cartridge", ["-a", "delete", "-c", "g1", "-n", "mock"])
        #expect(delete.status == 0 && delete.stdout.hasPrefix("Cartridge delete succeeded"))
        let missing = try run("oo-cartridge", ["-a", "delete", "-c", "g1", "-n", "mock"])
        #expect(missing.status == 3 && missing.stderr.contains("cartridge mock is not configured in gear g1"))

        #expect(try run("oo-devel-node", ["app-destroy", "--with-container-uuid", "g1"]).status == 0)
        #expect(try run("oo-admin-ctl-gears", ["list"]).stdout == "")
        let unknown = try run("oo-devel-node", ["start", "--with-container-uuid", "g1"])
        #expect(unknown.status == 3 && unknown.stderr == "gear g1 does not exist on this node\n")
        let hostile = try run("oo-devel-node", ["app-create", "--with-container-uuid", "../../etc"])
        #expect(hostile.status == 2 && hostile.stderr.hasPrefix("invalid container uuid"))
    }
}
