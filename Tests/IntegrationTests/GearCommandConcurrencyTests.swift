import Foundation
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Gear commands started at the same moment, as a broker sends them to a busy node: a gear's
/// addresses come from its uid, so two gears sharing a uid would share addresses and ports.
@Suite("gear commands at the same time")
struct GearCommandConcurrencyTests {
    let node = ScratchNode("gear-concurrency")
    let config: String
    var gearBaseDir: String { node.root + "/sandbox/var/lib/openshift" }
    var sandbox: [String] { ["--root", node.root + "/sandbox", "--cartridge-base-path", GearCommandTests.cartridges, "--config", config] }

    init() throws { config = try sandboxConfig(node) }

    func run(_ tool: String, _ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.node(tool, arguments + sandbox)
    }

    /// Runs `oo-devel-node` once per argument list, every process started before any is waited for.
    func together(_ runs: [[String]]) throws -> [(status: Int32, stderr: String)] {
        let output = node.root + "/together"
        try TestFiles.makeDirectories(output)
        let pids = try runs.enumerated().map { index, arguments in
            try ProcessRunner.spawn([ProcessRunner.executable("oo-devel-node")] + arguments + sandbox,
                                    stdout: "\(output)/\(index).out", stderr: "\(output)/\(index).err")
        }
        return pids.enumerated().map { index, pid in
            (ProcessRunner.wait(pid, timeoutSeconds: 120) ?? -1, TestFiles.read("\(output)/\(index).err") ?? "")
        }
    }

    @Test("8 app-creates at once get 8 uids and 8 addresses; destroyed gears give their uids back",
          .timeLimit(.minutes(5)))
    func parallelCreates() throws {
        defer { node.destroy() }
        #expect(try run("openshift-node", ["rescan"]).status == 0)
        // 3 rounds of 8 in a window of 20 uids: a round only fits if the one before freed its uids.
        for round in 1...3 {
            let uuids = (1...8).map { "r\(round)g\($0)" }
            let created = try together(uuids.map { ["app-create", "--with-container-uuid", $0] })
            for (uuid, result) in zip(uuids, created) { #expect(result.status == 0, "round \(round), \(uuid): \(result.stderr)") }
            let configured = try together(uuids.map { ["configure", "--with-container-uuid", $0, "--cart-name", "mock"] })
            for (uuid, result) in zip(uuids, configured) { #expect(result.status == 0, "round \(round), \(uuid): \(result.stderr)") }

            struct Status: Decodable { var uuid: String; var uid: UInt32 }
            let statuses = try JSONDecoder().decode([Status].self, from: Data(try run("oo-admin-ctl-gears", ["status", "--json"]).stdout.utf8))
            #expect(statuses.map(\.uuid) == uuids)
            #expect(Set(statuses.map(\.uid)).count == 8, "round \(round): uids \(statuses.map(\.uid))")
            let addresses = uuids.map { TestFiles.read(gearBaseDir + "/" + $0 + "/.env/OPENSHIFT_MOCK_EXAMPLE_IP1") ?? "none" }
            #expect(Set(addresses).count == 8 && !addresses.contains("none"), "round \(round): addresses \(addresses)")

            let destroyed = try together(uuids.map { ["app-destroy", "--with-container-uuid", $0] })
            for (uuid, result) in zip(uuids, destroyed) { #expect(result.status == 0, "round \(round), \(uuid): \(result.stderr)") }
            #expect(try run("oo-admin-ctl-gears", ["list"]).stdout == "")
            // No record, no uid claim and no lock file is left of a destroyed gear.
            #expect(TestFiles.list(gearBaseDir + "/.gears", includeHidden: true) == [])
            #expect(TestFiles.list(gearBaseDir + "/.locks", includeHidden: true) == ["create"])
        }
    }
}
