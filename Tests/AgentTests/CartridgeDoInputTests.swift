@testable import Agent
import NodeTestSupport
import Testing

/// `cartridge_do` with a uuid that can never be a gear's, or one of a gear that is gone: the
/// agent refuses it, naming it, and the node's files stay exactly as they were.
@Suite("cartridge_do: hostile and unknown uuids")
struct CartridgeDoInputTests {
    static let hostileUUIDs = ["has space", "dollar$(id)", "-leadingdash", "a/b", "..", String(repeating: "a", count: 200)]
    static let actions = ["start", "stop", "restart", "status", "tidy", "force-stop", "configure", "deconfigure",
                          "frontend-idle", "frontend-unidle"]

    @Test("every gear action refuses a hostile uuid, naming it, and touches nothing", .timeLimit(.minutes(5)))
    func hostileUUIDs() async throws {
        let node = try AgentNode()
        defer { node.destroy() }
        let gearBaseDir = node.agent.context.layout.gearBaseDir
        #expect(await node.cartridgeDo("app-create", ["--with-container-uuid": "g1"]).statuscode == 0)
        #expect(await node.cartridgeDo("configure", ["--with-container-uuid": "g1", "--cart-name": "mock"]).statuscode == 0)
        let before = TestFiles.tree(gearBaseDir)
        #expect(before.contains(".locks/gear.g1") && before.contains("g1/mock/"))
        for action in Self.actions {
            for uuid in Self.hostileUUIDs {
                let reply = await node.cartridgeDo(action, ["--with-container-uuid": uuid, "--cart-name": "mock"])
                #expect(reply.statuscode == 1 && reply.data["exitcode"] != .int(0), "\(action) '\(uuid)': \(reply)")
                #expect(reply.data["output"]?.string?.hasPrefix("invalid container uuid '\(uuid)'") == true, "\(action) '\(uuid)': \(reply)")
                #expect(TestFiles.tree(gearBaseDir) == before, "\(action) '\(uuid)'")
            }
        }
    }

    @Test("a destroyed gear leaves no lock file, and actions asking for it afterwards make none", .timeLimit(.minutes(5)))
    func destroyedGearLeavesNoLock() async throws {
        let node = try AgentNode()
        defer { node.destroy() }
        let gearBaseDir = node.agent.context.layout.gearBaseDir
        #expect(await node.cartridgeDo("app-create", ["--with-container-uuid": "g1"]).statuscode == 0)
        #expect(await node.cartridgeDo("app-destroy", ["--with-container-uuid": "g1"]).statuscode == 0)
        let before = TestFiles.tree(gearBaseDir)
        #expect(!before.contains(".locks/gear.g1"), "\(before)")
        for action in Self.actions {
            let reply = await node.cartridgeDo(action, ["--with-container-uuid": "g1", "--cart-name": "mock"])
            #expect(reply.statuscode == 1 && reply.data["output"] == .string("gear g1 does not exist on this node"), "\(action): \(reply)")
            #expect(TestFiles.tree(gearBaseDir) == before, "\(action)")
        }
    }
}
