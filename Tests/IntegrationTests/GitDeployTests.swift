import Foundation
import NodeTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `git push` deploys, end to end: real gears in node mode, the real `git` client pushing over
/// the real sshd through the gear shell, the real `gear` tool in the hooks, the shipped python
/// and mock cartridges, and (for the answer users see) a real Apache in front.
@Suite("git push deploys (node mode, real sshd, git and Apache)", .enabled(if: Prerequisites.rootOrCI), .serialized)
struct GitDeployTests {
    static func requirements() throws {
        try GearSSHTests.requirements()
        try #require(access("/usr/sbin/apache2", X_OK) == 0 || !Prerequisites.inCI, "apache2 is not installed (.ci/setup installs it)")
    }

    /// A gear with `cartridge` configured (and started), a key, and a working copy of its
    /// repository cloned over SSH.
    final class Lab: @unchecked Sendable {
        let node: SSHNode
        let gear: SSHNode.GearAccount
        let key: (path: String, type: String, body: String)
        let work: String

        init(_ label: String, cartridge: String, uids: ClosedRange<Int>) async throws {
            node = try await SSHNode.start(label, realGear: true, uids: uids)
            do {
                gear = try await node.createGear()
                let configured = try await node.devel(["configure", "--with-container-uuid", gear.uuid, "--cart-name", cartridge])
                guard configured.status == 0 else { throw TestFiles.Failure(description: "configure: \(configured.stdout)\(configured.stderr)") }
                let started = try await node.devel(["start", "--with-container-uuid", gear.uuid])
                guard started.status == 0 else { throw TestFiles.Failure(description: "start: \(started.stdout)\(started.stderr)") }
                key = try SSHServer.generateKey(in: node.clientDirectory)
                try await node.addKey(gear, key)
                work = node.root + "/work"
                let clone = try git(["clone", "-q", url, work])
                guard clone.status == 0 else { throw TestFiles.Failure(description: "git clone \(url): \(clone.stderr)") }
            } catch {
                node.destroy()
                throw error
            }
        }

        var url: String { "ssh://\(gear.uuid)@127.0.0.1:\(node.server.port)/~/git/app.git/" }

        var gitEnvironment: [String: String] {
            ["HOME": node.clientDirectory, "PATH": "/usr/bin:/bin", "GIT_SSH_COMMAND": "ssh " + node.server.clientOptions(key: key.path).joined(separator: " "),
             "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"]
        }

        /// Runs git in the working copy (`clone` from outside it).
        @discardableResult
        func git(_ arguments: [String]) throws -> ProcessRunner.Result {
            let directory = arguments.first == "clone" ? node.root : work
            return try ProcessRunner.run(["/usr/bin/git", "-C", directory] + arguments, environment: gitEnvironment)
        }

        /// Writes files into the working copy, commits them and returns the commit's short name.
        @discardableResult
        func commit(_ files: [String: String], executable: Set<String> = [], message: String = "change") throws -> String {
            for (name, text) in files {
                let path = work + "/" + name
                try TestFiles.makeDirectories(String(path[..<path.lastIndex(of: "/")!]))
                try TestFiles.write(path, text, mode: executable.contains(name) ? 0o755 : 0o644)
            }
            try git(["add", "-A"])
            let result = try git(["commit", "-q", "-m", message])
            guard result.status == 0 else { throw TestFiles.Failure(description: "commit: \(result.stderr)") }
            return try git(["rev-parse", "--short=7", "HEAD"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func push(_ refspec: String = "master") throws -> ProcessRunner.Result { try git(["push", "origin", refspec]) }

        func ssh(_ command: String, stdin: String = "/dev/null") async throws -> ProcessRunner.Result {
            try await node.ssh(gear, key, command, stdin: stdin)
        }

        func agent(_ action: String, _ arguments: String) async throws -> ProcessRunner.Result {
            try await node.devel(["agent", "cartridge_do", "action=" + action, "cartridge=python",
                                  #"args={"--with-container-uuid":"\#(gear.uuid)",\#(arguments)}"#, "--in-process"])
        }

        func settings(_ json: String) async throws {
            let result = try await agent("update-configuration", #""--with-config":\#(json)"#)
            guard result.status == 0 else { throw TestFiles.Failure(description: "update-configuration: \(result.stdout)\(result.stderr)") }
        }

        var deployments: String { gear.home + "/app-deployments" }
        var deploymentDirectories: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: deployments)) ?? []).filter { $0.first?.isNumber == true }.sorted()
        }
        var current: String? { try? FileManager.default.destinationOfSymbolicLink(atPath: deployments + "/current") }

        /// The ids `gear deployments` lists, newest activation first, and the active one.
        func listed() async throws -> (ids: [String], active: String?) {
            let result = try await ssh("gear deployments")
            var ids: [String] = []
            var active: String?
            for line in result.stdout.split(separator: "\n").dropFirst() {
                let fields = line.components(separatedBy: " - ")
                guard fields.count >= 4 else { continue }
                ids.append(fields[1])
                if line.hasSuffix(" - ACTIVE") { active = fields[1] }
            }
            return (ids, active)
        }

        func destroy() { node.destroy() }
    }

    /// Requests the app in a loop on its own thread until stopped: every answer body counted,
    /// every failure (refused, reset, timeout, non-200) counted and kept.
    final class RequestLoop: @unchecked Sendable {
        private final class State: Sendable {
            let value = Mutex<(bodies: [String: Int], failures: [String], stop: Bool)>(([:], [], false))
            func withLock<T>(_ body: (inout (bodies: [String: Int], failures: [String], stop: Bool)) -> T) -> T { value.withLock { body(&$0) } }
        }
        private let state = State()
        private let thread: Thread

        init(_ request: @escaping @Sendable () -> HTTPProbe.Response?) {
            let state = state
            thread = Thread {
                while !state.withLock({ $0.stop }) {
                    let response = request()
                    state.withLock { s in
                        if let response, response.status == 200 { s.bodies[response.body, default: 0] += 1 }
                        else { s.failures.append(response.map { "\($0.status) \($0.body.prefix(80))" } ?? "no answer") }
                    }
                }
            }
            thread.start()
        }

        var bodies: [String: Int] { state.withLock { $0.bodies } }

        func stop() async -> (bodies: [String: Int], failures: [String]) {
            state.withLock { $0.stop = true }
            try? await Task.sleep(for: .milliseconds(300))
            return state.withLock { ($0.bodies, $0.failures) }
        }
    }

    static func wsgi(_ text: String) -> String {
        """
        def application(environ, start_response):
            body = b"\(text)\\n"
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]

        """
    }

    @Test("a push to a python gear changes its answer through Apache with no failed request; a failed build keeps the old answer; gear activate rolls back; a clone of a new gear gives the template",
          .timeLimit(.minutes(5)))
    func pythonThroughApache() async throws {
        try Self.requirements()
        let lab = try await Lab("deploy-py", cartridge: "python", uids: 45000...45049)
        defer { lab.destroy() }
        let node = lab.node

        // A private Apache in front, as the node configures it (its run files in the lab).
        let port = HTTPProbe.freePort()
        let run = node.root + "/apache"
        let generated = try ProcessRunner.node("openshift-node", ["apache-config", "--standalone", "\(port)", "--server-root", run,
                                                                  "--config", node.config])
        #expect(generated.status == 0, "\(generated.stderr)")
        chmod(node.root, 0o755)
        let httpd = node.root + "/httpd.conf"
        try TestFiles.write(httpd, generated.stdout)
        #expect(try ProcessRunner.run(["/usr/sbin/apache2", "-f", httpd, "-k", "start"]).status == 0)
        defer { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", httpd, "-k", "stop"]) }
        let host = "\(lab.gear.uuid)-ns.example.com"  // the gear's name is its uuid here
        @Sendable func get() -> HTTPProbe.Response? { HTTPProbe.get(port: port, headers: ["Host: \(host)"]) }
        let template = "Hello from your python application\n"
        #expect(await eventually(within: 20) { get()?.body == template }, "the template answers through Apache")

        // The clone (made by the lab) is the template.
        let cloned = try FileManager.default.contentsOfDirectory(atPath: lab.work).filter { $0 != ".git" }.sorted()
        let shipped = try FileManager.default.contentsOfDirectory(atPath: ShippedCartridgesTests.cartridges + "/python/template").sorted()
        #expect(cloned == shipped)
        #expect(TestFiles.read(lab.work + "/wsgi.py") == TestFiles.read(ShippedCartridgesTests.cartridges + "/python/template/wsgi.py"))
        try await lab.settings(#"{"keep_deployments":3,"auto_deploy":true,"deployment_branch":"master","deployment_type":"git"}"#)
        let initial = try await lab.listed()
        try #require(initial.ids.count == 1 && initial.active == initial.ids.first, "one deployment at first: \(initial)")

        let loop = RequestLoop(get)
        try lab.commit(["wsgi.py": Self.wsgi("version two")])
        let pushed = try lab.push()
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(pushed.stderr.contains("remote: Git Post-Receive Result: success"), "\(pushed.stderr)")
        #expect(get()?.body == "version two\n", "the new code answers once the push returns")

        // A build that fails: the push says so, the old answer stays.
        try lab.commit(["wsgi.py": Self.wsgi("version three"), ".openshift/action_hooks/build": "#!/bin/sh\necho build breaks >&2\nexit 3\n"],
                       executable: [".openshift/action_hooks/build"])
        let failed = try lab.push()
        #expect(failed.stderr.contains("remote: Git Post-Receive Result: failure"), "\(failed.stderr)")
        #expect(failed.stderr.contains("Failed to execute action hook 'build'"), "\(failed.stderr)")
        #expect(get()?.body == "version two\n")

        // Rollback to the template's deployment, and forward again.
        let listed = try await lab.listed()
        #expect(listed.ids.count == 3 && listed.ids.contains(initial.ids[0]), "kept: \(listed)")
        let rollback = try await lab.ssh("gear activate \(initial.ids[0])")
        #expect(rollback.status == 0, "\(rollback.stdout)\(rollback.stderr)")
        #expect(get()?.body == template)
        let forward = try await lab.agent("activate", #""--with-deployment-id":"\#(listed.active ?? "")""#)
        #expect(forward.status == 0 && forward.stdout.contains("deployments"), "\(forward.stdout)\(forward.stderr)")
        #expect(get()?.body == "version two\n")

        let seen = await loop.stop()
        let log = (TestFiles.read(run + "/error.log") ?? "").split(separator: "\n").suffix(4).joined(separator: "\n")
            + (TestFiles.read(lab.gear.home + "/app-root/logs/python.log") ?? "").split(separator: "\n").filter { !$0.contains("GET /") }.suffix(30).joined(separator: "\n")
        #expect(seen.failures.count == 0, "failed requests during deploys: \(seen.failures.prefix(5)) of \(seen.failures.count); Apache error.log: \(log)")
        #expect(Set(seen.bodies.keys).isSubset(of: [template, "version two\n"]), "answers: \(seen.bodies)")
        #expect((seen.bodies["version two\n"] ?? 0) > 0)
    }

    @Test("the order of controls and hooks of a push; hot deploy; keep_deployments; other branches, auto deploy off; hostile ref names run nothing; concurrent deploys never mix",
          .timeLimit(.minutes(5)))
    func mockLifecycle() async throws {
        try Self.requirements()
        let lab = try await Lab("deploy-mock", cartridge: "mock", uids: 45050...45099)
        defer { lab.destroy() }
        try await lab.settings(#"{"keep_deployments":3,"auto_deploy":true,"deployment_branch":"master","deployment_type":"git"}"#)
        let order = lab.gear.home + "/app-root/data/.mock_cartridge_state/order.log"
        var hooks: [String: String] = [:]
        for name in ["pre_build", "build", "prepare", "deploy", "post_deploy"] {
            hooks[".openshift/action_hooks/" + name] = "#!/bin/sh\necho action_hook_\(name) >> \"$OPENSHIFT_DATA_DIR/.mock_cartridge_state/order.log\"\n"
        }
        try lab.commit(hooks, executable: Set(hooks.keys))
        try TestFiles.write(order, "")
        let pushed = try lab.push()
        #expect(pushed.status == 0 && pushed.stderr.contains("Git Post-Receive Result: success"), "\(pushed.stderr)")
        let steps = (TestFiles.read(order) ?? "").split(separator: "\n").map(String.init)
        #expect(steps == ["control_pre-repo-archive", "control_update-configuration", "control_pre-build", "action_hook_pre_build",
                          "control_build", "action_hook_build", "action_hook_prepare", "control_deploy", "action_hook_deploy",
                          "control_stop", "control_start", "control_post-deploy", "action_hook_post_deploy"])

        // Hot deploy: built and deployed, not restarted.
        try lab.commit([".openshift/markers/hot_deploy": ""])
        try TestFiles.write(order, "")
        #expect(try lab.push().status == 0)
        let hot = (TestFiles.read(order) ?? "").split(separator: "\n").map(String.init)
        #expect(hot.contains("control_build") && hot.contains("control_deploy") && hot.contains("control_reload")
                && !hot.contains("control_stop") && !hot.contains("control_start"), "\(hot)")
        try lab.git(["rm", "-q", ".openshift/markers/hot_deploy"])
        try lab.commit([:], message: "no hot deploy")
        #expect(try lab.push().status == 0)
        #expect(try lab.push().status == 0)
        #expect(lab.deploymentDirectories.count == 3, "keep_deployments=3: \(lab.deploymentDirectories)")

        // Another branch, and auto deploy off: nothing deployed.
        let beforeFeature = lab.deploymentDirectories
        try lab.git(["checkout", "-q", "-b", "feature"])
        try lab.commit(["feature.txt": "f"])
        let other = try lab.push("feature")
        #expect(other.status == 0 && other.stderr.contains("nothing deployed"), "\(other.stderr)")
        #expect(lab.deploymentDirectories == beforeFeature)
        try await lab.settings(#"{"keep_deployments":3,"auto_deploy":true,"deployment_branch":"feature","deployment_type":"git"}"#)
        try lab.commit(["feature.txt": "f2"])
        let onFeature = try lab.push("feature")
        #expect(onFeature.stderr.contains("Git Post-Receive Result: success"), "deployment_branch=feature: \(onFeature.stderr)")
        #expect(TestFiles.read(lab.deployments + "/current/repo/feature.txt") == "f2")
        try lab.git(["checkout", "-q", "master"])
        let beforeOff = lab.deploymentDirectories
        try await lab.settings(#"{"keep_deployments":3,"auto_deploy":false,"deployment_branch":"master","deployment_type":"git"}"#)
        try lab.commit(["off.txt": "x"])
        #expect(try lab.push().stderr.contains("Auto deploy is disabled"))
        #expect(lab.deploymentDirectories == beforeOff)

        // gear build makes a deployment without activating it; gear activate does.
        let built = try await lab.ssh("gear build")
        let id = built.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(built.status == 0 && id.count == 8, "\(built.stdout)\(built.stderr)")
        #expect(try await lab.listed().active != id)
        #expect(try await lab.ssh("gear activate \(id)").status == 0)
        #expect(try await lab.listed().active == id)
        #expect(TestFiles.read(lab.deployments + "/current/repo/off.txt") == "x")
        let before = lab.deploymentDirectories
        try await lab.settings(#"{"keep_deployments":3,"auto_deploy":true,"deployment_branch":"master","deployment_type":"git"}"#)

        // Hostile ref names: pushed, deployed by name, sent by the broker; nothing runs.
        let marker = "/tmp/pwned-\(lab.gear.uuid)"
        let hostile = "$(touch${IFS}\(marker))"
        #expect(try lab.push("HEAD:refs/heads/" + hostile).status == 0)
        #expect(lab.deploymentDirectories == before, "a push of another branch deployed")
        let byName = try await lab.ssh("gear deploy '\(hostile)'")
        #expect(byName.status == 0 && byName.stderr.contains("Building git ref '\(hostile)'"), "\(byName.stdout)\(byName.stderr)")
        let missing = try await lab.ssh("gear deploy '\(hostile)x'")
        #expect(missing.status == 255 && missing.stderr.contains("is invalid"), "\(missing.stdout)\(missing.stderr)")
        let byBroker = try await lab.agent("deploy", #""--with-ref":"\#(hostile)""#)
        #expect(byBroker.status == 0 && byBroker.stdout.contains(#""exitcode":0"#), "\(byBroker.stdout)")
        let refused = try await lab.agent("deploy", #""--with-ref":"--upload-pack=touch \#(marker)""#)
        #expect(refused.stdout.contains("--with-ref"), "\(refused.stdout)")
        #expect(access(marker, F_OK) != 0, "a ref name ran a command")

        // Two deploys at once: one waits for the other; each deployment holds its own commit.
        try lab.commit(["which.txt": "one"])
        try lab.git(["tag", "one"])
        try lab.commit(["which.txt": "two"])
        try lab.git(["tag", "two"])
        #expect(try lab.git(["push", "-q", "origin", "one", "two"]).status == 0)
        async let first = lab.ssh("gear deploy one")
        async let second = lab.ssh("gear deploy two")
        let results = try await [first, second]
        #expect(results.allSatisfy { $0.status == 0 }, "\(results.map { $0.stderr })")
        for directory in lab.deploymentDirectories {
            let metadata = TestFiles.read(lab.deployments + "/" + directory + "/metadata.json") ?? ""
            if metadata.contains(#""git_ref":"one""#) { #expect(TestFiles.read(lab.deployments + "/" + directory + "/repo/which.txt") == "one") }
            if metadata.contains(#""git_ref":"two""#) { #expect(TestFiles.read(lab.deployments + "/" + directory + "/repo/which.txt") == "two") }
        }
    }

    @Test("deployment_type binary refuses a push and takes gear binary-deploy of an archived deployment; hostile archives change nothing",
          .timeLimit(.minutes(4)))
    func binaryDeployments() async throws {
        try Self.requirements()
        let lab = try await Lab("deploy-bin", cartridge: "mock", uids: 45100...45199)
        defer { lab.destroy() }
        try lab.commit(["payload.txt": "from git"])
        #expect(try lab.push().status == 0)
        let archive = lab.node.root + "/deployment.tar.gz"
        let archived = try await lab.node.sshStreaming(lab.gear, lab.key, "gear archive-deployment", stdout: archive)
        #expect(archived.status == 0, "\(archived.stderr)")
        try await lab.settings(#"{"keep_deployments":5,"auto_deploy":true,"deployment_branch":"master","deployment_type":"binary"}"#)

        try lab.commit(["payload.txt": "pushed later"])
        let refused = try lab.push()
        #expect(refused.status != 0 && refused.stderr.contains("git-based deployments are disabled"), "\(refused.stderr)")

        let before = lab.deploymentDirectories
        let deployed = try await lab.ssh("gear binary-deploy", stdin: archive)
        #expect(deployed.status == 0, "\(deployed.stdout)\(deployed.stderr)")
        #expect(lab.deploymentDirectories.count == before.count + 1)
        #expect(TestFiles.read(lab.deployments + "/current/repo/payload.txt") == "from git")

        // Hostile archives, made with python's tarfile: refused with the member, nothing changes.
        let after = lab.deploymentDirectories
        let current = lab.current
        let escape = lab.gear.home + "/escaped"
        for (index, members) in [#"[("file", "/tmp/absolute", "x")]"#, #"[("file", "repo/../../escaped", "x")]"#,
                                 #"[("link", "repo/out", "../../../.."), ("file", "repo/out/escaped", "x")]"#,
                                 #"[("link", "repo/up", "../..")]"#, #"[("file", "elsewhere/x", "x")]"#,
                                 #"[("fifo", "repo/pipe", "")]"#].enumerated() {
            let path = lab.node.root + "/hostile\(index).tar.gz"
            let script = """
                import io, tarfile, sys
                with tarfile.open(sys.argv[1], "w:gz") as t:
                    for kind, name, data in \(members):
                        info = tarfile.TarInfo(name)
                        if kind == "file":
                            info.size = len(data); t.addfile(info, io.BytesIO(data.encode()))
                        elif kind == "link":
                            info.type = tarfile.SYMTYPE; info.linkname = data; t.addfile(info)
                        else:
                            info.type = tarfile.FIFOTYPE; t.addfile(info)
                """
            #expect(try ProcessRunner.run(["/usr/bin/python3", "-c", script, path]).status == 0)
            let result = try await lab.ssh("gear binary-deploy", stdin: path)
            #expect(result.status == 255 && result.stderr.contains("archive refused"), "\(members): \(result.stderr)")
            #expect(lab.deploymentDirectories == after && lab.current == current, "\(members) changed the deployments")
            #expect(access(escape, F_OK) != 0 && access("/tmp/absolute", F_OK) != 0)
        }

        // The gear rewrites its deployment's metadata: the broker's reply keeps its shape.
        let tampered = #"{"git_ref":"\#(String(repeating: "r", count: 5000))","id":{"nested":[1,2,{"x":"y"}]},"activations":["a",1e308,{}],"extra":"\u0000"}"#
        let written = try await lab.node.asGear(lab.gear, "printf '%s' '\(tampered)' > app-deployments/current/metadata.json")
        #expect(written.status == 0, "\(written.stderr)")
        let reply = try await lab.agent("update-configuration", #""--with-config":{"keep_deployments":5}"#)
        #expect(reply.status == 0)
        let listed = try await lab.agent("activate", #""--with-deployment-id":"00000000""#)
        #expect(listed.stdout.contains(#""deployments":["#) && !listed.stdout.contains("rrrrrrrrrr") && !listed.stdout.contains("nested"),
                "\(listed.stdout.prefix(2000))")
    }
}
