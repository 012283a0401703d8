import Foundation
import Containment
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// kill -9 at random moments of the node's state changes, many times: app-create, configure,
/// deconfigure (node mode, real accounts, through the built `oo-devel-node`) and cartridge
/// install (`oo-admin-cartridge`). After every kill, the next operation finishes or refuses
/// cleanly, and destroy leaves no account, group, cgroup, home, record, route or lock file.
@Suite("crash injection: kill -9 at random moments", .enabled(if: Prerequisites.rootOrCI), .serialized)
struct CrashInjectionTests {
    static let runs = 50

    /// A node-mode node in a scratch directory: its own gear directory, repository, frontend
    /// files and cgroup parent, uids 47500...47599, the shipped cartridges.
    struct Node {
        let scratch = ScratchNode("crash")
        let config: String
        var gearBaseDir: String { scratch.root + "/gears" }

        init() throws {
            chmod(scratch.root, 0o755)
            config = scratch.root + "/node.conf"
            try TestFiles.write(config, """
                GEAR_BASE_DIR=\(scratch.root)/gears
                CARTRIDGE_REPO_DIR=\(scratch.root)/repository
                CARTRIDGE_BASE_PATH=\(shippedCartridgesPath)
                GEAR_MIN_UID=47500
                GEAR_MAX_UID=47599
                GEAR_SHELL=/bin/sh
                OPENSHIFT_CGROUP_ROOT=openshift-node-crash
                OPENSHIFT_HTTP_CONF_DIR=\(scratch.root)/httpd
                LAST_ACCESS_DIR=\(scratch.root)/last_access
                AGENT_SOCKET=\(scratch.root)/agent.sock
                FRONTEND_WAKE_PORT=0
                """)
            let rescan = try ProcessRunner.node("oo-admin-cartridge", ["--action", "rescan", "--config", config])
            #expect(rescan.status == 0, "\(rescan.stderr)")
        }

        func devel(_ arguments: [String]) async throws -> ProcessRunner.Result {
            let config = config
            return try await onThread { try ProcessRunner.node("oo-devel-node", arguments + ["--config", config]) }
        }

        func admin(_ arguments: [String]) async throws -> ProcessRunner.Result {
            let config = config
            return try await onThread { try ProcessRunner.node("oo-admin-cartridge", arguments + ["--config", config]) }
        }

        /// Starts `program`, kills it with SIGKILL after `delay` seconds; its exit status.
        func killed(_ arguments: [String], program: String = "oo-devel-node", after delay: Double) async throws -> Int32 {
            let (config, root) = (config, scratch.root)
            return try await onThread {
                let pid = try ProcessRunner.spawn([ProcessRunner.executable(program)] + arguments + ["--config", config],
                                                  stdout: root + "/killed.out", stderr: root + "/killed.err")
                usleep(UInt32(delay * 1_000_000))
                kill(pid, SIGKILL)
                return ProcessRunner.wait(pid)
            }
        }

        /// Every trace a gear can leave, that is still there.
        func traces(of uuid: String) -> [String] {
            var found: [String] = []
            if UnixAccounts.user(named: uuid) != nil { found.append("user") }
            if UnixAccounts.groupExists(named: uuid) { found.append("group") }
            for path in [uuid, ".gears/\(uuid).json", ".locks/gear.\(uuid)", ".frontend/\(uuid).json", ".frontend/.lock.\(uuid)"]
            where TestFiles.exists(gearBaseDir + "/" + path) {
                found.append(path)
            }
            // A public name still claimed by the gear.
            let names = gearBaseDir + "/.frontend/names"
            for name in TestFiles.list(names, includeHidden: true) {
                var buffer = [CChar](repeating: 0, count: 256)
                let count = readlink(names + "/" + name, &buffer, 255)
                if count > 0, String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) == uuid {
                    found.append("name claim \(name)")
                }
            }
            for directory in [".gears", ".frontend"] {
                found += TestFiles.list(gearBaseDir + "/" + directory, includeHidden: true)
                    .filter { $0.hasPrefix(".\(uuid).json.tmp-") || $0.hasPrefix("\(uuid).uid-") }
            }
            if let hierarchy = CgroupHierarchy.detect(),
               let cgroup = try? GearCgroup(hierarchy: hierarchy, parent: "openshift-node-crash", name: uuid), cgroup.exists {
                found.append("cgroup")
            }
            let processes = (FileSystem.entries("/proc") ?? []).filter { name in
                var st = stat()
                return Int32(name) != nil && stat("/proc/" + name, &st) == 0 && (47500...47599).contains(st.st_uid)
            }
            if !processes.isEmpty { found.append("processes \(processes)") }
            return found
        }

        func destroy() {
            for uuid in TestFiles.list(gearBaseDir + "/.gears").filter({ $0.hasSuffix(".json") }).map({ String($0.dropLast(5)) }) {
                _ = try? ProcessRunner.node("oo-devel-node", ["app-destroy", "--with-container-uuid", uuid, "--config", config])
            }
            if let hierarchy = CgroupHierarchy.detect(),
               let parent = try? GearCgroup(hierarchy: hierarchy, parent: "", name: "openshift-node-crash") {
                for directory in parent.directories { rmdir(directory) }
            }
            scratch.destroy()
        }
    }

    /// How long an operation takes when nothing kills it, as the first window to kill it in: the
    /// fastest of three runs, at most 3 s.
    static func duration(_ body: () async throws -> Void, reset: () async throws -> Void) async throws -> Double {
        var fastest = Double.infinity
        for attempt in 0..<3 {
            if attempt > 0 { try await reset() }
            let start = monotonicSeconds()
            try await body()
            fastest = min(fastest, monotonicSeconds() - start)
        }
        return min(fastest, 3)
    }

    /// The window the kill moments are drawn from, kept on the operation as it runs now: a kill
    /// that comes after the operation ended shrinks it, one that lands inside grows it a little.
    /// A machine that runs the operation faster or slower than the probe did (another load, a
    /// warm cache) still gets most of its kills inside the operation, at moments spread over it.
    struct KillWindow {
        var seconds: Double
        init(probe: Double) { seconds = max(probe * 1.2, 0.001) }
        func moment() -> Double { Double.random(in: 0...seconds) }
        mutating func record(killed: Bool) { seconds = killed ? min(seconds * 1.05, 3) : max(seconds * 0.7, 0.001) }
    }

    @Test("app-create killed at random moments: a re-run completes it or destroy removes every trace", .timeLimit(.minutes(5)))
    func create() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        let window = try await Self.duration({ () async throws in
            #expect(try await node.devel(["app-create", "--with-container-uuid", "crashprobe"]).status == 0)
        }, reset: { () async throws in
            #expect(try await node.devel(["app-destroy", "--with-container-uuid", "crashprobe"]).status == 0)
        })
        var kills = KillWindow(probe: window)
        #expect(try await node.devel(["app-destroy", "--with-container-uuid", "crashprobe"]).status == 0)
        var completed = 0
        var interrupted = 0
        for run in 0..<Self.runs {
            let uuid = "crash\(run)"
            let killed = try await node.killed(["app-create", "--with-container-uuid", uuid], after: kills.moment()) == 128 + SIGKILL
            kills.record(killed: killed)
            if killed { interrupted += 1 }
            if run % 2 == 0 {
                // The broker retries the create: it completes, or says the gear exists.
                let again = try await node.devel(["app-create", "--with-container-uuid", uuid])
                #expect(again.status == 0 || again.stderr.contains("already exists"), "run \(run): \(again.stderr)")
                let status = try await node.devel(["status", "--with-container-uuid", uuid])
                #expect(status.status == 0, "run \(run): the re-created gear works: \(status.stderr)")
                completed += 1
            }
            let destroy = try await node.devel(["app-destroy", "--with-container-uuid", uuid])
            #expect(destroy.status == 0, "run \(run): \(destroy.stderr)")
            #expect(node.traces(of: uuid).isEmpty, "run \(run): destroy left \(node.traces(of: uuid))")
        }
        #expect(completed == Self.runs / 2)
        #expect(interrupted >= Self.runs / 4, "most kills land before the create ends: \(interrupted) of \(Self.runs)")
    }

    @Test("add-alias and remove-alias killed at random moments: every alias the document names is the gear's claim, and a re-run finishes",
          .timeLimit(.minutes(8)))
    func aliases() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        #expect(try await node.devel(["app-create", "--with-container-uuid", "aliasgear", "--with-namespace", "ns"]).status == 0)
        func add(_ name: String) -> [String] { ["add-alias", "--with-container-uuid", "aliasgear", "--with-alias-name", name] }
        func remove(_ name: String) -> [String] { ["remove-alias", "--with-container-uuid", "aliasgear", "--with-alias-name", name] }
        let window = try await Self.duration({ () async throws in
            #expect(try await node.devel(add("probe.shop.org")).status == 0)
        }, reset: { () async throws in
            #expect(try await node.devel(remove("probe.shop.org")).status == 0)
        })
        #expect(try await node.devel(remove("probe.shop.org")).status == 0)
        var kills = KillWindow(probe: window)
        let frontend = node.gearBaseDir + "/.frontend"
        func owner(_ name: String) -> String? {
            var buffer = [CChar](repeating: 0, count: 256)
            let count = readlink(frontend + "/names/" + name, &buffer, 255)
            return count > 0 ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : nil
        }
        func documentAliases() -> [String] {
            guard let data = TestFiles.read(frontend + "/aliasgear.json"),
                  let object = try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any] else { return ["unreadable"] }
            return object["aliases"] as? [String] ?? []
        }
        func mapNames() -> [String] {
            (TestFiles.read(node.scratch.root + "/httpd/aliases.txt") ?? "").split(separator: "\n").map { String($0.split(separator: " ")[0]) }
        }
        var interrupted = 0
        for run in 0..<Self.runs {
            let name = "a\(run).shop.org"
            for step in [add(name), remove(name)] {
                let killed = try await node.killed(step, after: kills.moment()) == 128 + SIGKILL
                kills.record(killed: killed)
                if killed { interrupted += 1 }
                // Whatever the moment: what the document names, the gear holds.
                for alias in documentAliases() { #expect(owner(alias) == "aliasgear", "run \(run): \(alias) named but not claimed") }
                // The broker retries: it finishes (or finds it already done).
                let again = try await node.devel(step)
                #expect(again.status == 0 || again.stderr.contains("is not an alias of gear aliasgear"), "run \(run) \(step[0]): \(again.stderr)")
            }
            #expect(!documentAliases().contains(name) && owner(name) == nil && !mapNames().contains(name), "run \(run): \(name) left behind")
        }
        #expect(interrupted >= Self.runs / 2, "most kills land inside the operations: \(interrupted) of \(2 * Self.runs)")
        #expect(try await node.devel(["app-destroy", "--with-container-uuid", "aliasgear"]).status == 0)
        #expect(node.traces(of: "aliasgear").isEmpty, "\(node.traces(of: "aliasgear"))")
    }

    @Test("configure killed at random moments: a re-run or a deconfigure always works, and nothing of it is left", .timeLimit(.minutes(8)))
    func configure() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        let uuid = "crashcfg"
        #expect(try await node.devel(["app-create", "--with-container-uuid", uuid]).status == 0)
        let window = try await Self.duration({ () async throws in
            #expect(try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        }, reset: { () async throws in
            #expect(try await node.devel(["deconfigure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        })
        var kills = KillWindow(probe: window)
        #expect(try await node.devel(["deconfigure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        var interrupted = 0
        for run in 0..<Self.runs {
            let killed = try await node.killed(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"],
                                               after: kills.moment()) == 128 + SIGKILL
            kills.record(killed: killed)
            if killed { interrupted += 1 }
            if run % 2 == 0 {
                let again = try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"])
                #expect(again.status == 0 || again.stderr.contains("already configured"), "run \(run): \(again.stderr)")
                let status = try await node.devel(["status", "--with-container-uuid", uuid])
                #expect(status.status == 0 && status.stdout.contains("mock"), "run \(run): \(status.stdout) \(status.stderr)")
            }
            let deconfigure = try await node.devel(["deconfigure", "--with-container-uuid", uuid, "--cart-name", "mock"])
            #expect(deconfigure.status == 0 || deconfigure.stderr.contains("is not configured"), "run \(run): \(deconfigure.stderr)")
            let home = node.gearBaseDir + "/" + uuid
            #expect(!TestFiles.exists(home + "/mock"), "run \(run): the cartridge directory is left")
            let env = TestFiles.environment(home + "/.env")
            #expect(env.keys.filter { $0.hasPrefix("OPENSHIFT_MOCK") || $0 == "OPENSHIFT_PRIMARY_CARTRIDGE_DIR" }.isEmpty,
                    "run \(run): variables left: \(env.keys.sorted())")
        }
        #expect(interrupted >= Self.runs / 4, "most kills land before the configure ends: \(interrupted) of \(Self.runs)")
        #expect(try await node.devel(["app-destroy", "--with-container-uuid", uuid]).status == 0)
        #expect(node.traces(of: uuid).isEmpty, "destroy left \(node.traces(of: uuid))")
    }

    @Test("deconfigure killed at random moments: a re-run finishes it, and nothing of the cartridge is left", .timeLimit(.minutes(8)))
    func deconfigure() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        let uuid = "crashdcf"
        #expect(try await node.devel(["app-create", "--with-container-uuid", uuid]).status == 0)
        #expect(try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        let window = try await Self.duration({ () async throws in
            #expect(try await node.devel(["deconfigure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        }, reset: { () async throws in
            #expect(try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        })
        var kills = KillWindow(probe: window)
        var interrupted = 0
        for run in 0..<Self.runs {
            let configure = try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"])
            #expect(configure.status == 0, "run \(run): \(configure.stderr)")
            let killed = try await node.killed(["deconfigure", "--with-container-uuid", uuid, "--cart-name", "mock"],
                                               after: kills.moment()) == 128 + SIGKILL
            kills.record(killed: killed)
            if killed { interrupted += 1 }
            let again = try await node.devel(["deconfigure", "--with-container-uuid", uuid, "--cart-name", "mock"])
            #expect(again.status == 0 || again.stderr.contains("is not configured"), "run \(run): \(again.stderr)")
            let home = node.gearBaseDir + "/" + uuid
            #expect(!TestFiles.exists(home + "/mock"), "run \(run): the cartridge directory is left")
            #expect(TestFiles.environment(home + "/.env").keys.filter { $0.hasPrefix("OPENSHIFT_MOCK") }.isEmpty, "run \(run)")
        }
        #expect(interrupted >= Self.runs / 4, "most kills land before the deconfigure ends: \(interrupted) of \(Self.runs)")
        #expect(try await node.devel(["app-destroy", "--with-container-uuid", uuid]).status == 0)
        #expect(node.traces(of: uuid).isEmpty, "destroy left \(node.traces(of: uuid))")
    }

    @Test("gear deploy killed at random moments: the gear keeps a whole active deployment, and the next deploy completes and serves",
          .timeLimit(.minutes(8)))
    func deploy() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        let uuid = "crashdep"
        let created = try await node.devel(["app-create", "--with-container-uuid", uuid])
        try #require(created.status == 0, "\(created.stderr)")
        let uid = created.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        #expect(try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        #expect(try await node.devel(["start", "--with-container-uuid", uuid]).status == 0)
        let home = node.gearBaseDir + "/" + uuid
        let deployments = home + "/app-deployments"
        // `gear deploy` as the gear itself, as a push's hook runs it: its uid, the gear's variables.
        let environment = TestFiles.environment(home + "/.env").merging(["PATH": "/usr/bin:/bin"]) { $1 }
        let argv = ["/usr/bin/setpriv", "--reuid=\(uid)", "--regid=\(uid)", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                    "--", ProcessRunner.executable("gear"), "deploy"]
        let root = node.scratch.root
        func deploy(killAfter delay: Double?) async throws -> Int32 {
            try await onThread {
                let pid = try ProcessRunner.spawn(argv, stdout: root + "/deploy.out", stderr: root + "/deploy.err", environment: environment)
                guard let delay else { return ProcessRunner.wait(pid) }
                usleep(UInt32(delay * 1_000_000))
                kill(pid, SIGKILL)
                return ProcessRunner.wait(pid)
            }
        }
        let port = UInt16(environment["OPENSHIFT_MOCK_EXAMPLE_PORT1"] ?? "") ?? 8080
        let ip = environment["OPENSHIFT_MOCK_EXAMPLE_IP1"] ?? "127.0.0.1"
        let window = try await Self.duration({ () async throws in
            #expect(try await deploy(killAfter: nil) == 0, "\(TestFiles.read(root + "/deploy.err") ?? "")")
        }, reset: {})
        var kills = KillWindow(probe: window)
        var interrupted = 0
        for run in 0..<30 {
            let killed = try await deploy(killAfter: kills.moment()) == 128 + SIGKILL
            kills.record(killed: killed)
            if killed { interrupted += 1 }
            // Whatever the moment: `current` names a whole deployment, and the runtime goes through it.
            let current = (try? FileManager.default.destinationOfSymbolicLink(atPath: deployments + "/current")) ?? ""
            let metadata = TestFiles.read(deployments + "/" + current + "/metadata.json") ?? ""
            #expect(metadata.contains(#""id":""#) && metadata.contains(#""git_sha1":""#) && TestFiles.exists(deployments + "/current/repo/README"),
                    "run \(run): current \(current): \(metadata)")
            #expect(TestFiles.exists(home + "/app-root/runtime/repo/README"), "run \(run): the runtime's repo resolves")
            let next = try await deploy(killAfter: nil)
            #expect(next == 0, "run \(run): the next deploy: \(TestFiles.read(root + "/deploy.err") ?? "")")
            #expect(await eventually(within: 10) { HTTPProbe.get(port: port, host: ip)?.body == "mock cartridge\n" }, "run \(run): serving")
            let names = TestFiles.list(deployments, includeHidden: true)
            #expect(names.filter { $0.hasPrefix(".current.") || $0.hasPrefix(".incoming.") }.isEmpty, "run \(run): litter \(names)")
            #expect(names.filter { $0.first?.isNumber == true }.count <= 2, "run \(run): pruned to keep 1 (+ a failed one): \(names)")
        }
        #expect(interrupted >= 30 / 4, "most kills land inside the deploy: \(interrupted) of 30")
        #expect(try await node.devel(["app-destroy", "--with-container-uuid", uuid]).status == 0)
        #expect(node.traces(of: uuid).isEmpty, "destroy left \(node.traces(of: uuid))")
    }

    @Test("cartridge install killed at random moments: the repository stays consistent and a re-run installs it", .timeLimit(.minutes(5)))
    func install() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        var builder = CartridgeBuilder(name: "crashcart", versions: ["1.0", "2.0"])
        for index in 0..<200 { builder.files["usr/file\(index)"] = String(repeating: "x", count: 4096) }
        let source = try builder.write(into: node.scratch.root + "/src")
        let erase = ["--action", "erase", "--name", "crashcart", "--version", "2.0", "--cartridge_version", "0.0.1"]
        let window = try await Self.duration({ () async throws in
            #expect(try await node.admin(["--action", "install", "--source", source]).status == 0)
        }, reset: { () async throws in
            #expect(try await node.admin(erase).status == 0)
        })
        var kills = KillWindow(probe: window)
        #expect(try await node.admin(erase).status == 0)
        for run in 0..<Self.runs {
            kills.record(killed: try await node.killed(["--action", "install", "--source", source], program: "oo-admin-cartridge",
                                                       after: kills.moment()) == 128 + SIGKILL)
            let list = try await node.admin(["--action", "list"])
            #expect(list.status == 0, "run \(run): the listing works after the kill: \(list.stderr)")
            let listed = list.stdout.split(separator: "\n").filter { $0.contains("crashcart") }
            #expect(listed.isEmpty || listed.count == 2, "run \(run): both versions or none, never half: \(listed)")
            let again = try await node.admin(["--action", "install", "--source", source])
            #expect(again.status == 0, "run \(run): \(again.stderr)")
            #expect(try await node.admin(["--action", "list"]).stdout.split(separator: "\n").filter { $0.contains("crashcart") }.count == 2)
            let installed = node.scratch.root + "/repository/redhat-crashcart/0.0.1"
            #expect(TestFiles.list(installed + "/usr").count == 200, "run \(run): the installed copy is whole")
            #expect(TestFiles.list(node.scratch.root + "/repository/redhat-crashcart", includeHidden: true)
                        .filter { $0.contains("staging") || $0.contains("erasing") }.isEmpty, "run \(run): leftovers")
            #expect(try await node.admin(erase).status == 0, "run \(run)")
        }
    }

    @Test("an install killed at random moments never leaves an index that lies: every listing is what the manifests on disk say",
          .timeLimit(.minutes(6)))
    func indexUpdate() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try Node()
        defer { node.destroy() }
        // Two sources of one cartridge version that provide different software versions.
        var first = CartridgeBuilder(name: "flip", versions: ["1.0", "2.0"])
        var second = CartridgeBuilder(name: "flip", versions: ["1.0", "3.0"])
        for index in 0..<100 {
            first.files["usr/file\(index)"] = String(repeating: "a", count: 4096)
            second.files["usr/file\(index)"] = String(repeating: "b", count: 4096)
        }
        let sources = [try first.write(into: node.scratch.root + "/src", as: "first"),
                       try second.write(into: node.scratch.root + "/src", as: "second")]
        let manifest = node.scratch.root + "/repository/redhat-flip/0.0.1/metadata/manifest.yml"
        /// The flip lines a listing must show: those of the manifest on disk, or none.
        func expected() -> [String] {
            guard let text = TestFiles.read(manifest) else { return [] }
            let last = text.contains("'3.0'") ? "3.0" : "2.0"
            return ["(redhat, flip, 1.0, 0.0.1)", "(redhat, flip, \(last), 0.0.1)"]
        }
        func listed(_ run: Int) async throws -> [String] {
            let list = try await node.admin(["--action", "list"])
            #expect(list.status == 0, "run \(run): \(list.stderr)")
            return list.stdout.split(separator: "\n").map(String.init).filter { $0.contains("flip") }
        }
        let window = try await Self.duration({ () async throws in
            #expect(try await node.admin(["--action", "install", "--source", sources[1]]).status == 0)
        }, reset: { () async throws in
            #expect(try await node.admin(["--action", "install", "--source", sources[0]]).status == 0)
        })
        var kills = KillWindow(probe: window)
        var swappedThenKilled = 0
        for run in 0..<30 {
            // Always the source that is not installed: every run is a real change.
            let other = expected().last == "(redhat, flip, 3.0, 0.0.1)" ? sources[0] : sources[1]
            let before = expected()
            let killed = try await node.killed(["--action", "install", "--source", other],
                                               program: "oo-admin-cartridge", after: kills.moment()) == 128 + SIGKILL
            kills.record(killed: killed)
            if killed && before != expected() { swappedThenKilled += 1 }
            #expect(try await listed(run) == expected(), "run \(run): right after the kill")
            // Two seconds on, the index vouches for the entry by its lstat alone: the next kill
            // then lands on an index that trusts the previous version.
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await listed(run) == expected(), "run \(run): once settled (the listing rewrote the index)")
            #expect(try await listed(run) == expected(), "run \(run): through the settled index")
        }
        print("index crash loop: \(swappedThenKilled) of 30 kills fell after the new version was swapped in")
    }
}

/// The repository's shipped cartridges.
let shippedCartridgesPath = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"
