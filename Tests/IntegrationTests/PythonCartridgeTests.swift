import Foundation
import NodeTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The python cartridge as the deploy engine drives it: `control build` into a deployment's
/// dependencies directory, and `control restart` onto a newly activated deployment without a
/// single refused or failed request. The scripts run directly, on a copy of the cartridge, with a
/// gear-like home (`app-deployments/<name>/{repo,dependencies}`, `current`, `app-root/runtime`).
@Suite("python cartridge deploys")
struct PythonCartridgeTests {
    static let cartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"

    /// A copy of the cartridge and a home laid out as the deploy engine lays it out.
    struct Gear {
        let node = ScratchNode("python-deploys")
        var cartridge: String { node.root + "/python" }
        var home: String { node.root + "/home" }
        let port = HTTPProbe.freePort()

        init() throws {
            #expect(try ProcessRunner.run(["/bin/cp", "-a", PythonCartridgeTests.cartridges + "/python", cartridge]).status == 0)
            try TestFiles.makeDirectories(home + "/app-deployments")
            try TestFiles.makeDirectories(home + "/app-root/runtime")
            try TestFiles.makeDirectories(home + "/app-root/data")
            try TestFiles.makeDirectories(node.root + "/logs")
            #expect(symlink("../../app-deployments/current/repo", home + "/app-root/runtime/repo") == 0)
            #expect(symlink("../../app-deployments/current/dependencies", home + "/app-root/runtime/dependencies") == 0)
        }

        func deploymentDirectory(_ name: String) -> String { home + "/app-deployments/" + name }

        /// A deployment whose wsgi.py answers `body`, or whose wsgi.py is `source` when given.
        func deploy(_ name: String, body: String = "", source: String? = nil) throws {
            let directory = deploymentDirectory(name)
            try TestFiles.makeDirectories(directory + "/repo")
            try TestFiles.makeDirectories(directory + "/dependencies")
            try TestFiles.makeDirectories(directory + "/build-dependencies")
            try TestFiles.write(directory + "/repo/wsgi.py", source ?? """
                def application(environ, start_response):
                    body = b"\(body)"
                    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
                    return [body]

                """)
        }

        /// Points `app-deployments/current` at `name` atomically, as the engine does.
        func activate(_ name: String) {
            let link = home + "/app-deployments/current"
            unlink(link + ".new")
            symlink(name, link + ".new")
            rename(link + ".new", link)
        }

        /// The gear's environment at run time, or for the build of deployment `building`.
        func environment(building: String? = nil) -> [String: String] {
            let runtime = home + "/app-root/runtime"
            let deployment = building.map(deploymentDirectory)
            return [
                "HOME": home, "OPENSHIFT_PYTHON_DIR": cartridge,
                "OPENSHIFT_PYTHON_IP": "127.0.0.1", "OPENSHIFT_PYTHON_PORT": "\(port)",
                "OPENSHIFT_LOG_DIR": node.root + "/logs", "OPENSHIFT_DATA_DIR": home + "/app-root/data/",
                "OPENSHIFT_REPO_DIR": (deployment ?? runtime) + "/repo/",
                "OPENSHIFT_DEPENDENCIES_DIR": (deployment ?? runtime) + "/dependencies/",
                "OPENSHIFT_BUILD_DEPENDENCIES_DIR": (deployment ?? runtime) + "/build-dependencies/",
            ]
        }

        func control(_ action: String, building: String? = nil, extra: [String: String] = [:]) throws -> ProcessRunner.Result {
            try ProcessRunner.run([cartridge + "/bin/control", action], environment: environment(building: building).merging(extra) { $1 })
        }

        var log: String { TestFiles.read(node.root + "/logs/python.log") ?? "" }

        func destroy() {
            _ = try? control("stop")
            node.destroy()
        }
    }

    /// Threads that GET / over and over (each with a fresh connection) and count the answers by
    /// body; a refused or reset connection, a timeout or a non-200 answer counts as a failure.
    final class Load: Sendable {
        let counts = Mutex<[String: Int]>([:])
        let failures = Mutex<[String]>([])
        let stopping = Atomic<Bool>(false)
        let running = Atomic<Int>(0)

        init(port: UInt16, threads: Int = 3) {
            for _ in 0..<threads {
                running.add(1, ordering: .sequentiallyConsistent)
                Thread { [self] in
                    while !stopping.load(ordering: .sequentiallyConsistent) {
                        if let answer = HTTPProbe.get(port: port), answer.status == 200 {
                            counts.withLock { $0[answer.body, default: 0] += 1 }
                        } else {
                            let answer = HTTPProbe.get(port: port)  // what it looks like just after
                            failures.withLock { $0.append("failed; next try: \(answer.map { "\($0.status) \($0.body)" } ?? "nothing")") }
                        }
                    }
                    running.subtract(1, ordering: .sequentiallyConsistent)
                }.start()
            }
        }

        var total: Int { counts.withLock { $0.values.reduce(0, +) } }

        /// Stops the threads and waits for them.
        func stop() async {
            stopping.store(true, ordering: .sequentiallyConsistent)
            _ = await eventually(within: 10) { running.load(ordering: .sequentiallyConsistent) == 0 }
        }
    }

    @Test("restarts onto new deployments under load: every request answered, by the old or the new code",
          .timeLimit(.minutes(4)))
    func restartUnderLoad() async throws {
        let gear = try Gear()
        defer { gear.destroy() }
        try gear.deploy("A", body: "version A\\n")
        try gear.deploy("B", body: "version B\\n")
        gear.activate("A")
        let start = try gear.control("start")
        #expect(start.status == 0 && start.stdout.hasPrefix("CLIENT_RESULT: python started on 127.0.0.1:\(gear.port)"),
                "\(start.stdout)\(start.stderr)")
        // start returns once the server listens.
        #expect(HTTPProbe.get(port: gear.port)?.body == "version A\n", "\(gear.log)")

        let load = Load(port: gear.port)
        #expect(await eventually(within: 5) { load.total > 10 })
        var last = "A"
        var restarts: [String] = []
        for round in 1...12 {
            last = round % 2 == 1 ? "B" : "A"
            gear.activate(last)
            let restart = try await onThread { try gear.control("restart") }
            restarts.append("\(restart.status) \(restart.stdout)")
            #expect(restart.status == 0 && restart.stdout.contains("CLIENT_RESULT: python restarted"), "\(restart.stdout)\(restart.stderr)")
            // A restart returns once the new code serves.
            #expect(HTTPProbe.get(port: gear.port)?.body == "version \(last)\n")
            let seen = load.total
            #expect(await eventually(within: 5) { load.total > seen + 5 })
        }
        await load.stop()
        let counts = load.counts.withLock { $0 }
        let failures = load.failures.withLock { $0 }
        #expect(failures.isEmpty, "\(failures.count) failed requests of \(load.total): \(failures.prefix(5))\n\(gear.log.suffix(3000))")
        #expect(Set(counts.keys).isSubset(of: ["version A\n", "version B\n"]), "\(counts)")
        #expect((counts["version A\n"] ?? 0) > 0 && (counts["version B\n"] ?? 0) > 0, "\(counts)")
        #expect(HTTPProbe.get(port: gear.port)?.body == "version \(last)\n")

        // One server is left, and it stops.
        let pid = try #require(TestFiles.read(gear.cartridge + "/run/server.pid").flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        let processes = try ProcessRunner.run(["/usr/bin/pgrep", "-f", "--", gear.cartridge + "/bin/serve.py"]).stdout
        #expect(processes.split(separator: "\n") == ["\(pid)"], "\(processes)")
        #expect(try gear.control("stop").status == 0)
        #expect(await eventually(within: 5) { HTTPProbe.get(port: gear.port) == nil })
        #expect(try gear.control("status").status != 0)
    }

    @Test("a restart onto code that does not load fails with a CLIENT_ERROR, and the old code keeps serving",
          .timeLimit(.minutes(3)))
    func restartOntoBrokenCode() async throws {
        let gear = try Gear()
        defer { gear.destroy() }
        try gear.deploy("good", body: "good\\n")
        try gear.deploy("broken", source: "def application(environ, start_response)\n    return []\n")
        gear.activate("good")
        let start = try gear.control("start")
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)")
        let load = Load(port: gear.port)
        #expect(await eventually(within: 5) { load.total > 10 })

        gear.activate("broken")
        let restart = try await onThread { try gear.control("restart") }
        #expect(restart.status != 0)
        let error = restart.stdout.split(separator: "\n").first { $0.hasPrefix("CLIENT_ERROR: ") }
        #expect(error?.contains("SyntaxError") == true, "\(restart.stdout)\(restart.stderr)")
        let seen = load.total
        #expect(await eventually(within: 5) { load.total > seen + 10 })
        await load.stop()
        #expect(load.failures.withLock { $0 }.isEmpty, "\(load.failures.withLock { $0.prefix(5) })\n\(gear.log.suffix(3000))")
        #expect(load.counts.withLock { $0 } .keys.sorted() == ["good\n"])
        #expect(try gear.control("status").status == 0)

        // Fixed code goes live with the next restart.
        try gear.deploy("fixed", body: "fixed\\n")
        gear.activate("fixed")
        let again = try await onThread { try gear.control("restart") }
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        #expect(HTTPProbe.get(port: gear.port)?.body == "fixed\n")
    }

    @Test("build: no requirements.txt, no virtualenv; an unreachable package index fails the build with a CLIENT_ERROR naming it",
          .timeLimit(.minutes(3)))
    func buildFailures() async throws {
        let gear = try Gear()
        defer { gear.destroy() }
        try gear.deploy("plain", body: "plain\\n")
        let plain = try gear.control("build", building: "plain")
        #expect(plain.status == 0, "\(plain.stdout)\(plain.stderr)")
        #expect(!TestFiles.exists(gear.deploymentDirectory("plain") + "/dependencies/venv"))
        for action in ["pre-repo-archive", "update-configuration", "pre-build", "deploy", "post-deploy"] {
            #expect(try gear.control(action, building: "plain").status == 0, "\(action)")
        }

        try gear.deploy("offline", body: "offline\\n")
        try TestFiles.write(gear.deploymentDirectory("offline") + "/repo/requirements.txt", "openshift-node-test-absent-package==1.0\n")
        // An index that refuses connections: pip gives up after its bounded retries (the test's
        // time limit catches a build that waits on it for long), and says which index failed.
        let index = "http://127.0.0.1:9/simple"
        let build = try await onThread { try gear.control("build", building: "offline", extra: ["PIP_INDEX_URL": index]) }
        #expect(build.status != 0)
        let error = build.stdout.split(separator: "\n").first { $0.hasPrefix("CLIENT_ERROR: ") }
        #expect(error?.contains(index) == true, "\(build.stdout)\(build.stderr)")
    }

    @Test("build installs requirements.txt into a virtualenv of the deployment, which the restarted server uses",
          .timeLimit(.minutes(4)))
    func buildAndServeFromVirtualenv() async throws {
        let gear = try Gear()
        defer { gear.destroy() }
        // A tiny wheel, found offline.
        let wheels = gear.node.root + "/wheels"
        try TestFiles.makeDirectories(wheels)
        let made = try ProcessRunner.run(["/usr/bin/env", "python3", "-c", Self.makeWheel, wheels])
        #expect(made.status == 0, "\(made.stderr)")
        let app = """
            import sys
            import hellopkg
            def application(environ, start_response):
                body = ("%s from %s\\n" % (hellopkg.GREETING, sys.prefix)).encode()
                start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
                return [body]

            """
        for name in ["first", "second"] {
            try gear.deploy(name, source: app)
            try TestFiles.write(gear.deploymentDirectory(name) + "/repo/requirements.txt", "--no-index\n--find-links \(wheels)\nhellopkg\n")
        }
        let first = try await onThread { try gear.control("build", building: "first") }
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        let venv = gear.deploymentDirectory("first") + "/dependencies/venv"
        #expect(TestFiles.exists(venv + "/bin/python3"))
        gear.activate("first")
        let start = try gear.control("start")
        #expect(start.status == 0, "\(start.stdout)\(start.stderr)\(gear.log)")
        #expect(HTTPProbe.get(port: gear.port)?.body == "hello from hellopkg from \(venv)\n", "\(gear.log)")

        // The next deployment starts from a copy of the previous dependencies: its venv is rebuilt
        // in place, and the restarted server runs from it.
        TestFiles.remove(gear.deploymentDirectory("second") + "/dependencies")
        #expect(try ProcessRunner.run(["/bin/cp", "-a", gear.deploymentDirectory("first") + "/dependencies",
                                       gear.deploymentDirectory("second") + "/dependencies"]).status == 0)
        let second = try await onThread { try gear.control("build", building: "second") }
        #expect(second.status == 0, "\(second.stdout)\(second.stderr)")
        let secondVenv = gear.deploymentDirectory("second") + "/dependencies/venv"
        let configuration = TestFiles.read(secondVenv + "/bin/activate") ?? ""
        #expect(configuration.contains("\"\(secondVenv)\"") && !configuration.contains("\"\(venv)\""), "\(configuration)")
        gear.activate("second")
        let restart = try await onThread { try gear.control("restart") }
        #expect(restart.status == 0, "\(restart.stdout)\(restart.stderr)")
        #expect(HTTPProbe.get(port: gear.port)?.body == "hello from hellopkg from \(secondVenv)\n", "\(gear.log)")
    }

    /// Writes hellopkg-0.1-py3-none-any.whl (a package with GREETING) into argv[1].
    static let makeWheel = """
        import base64, hashlib, os, sys, zipfile
        files = {
            "hellopkg/__init__.py": 'GREETING = "hello from hellopkg"\\n',
            "hellopkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\\nName: hellopkg\\nVersion: 0.1\\n",
            "hellopkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
        }
        record = []
        with zipfile.ZipFile(os.path.join(sys.argv[1], "hellopkg-0.1-py3-none-any.whl"), "w") as wheel:
            for name, text in files.items():
                data = text.encode()
                wheel.writestr(name, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                record.append("%s,sha256=%s,%d" % (name, digest, len(data)))
            record.append("hellopkg-0.1.dist-info/RECORD,,")
            wheel.writestr("hellopkg-0.1.dist-info/RECORD", "\\n".join(record) + "\\n")
        """
}
