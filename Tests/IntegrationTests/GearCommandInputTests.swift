import NodeTestSupport
import Testing

/// What `oo-devel-node` does with a uuid that can never be a gear's, or one of a gear that is
/// gone: refuses it, naming it, and leaves the node's files exactly as they were.
@Suite("gear commands: hostile and unknown uuids")
struct GearCommandInputTests {
    static let hostileUUIDs = ["has space", "dollar$(id)", "-leadingdash", "a/b", "..", String(repeating: "a", count: 200)]
    /// The gear actions, each with the arguments it needs besides the uuid.
    static let actions: [[String]] = [["start"], ["stop"], ["restart"], ["status"], ["tidy"], ["force-stop"],
                                      ["configure", "--cart-name", "mock"], ["deconfigure", "--cart-name", "mock"],
                                      ["frontend-idle"], ["frontend-unidle"]]

    let node = ScratchNode("gear-input")
    let config: String
    var gearBaseDir: String { node.root + "/sandbox/var/lib/openshift" }

    init() throws { config = try sandboxConfig(node) }

    func run(_ arguments: [String], root: String? = nil) throws -> ProcessRunner.Result {
        try ProcessRunner.node("oo-devel-node", arguments + ["--root", root ?? node.root + "/sandbox", "--cartridge-base-path",
                                                              GearCommandTests.cartridges, "--config", config])
    }

    @Test("every gear action refuses a hostile uuid, naming it, before anything touches the disk",
          .timeLimit(.minutes(3)), arguments: actions)
    func hostileUUIDs(action: [String]) throws {
        defer { node.destroy() }
        // A node that has never run: refusing creates not even its directories.
        let fresh = node.root + "/fresh"
        let refused = try run([action[0], "--with-container-uuid=a/b"] + action.dropFirst(), root: fresh)
        #expect(refused.status == 2 && refused.stderr.hasPrefix("invalid container uuid 'a/b'"), "\(refused.stderr)")
        #expect(!TestFiles.exists(fresh), "\(TestFiles.tree(fresh))")

        // A node with a gear (a configured cartridge, routes) and one destroyed gear.
        #expect(try ProcessRunner.node("openshift-node", ["rescan", "--root", node.root + "/sandbox", "--cartridge-base-path",
                                                          GearCommandTests.cartridges, "--config", config]).status == 0)
        #expect(try run(["app-create", "--with-container-uuid", "g1"]).status == 0)
        #expect(try run(["configure", "--with-container-uuid", "g1", "--cart-name", "mock"]).status == 0)
        #expect(try run(["app-create", "--with-container-uuid", "gone"]).status == 0)
        #expect(try run(["app-destroy", "--with-container-uuid", "gone"]).status == 0)
        let before = TestFiles.tree(gearBaseDir)
        #expect(before.contains(".locks/gear.g1") && before.contains("g1/mock/"))
        for uuid in Self.hostileUUIDs {
            let result = try run([action[0], "--with-container-uuid=" + uuid] + action.dropFirst())
            #expect(result.status == 2, "\(action[0]) '\(uuid)': exit \(result.status), \(result.stderr)")
            #expect(result.stderr.hasPrefix("invalid container uuid '\(uuid)'"), "\(action[0]) '\(uuid)': \(result.stderr)")
            #expect(TestFiles.tree(gearBaseDir) == before, "\(action[0]) '\(uuid)'")
        }
    }

    @Test("a destroyed gear leaves no lock file, and actions asking for it afterwards make none", .timeLimit(.minutes(2)))
    func destroyedGearLeavesNoLock() throws {
        defer { node.destroy() }
        #expect(try run(["app-create", "--with-container-uuid", "g1"]).status == 0)
        #expect(TestFiles.exists(gearBaseDir + "/.locks/gear.g1"))
        #expect(try run(["app-destroy", "--with-container-uuid", "g1"]).status == 0)
        #expect(!TestFiles.exists(gearBaseDir + "/.locks/gear.g1"))
        let before = TestFiles.tree(gearBaseDir)
        for action in Self.actions + [["app-destroy"]] {
            let result = try run([action[0], "--with-container-uuid", "g1"] + action.dropFirst())
            if action[0] == "app-destroy" {
                #expect(result.status == 0, "destroying a gear that is gone succeeds: \(result.stderr)")
            } else {
                #expect(result.status == 3 && result.stderr == "gear g1 does not exist on this node\n", "\(action[0]): \(result.stderr)")
            }
            #expect(TestFiles.tree(gearBaseDir) == before, "\(action[0])")
        }
    }
}
