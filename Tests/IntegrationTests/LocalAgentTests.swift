import Foundation
import NodeTestSupport
import Testing

/// The agent on the daemon's Unix socket, as `oo-devel-node agent` uses it in sandbox mode.
@Suite("the agent on the local socket")
struct LocalAgentTests {
    @Test("oo-devel-node agent goes through the running daemon, and runs in-process without one", .timeLimit(.minutes(3)))
    func socketAndFallback() async throws {
        let node = ScratchNode("local-agent")
        defer { node.destroy() }
        let shipped = String(#filePath[..<#filePath.range(of: "/Tests/")!.lowerBound]) + "/cartridges"
        let root = node.root + "/sb"
        let sandbox = ["--root", root, "--cartridge-base-path", shipped]
        func call(_ arguments: [String]) throws -> (status: Int32, reply: [String: Any]) {
            let result = try ProcessRunner.node("oo-devel-node", ["agent"] + arguments + sandbox)
            let reply = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? ["stderr": result.stderr]
            return (result.status, reply)
        }

        let offline = try call(["echo", "msg=hello"])
        #expect(offline.status == 0 && offline.reply["route"] as? String == "in-process")
        let noDaemon = try ProcessRunner.node("oo-admin-cartridge", ["--list", "--mco"] + sandbox)
        #expect(noDaemon.status == 5 && noDaemon.stderr.hasPrefix("--mco: no openshift-node daemon answers on "), "\(noDaemon.stderr)")

        try TestFiles.write(node.root + "/node.conf", "FRONTEND_WAKE_PORT=0\nAGENT_TRANSPORTS=local\nOPENSHIFT_FRONTEND_HTTP_PLUGINS=\n")
        let daemon = try Daemon(root: root, basePath: shipped, config: node.root + "/node.conf")
        #expect(await eventually(within: 20) { daemon.logText.contains("local agent listening") }, "\(daemon.logText)")

        let echo = try call(["echo", "msg=hello", "--config", node.root + "/node.conf"])
        #expect(echo.reply["route"] as? String == "daemon")
        #expect((echo.reply["data"] as? [String: Any])?["msg"] as? String == "hello")
        let create = try call(["cartridge_do", "action=app-create", "cartridge=mock", #"args={"--with-container-uuid":"localgear1"}"#,
                               "--config", node.root + "/node.conf"])
        #expect(create.status == 0 && (create.reply["data"] as? [String: Any])?["exitcode"] as? Int == 0, "\(create.reply)")
        #expect(daemon.logText.contains("action=cartridge_do"), "the daemon ran it")
        // oo-admin-cartridge --mco goes through the daemon's agent.
        let source = try CartridgeBuilder(name: "viaagent").write(into: node.root + "/src")
        let install = try ProcessRunner.node("oo-admin-cartridge", ["-a", "install", "-s", source, "--mco", "--config", node.root + "/node.conf"] + sandbox)
        #expect(install.status == 0 && install.stdout == "Succeeded\n", "\(install.stderr)")
        #expect(daemon.logText.contains("action=cartridge_repository"))
        let list = try ProcessRunner.node("oo-admin-cartridge", ["--list", "--mco", "--config", node.root + "/node.conf"] + sandbox)
        #expect(list.stdout.contains("(redhat, viaagent, 0.1, 0.0.1)\n") && list.stdout.contains("(redhat, mock, 0.1, 0.0.1)\n"), "\(list)")
        let invalid = try call(["has_gear", "uuid=../etc", "--config", node.root + "/node.conf"])
        #expect(invalid.status == 1 && invalid.reply["statuscode"] as? Int == 4)
        let destroy = try call(["cartridge_do", "action=app-destroy", "cartridge=mock", #"args={"--with-container-uuid":"localgear1"}"#,
                                "--config", node.root + "/node.conf"])
        #expect((destroy.reply["data"] as? [String: Any])?["exitcode"] as? Int == 0)
        #expect(daemon.stop() == 0)
    }
}
