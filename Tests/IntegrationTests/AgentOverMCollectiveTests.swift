import Foundation
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two `openshift-node` daemons on a private ActiveMQ, driven by the real `mco` client, as a
/// broker drives nodes.
@Suite("the agent through ActiveMQ and the real mco", .serialized)
struct AgentOverMCollectiveTests {
    static let psk = "node-test-psk"

    /// A client libdir with our DDL (and the any validator), and client.cfg files.
    struct Client {
        let directory: String
        let port: Int

        init(directory: String, port: Int) throws {
            self.directory = directory
            self.port = port
            let install = try ProcessRunner.node("openshift-node", ["ddl", "--install", directory + "/lib"])
            #expect(install.status == 0, "\(install.stderr)")
            try TestFiles.write(directory + "/client.cfg", Self.config(directory: directory, port: port, psk: psk, libdir: directory + "/lib"))
            try TestFiles.write(directory + "/wrong-psk.cfg", Self.config(directory: directory, port: port, psk: "not-the-psk", libdir: directory + "/lib"))
            // A client whose DDL does not check has_gear's uuid, so the node's own check is what answers.
            let loose = directory + "/loose"
            _ = try ProcessRunner.node("openshift-node", ["ddl", "--install", loose])
            let ddlPath = loose + "/mcollective/agent/openshift.ddl"
            let ddl = (TestFiles.read(ddlPath) ?? "").replacingOccurrences(of: "'^[-a-zA-Z0-9]+$'", with: "'.*'")
            try TestFiles.write(ddlPath, ddl)
            try TestFiles.write(directory + "/loose.cfg", Self.config(directory: directory, port: port, psk: psk, libdir: loose))
        }

        static func config(directory: String, port: Int, psk: String, libdir: String) -> String {
            MCollectiveConfig.client(port: port, psk: psk, libdir: libdir)
        }

        func mco(_ arguments: [String], config: String = "client.cfg") throws -> ProcessRunner.Result {
            try ProcessRunner.run(["/usr/bin/mco"] + arguments + ["--config", directory + "/" + config],
                                  environment: ["HOME": directory, "PATH": "/usr/bin:/bin"])
        }

        /// `mco rpc ... -j`, parsed.
        func rpc(_ arguments: [String], config: String = "client.cfg") throws -> (status: Int32, replies: [[String: Any]], stderr: String) {
            let result = try mco(["rpc"] + arguments + ["-j", "--np"], config: config)
            let data = Data(result.stdout.utf8)
            let replies = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
            return (result.status, replies, result.stderr + result.stdout)
        }
    }

    func startNode(_ identity: String, root: String, basePath: String, port: Int, serverConfig: String? = nil) throws -> Daemon {
        try TestFiles.write(root + "/etc/mcollective/server.cfg", serverConfig ?? MCollectiveConfig.text(identity: identity, port: port, psk: Self.psk))
        // A window of its own (gear IPs come from uids); GEAR_MAX_UID must not be below GEAR_MIN_UID.
        let low = Int.random(in: 2000...60000)
        try TestFiles.write(root + "/node.conf", """
            FRONTEND_WAKE_PORT=0
            OPENSHIFT_FRONTEND_HTTP_PLUGINS=
            AGENT_TRANSPORTS=mcollective
            CARTRIDGE_RESCAN_DEBOUNCE_MS=200
            GEAR_MIN_UID=\(low)
            GEAR_MAX_UID=\(low + 99)

            """)
        return try Daemon(root: root, basePath: basePath, config: root + "/node.conf")
    }

    @Test("mco ping, echo, the repository listing, a rescan without restart, gears, a wrong psk, invalid input",
          .enabled(if: Prerequisites.inCI || (ActiveMQ.isInstalled && access("/usr/bin/mco", X_OK) == 0)),
          .timeLimit(.minutes(3)))
    func brokerDrivesTwoNodes() async throws {
        try #require(ActiveMQ.isInstalled, "activemq is not installed (.ci/setup installs it)")
        try #require(access("/usr/bin/mco", X_OK) == 0, "mco is not installed (.ci/setup installs mcollective-client)")
        let scratch = ScratchNode("mco-test")
        defer { scratch.destroy() }
        let broker = try ActiveMQ.start()
        defer { broker.stop() }

        let shipped = String(#filePath[..<#filePath.range(of: "/Tests/")!.lowerBound]) + "/cartridges"
        let base1 = scratch.root + "/base1"
        let base2 = scratch.root + "/base2"
        try TestFiles.makeDirectories(base2)
        try TestFiles.makeDirectories(base1)
        #expect(try ProcessRunner.run(["/bin/cp", "-a", shipped + "/mock", base1 + "/mock"]).status == 0)
        try CartridgeBuilder(name: "other").write(into: base2)

        let node1 = try startNode("node1.test", root: scratch.root + "/n1", basePath: base1, port: broker.port)
        let node2 = try startNode("node2.test", root: scratch.root + "/n2", basePath: base2, port: broker.port)
        let client = try Client(directory: scratch.root + "/client", port: broker.port)

        // mco ping lists both nodes (once both have subscribed).
        var ping = ""
        let bothAnswer = try await eventually(within: 30) {
            ping = try client.mco(["ping", "-t", "1"]).stdout
            return ping.contains("node1.test") && ping.contains("node2.test")
        }
        #expect(bothAnswer, "mco ping: \(ping)\nnode1: \(node1.logText)")

        // echo from both, by discovery.
        let echo = try client.rpc(["openshift", "echo", "msg=foo", "--dt", "1"])
        #expect(echo.status == 0, "\(echo.stderr)")
        #expect(Set(echo.replies.compactMap { $0["sender"] as? String }) == ["node1.test", "node2.test"])
        for reply in echo.replies {
            #expect(reply["statuscode"] as? Int == 0)
            #expect((reply["data"] as? [String: Any])?["msg"] as? String == "foo")
        }

        // node1's repository, in the tuple format.
        func listing() throws -> String {
            let list = try client.rpc(["openshift", "cartridge_repository", "action=list", "-I", "node1.test", "-t", "10"])
            return ((list.replies.first?["data"] as? [String: Any])?["output"] as? String) ?? "no reply: \(list.stderr)"
        }
        #expect(try listing() == "(redhat, mock, 0.1, 0.0.1)\n(redhat, mock, 0.2, 0.0.1)\n(redhat, mock, 0.3, 0.0.1)\n(redhat, mock, 0.4, 0.0.1)\n")

        // A cartridge copied into node1's base path is listed without a restart.
        try CartridgeBuilder(name: "late", versions: ["2.0"]).write(into: scratch.root + "/staging")
        #expect(rename(scratch.root + "/staging/late", base1 + "/late") == 0)
        var latest = ""
        #expect(try await eventually(within: 20) {
            latest = try listing()
            return latest.contains("(redhat, late, 2.0, 0.0.1)")
        }, "\(latest)")

        // A real gear through cartridge_do, then gone again.
        let args = #"args={"--with-container-uuid":"mcogear1","--with-app-name":"app","--with-namespace":"ns"}"#
        let create = try client.rpc(["openshift", "cartridge_do", "action=app-create", "cartridge=mock", args, "-I", "node1.test", "-t", "60"])
        let created = create.replies.first?["data"] as? [String: Any]
        #expect(created?["exitcode"] as? Int == 0, "\(create.stderr)")
        #expect(TestFiles.exists(scratch.root + "/n1/var/lib/openshift/mcogear1"))
        let has = try client.rpc(["openshift", "has_gear", "uuid=mcogear1", "--dt", "1"])
        let answers = Dictionary(uniqueKeysWithValues: has.replies.compactMap { reply -> (String, Bool)? in
            guard let sender = reply["sender"] as? String, let output = (reply["data"] as? [String: Any])?["output"] as? Bool else { return nil }
            return (sender, output)
        })
        #expect(answers == ["node1.test": true, "node2.test": false])
        let destroy = try client.rpc(["openshift", "cartridge_do", "action=app-destroy", "cartridge=mock", args, "-I", "node1.test", "-t", "60"])
        #expect((destroy.replies.first?["data"] as? [String: Any])?["exitcode"] as? Int == 0, "\(destroy.stderr)")
        #expect(!TestFiles.exists(scratch.root + "/n1/var/lib/openshift/mcogear1"))

        // A client with the wrong psk gets no answer, and the node says why.
        let wrong = try client.rpc(["openshift", "echo", "msg=foo", "-I", "node1.test", "-t", "2"], config: "wrong-psk.cfg")
        #expect(wrong.replies.isEmpty, "\(wrong.replies)")
        #expect(await eventually(within: 5) { node1.logText.contains("psk hash mismatch") }, "\(node1.logText)")

        // Invalid input: statuscode 4 with the original's message, from the node itself.
        let invalid = try client.rpc(["openshift", "has_gear", "uuid=../etc", "-I", "node1.test", "-t", "10"], config: "loose.cfg")
        #expect(invalid.replies.first?["statuscode"] as? Int == 4, "\(invalid.stderr)")
        #expect(invalid.replies.first?["statusmsg"] as? String == "Cannot validate input uuid: value should match ^[-a-zA-Z0-9]+$")

        #expect(node1.stop() == 0, "\(node1.logText)")
        #expect(node2.stop() == 0)
    }

    @Test("every stock mco application an admin uses works against the node: inventory, facts, find, ping, rpc rpcutil, plugin doc, completion",
          .enabled(if: Prerequisites.inCI || (ActiveMQ.isInstalled && access("/usr/bin/mco", X_OK) == 0)),
          .timeLimit(.minutes(3)))
    func stockApplications() async throws {
        try #require(ActiveMQ.isInstalled, "activemq is not installed (.ci/setup installs it)")
        try #require(access("/usr/bin/mco", X_OK) == 0, "mco is not installed (.ci/setup installs mcollective-client)")
        let scratch = ScratchNode("mco-stock")
        defer { scratch.destroy() }
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        try TestFiles.makeDirectories(scratch.root + "/base")
        try CartridgeBuilder(name: "one").write(into: scratch.root + "/base")
        let node = try startNode("stock1.test", root: scratch.root + "/n1", basePath: scratch.root + "/base", port: broker.port)
        let client = try Client(directory: scratch.root + "/client", port: broker.port)
        #expect(try await eventually(within: 30) { try client.mco(["ping", "-t", "1"]).stdout.contains("stock1.test") }, "\(node.logText)")

        // mco inventory: the daemon's statistics and its inventory, as mcollectived gives them.
        let inventory = try client.mco(["inventory", "stock1.test", "-t", "10"])
        #expect(inventory.status == 0, "\(inventory.stdout)\(inventory.stderr)")
        for line in ["Inventory for stock1.test:", "Version: 2.12.5", "Config File: \(scratch.root)/n1/etc/mcollective/server.cfg",
                     "Process ID: \(node.pid)", "Main Collective: mcollective", "Total Processor Time:", "Replies Sent:", "Agents:",
                     "openshift", "rpcutil", "Facts:", "node_profile"] {
            #expect(inventory.stdout.contains(line), "\(line) in: \(inventory.stdout)\(inventory.stderr)")
        }
        #expect(!inventory.stderr.contains("Error") && !inventory.stderr.contains("TypeError"), "\(inventory.stderr)")

        // rpcutil's other actions, each answered.
        let stats = try client.rpc(["rpcutil", "daemon_stats", "-I", "stock1.test", "-t", "10"])
        let data = stats.replies.first?["data"] as? [String: Any] ?? [:]
        for key in ["starttime", "configfile", "pid", "passed", "filtered", "ttlexpired", "replies", "total", "validated", "times", "version"] {
            #expect(data[key] != nil, "daemon_stats lacks \(key): \(data)")
        }
        #expect((data["passed"] as? Int ?? 0) >= 1 && (data["total"] as? Int ?? 0) >= (data["passed"] as? Int ?? 0))
        let item = try client.rpc(["rpcutil", "get_config_item", "item=identity", "-I", "stock1.test", "-t", "10"])
        #expect((item.replies.first?["data"] as? [String: Any])?["value"] as? String == "stock1.test", "\(item.stderr)")
        let secret = try client.rpc(["rpcutil", "get_config_item", "item=plugin.psk", "-I", "stock1.test", "-t", "10"])
        #expect(secret.replies.first?["statuscode"] as? Int == 1 && !secret.stderr.contains(Self.psk), "the psk is never a config item")
        let missing = try client.rpc(["rpcutil", "get_data", "source=sysctl", "-I", "stock1.test", "-t", "10"])
        #expect(missing.replies.first?["statuscode"] as? Int == 1, "\(missing.stderr)")
        for action in ["inventory", "agent_inventory", "collective_info", "ping"] {
            let reply = try client.rpc(["rpcutil", action, "-I", "stock1.test", "-t", "10"])
            #expect(reply.replies.first?["statuscode"] as? Int == 0, "\(action): \(reply.stderr)")
        }
        let facts = try client.rpc(["rpcutil", "get_facts", #"facts=node_profile,gears_total_count"#, "-I", "stock1.test", "-t", "10"])
        let values = (facts.replies.first?["data"] as? [String: Any])?["values"] as? [String: Any]
        #expect(values?["node_profile"] as? String == "small" && values?["gears_total_count"] as? String == "0", "\(facts.stderr)")
        // The openshift agent's get_facts, with the list as mco passes it (its JSON text).
        let listed = try client.rpc(["openshift", "get_facts", #"facts=["node_profile","gears_total_count"]"#, "-I", "stock1.test", "-t", "10"])
        let listedValues = (listed.replies.first?["data"] as? [String: Any])?["output"] as? [String: Any]
        #expect(listedValues?["node_profile"] as? String == "small" && listedValues?.count == 2, "a list, not text: \(listed.stderr) \(listed.replies)")

        // The other stock applications.
        let factReport = try client.mco(["facts", "node_profile", "-t", "5"])
        #expect(factReport.status == 0 && factReport.stdout.contains("small") && factReport.stdout.contains("found 1 times"), "\(factReport.stdout)\(factReport.stderr)")
        let find = try client.mco(["find", "-W", "node_profile=small", "-t", "5"])
        #expect(find.status == 0 && find.stdout.contains("stock1.test"), "\(find.stdout)\(find.stderr)")
        let doc = try client.mco(["plugin", "doc", "openshift"])
        #expect(doc.status == 0 && doc.stdout.contains("cartridge_do"), "\(doc.stderr)")
        let completion = try client.mco(["completion", "--list-actions", "--agent", "openshift"])
        #expect(completion.status == 0 && completion.stdout.contains("cartridge_do"), "\(completion.stdout)\(completion.stderr)")
        #expect(node.stop() == 0)
    }

    @Test("broker failover: two ActiveMQ brokers joined as a network; mco ping through either reaches every node, once; SIGKILL of a node's broker moves it to the other",
          .enabled(if: Prerequisites.inCI || (ActiveMQ.isInstalled && access("/usr/bin/mco", X_OK) == 0)),
          .timeLimit(.minutes(4)))
    func brokerFailover() async throws {
        try #require(ActiveMQ.isInstalled, "activemq is not installed (.ci/setup installs it)")
        try #require(access("/usr/bin/mco", X_OK) == 0, "mco is not installed (.ci/setup installs mcollective-client)")
        let scratch = ScratchNode("mco-failover")
        defer { scratch.destroy() }
        let (first, second) = try ActiveMQ.startNetwork()
        defer {
            first.stop()
            second.stop()
        }
        try TestFiles.makeDirectories(scratch.root + "/base")
        try CartridgeBuilder(name: "one").write(into: scratch.root + "/base")
        let delays = ["plugin.activemq.initial_reconnect_delay = 0.1", "plugin.activemq.max_reconnect_delay = 2",
                      "plugin.activemq.back_off_multiplier = 2", "plugin.activemq.use_exponential_back_off = true"]
        // node1 prefers the first broker, node2 the second.
        let node1 = try startNode("fail1.test", root: scratch.root + "/n1", basePath: scratch.root + "/base", port: first.port,
                                  serverConfig: MCollectiveConfig.text(identity: "fail1.test", pool: [first.port, second.port], psk: Self.psk, extra: delays))
        let node2 = try startNode("fail2.test", root: scratch.root + "/n2", basePath: scratch.root + "/base", port: second.port,
                                  serverConfig: MCollectiveConfig.text(identity: "fail2.test", pool: [second.port, first.port], psk: Self.psk, extra: delays))
        let viaFirst = try Client(directory: scratch.root + "/client1", port: first.port)
        let viaSecond = try Client(directory: scratch.root + "/client2", port: second.port)

        /// The identities that answered one `mco ping`, with repeats.
        func ping(_ client: Client) throws -> [String] {
            try client.mco(["ping", "-t", "2"]).stdout.split(separator: "\n")
                .compactMap { $0.split(separator: " ").first.map(String.init) }.filter { $0.hasSuffix(".test") }
        }
        var seen: [String] = []
        #expect(try await eventually(within: 90) {
            seen = try ping(viaFirst) + ["|"] + ping(viaSecond)
            return seen.sorted() == ["fail1.test", "fail1.test", "fail2.test", "fail2.test", "|"]
        }, "both nodes through both brokers, each once: \(seen)\n\(node1.logText)")
        let echo = try viaSecond.rpc(["openshift", "echo", "msg=once", "--dt", "2", "-t", "10"])
        #expect(echo.replies.compactMap { $0["sender"] as? String }.sorted() == ["fail1.test", "fail2.test"], "\(echo.stderr)")

        // node1's broker dies: node1 moves to the second broker and answers through it.
        let killed = ContinuousClock.now
        first.kill9()
        #expect(try await eventually(within: 60) {
            seen = try ping(viaSecond)
            return seen.sorted() == ["fail1.test", "fail2.test"]
        }, "after the first broker died: \(seen)\n\(node1.logText)")
        print("node-failover: node1 answered through the second broker \(ContinuousClock.now - killed) after SIGKILL of the first")
        // It waited the configured initial_reconnect_delay, not the built-in one.
        let lost = node1.logText.split(separator: "\n").first { $0.contains("STOMP connection lost") }.map(String.init) ?? ""
        #expect(lost.contains("stomp.retry_in=0.1"), "\(lost)")
        #expect(node1.logText.contains("stomp.broker=127.0.0.1:\(second.port)"), "node1 reconnected to the second broker")
        let after = try viaSecond.rpc(["openshift", "echo", "msg=again", "--dt", "2", "-t", "10"])
        #expect(after.replies.compactMap { $0["sender"] as? String }.sorted() == ["fail1.test", "fail2.test"], "each answers once: \(after.stderr)")
        #expect(node1.stop() == 0)
        #expect(node2.stop() == 0)
    }
}
