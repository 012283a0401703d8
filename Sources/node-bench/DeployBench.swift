import Access
import ArgumentParser
import Cartridges
import Containment
import Gears
import Logging
import NodeConfig
import NodeTestSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// `node-bench deploy --count N --deploys M` (root): `git push` deploys of a python gear over a
/// private sshd through the gear shell (`oo-trap-user`, with the built `gear` tool beside it as
/// GEAR_TOOL), measured three ways in one run:
/// - push-to-serving: from spawning `git push` until a GET to the gear's IP:PORT (polled every
///   10 ms from another thread) answers the new body; the push process's own wall time too;
/// - the floor: a plain `git push` of the same kind of commit, same sshd, same gear shell, to a
///   bare repository without hooks in a second gear, alternating with the deploys;
/// - M consecutive deploys while a thread requests the gear in a loop: failed requests.
struct DeployBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deploy",
        abstract: "git push deploys of a python gear: push-to-serving vs a hookless push (floor); failed requests during deploys.")

    @Option(help: "Timed deploys (and floor pushes, alternating).") var count = 10
    @Option(help: "Consecutive deploys while requests run in a loop.") var deploys = 20

    func run() throws {
        guard geteuid() == 0 else { throw ValidationError("node-bench deploy needs root (real gear accounts and an sshd)") }
        guard SSHServer.isInstalled else { throw ValidationError("OpenSSH is not installed (apt-get install openssh-server openssh-client)") }
        guard access("/usr/bin/git", X_OK) == 0 else { throw ValidationError("git is not installed") }
        let node = try BenchNode(label: "deploy-bench", uids: 44900...44999, cgroupRoot: "openshift-deploy-bench")
        let (work, nodeConf, manager, key, client) = (node.work, node.nodeConf, node.manager, node.key, node.client)
        let configuration = node.configuration
        let quiet = node.logger
        var created: [Gear] = []
        defer {
            if let app = created.first { _ = try? manager.control(app.uuid, .stop) }
            node.destroy(created)
        }
        let app = try manager.create(GearCreateRequest(uuid: "benchdeploy"))
        created.append(app)
        let floor = try manager.create(GearCreateRequest(uuid: "benchfloor"))
        created.append(floor)
        let keys = GearKeys(gears: manager, kerberosConfigFile: configuration.string("KRB5_CONFIG_FILE"), logger: quiet)
        for gear in [app, floor] { try keys.add(gear.uuid, [KeyEntry(type: key.type, content: key.body, comment: "bench")]) }

        // The deploying gear: python configured and started; its address from its .env.
        let configured = try manager.configure(app.uuid, cartridge: "python")
        guard configured.status == 0 else { throw ValidationError("configure python: \(configured.output)") }
        let started = try manager.control(app.uuid, .start)
        guard started.status == 0 else { throw ValidationError("start: \(started.output)") }
        let env = try manager.environmentVariables(app.uuid)
        guard let ip = env["OPENSHIFT_PYTHON_IP"], let port = env["OPENSHIFT_PYTHON_PORT"].flatMap({ UInt16($0) }) else {
            throw ValidationError("no OPENSHIFT_PYTHON_IP/PORT in the gear's .env")
        }
        @Sendable func get() -> HTTPProbe.Response? { HTTPProbe.get(port: port, host: ip) }
        let deadline = monotonicSeconds() + 30
        while get()?.status != 200 {
            guard monotonicSeconds() < deadline else { throw ValidationError("the python gear does not answer on \(ip):\(port)") }
            usleep(50_000)
        }

        let server = try SSHServer.start(nodeConf: nodeConf)
        defer { server.stop() }
        let environment = ["HOME": client, "PATH": "/usr/bin:/bin",
                           "GIT_SSH_COMMAND": "ssh " + server.clientOptions(key: key.path).joined(separator: " "),
                           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"]
        func git(_ arguments: [String]) throws -> ProcessRunner.Result {
            let result = try ProcessRunner.run(["/usr/bin/git"] + arguments, environment: environment)
            guard result.status == 0 else {
                throw ValidationError("git \(arguments.joined(separator: " ")) failed (\(result.status)): \(result.stderr)\n\(server.logTail())")
            }
            return result
        }
        let appClone = work + "/app"
        let floorClone = work + "/floor"
        _ = try git(["clone", "-q", "ssh://\(app.uuid)@127.0.0.1:\(server.port)/~/git/app.git/", appClone])

        // The floor: a bare copy of the same repository, no hooks, the second gear's.
        let floorRepo = floor.home + "/git/floor.git"
        mkdir(floor.home + "/git", 0o750)
        _ = try git(["clone", "-q", "--bare", "--no-hardlinks", appClone, floorRepo])
        let hooks = FileSystem.entries(floorRepo + "/hooks") ?? []
        for name in hooks { unlink(floorRepo + "/hooks/" + name) }
        let owned = try ProcessRunner.run(["/bin/chown", "-R", "\(floor.identity.uid):\(floor.identity.gid)", floor.home + "/git"])
        guard owned.status == 0 else { throw ValidationError("chown \(floor.home)/git: \(owned.stderr)") }
        chmod(floor.home + "/git", 0o750)
        _ = try git(["clone", "-q", "ssh://\(floor.uuid)@127.0.0.1:\(server.port)/~/git/floor.git/", floorClone])

        var version = 0
        func commit(_ clone: String, _ body: String) throws {
            try TestFiles.write(clone + "/wsgi.py", Self.wsgi(body))
            _ = try git(["-C", clone, "commit", "-q", "-a", "-m", body])
        }
        /// Spawns `git push`; returns its wall time, checking that it succeeded (and deployed).
        func push(_ clone: String, deploying: Bool, whileRunning: () -> Void = {}) throws -> Double {
            let output = work + "/push.out"
            let start = ContinuousClock.now
            let pid = try ProcessRunner.spawn(["/usr/bin/git", "-C", clone, "push", "-q", "origin", "master"],
                                              stdout: output, stderr: output + ".err", environment: environment)
            whileRunning()
            let status = ProcessRunner.wait(pid)
            let elapsed = seconds(ContinuousClock.now - start)
            let stderr = TestFiles.read(output + ".err") ?? ""
            guard status == 0, !deploying || stderr.contains("Git Post-Receive Result: success") else {
                throw ValidationError("git push (\(clone)) failed (\(status)): \(stderr)\n\(server.logTail())")
            }
            return elapsed
        }

        // Warm-up: host key accepted, caches warm, one deploy and one floor push.
        version += 1
        try commit(appClone, "version \(version)")
        _ = try push(appClone, deploying: true)
        try commit(floorClone, "version \(version)")
        _ = try push(floorClone, deploying: false)

        var toServing: [Double] = []
        var deployPush: [Double] = []
        var floorPush: [Double] = []
        for _ in 0..<count {
            version += 1
            let expected = "version \(version)\n"
            try commit(appClone, "version \(version)")
            let served = Shared<Double?>(nil)
            let start = ContinuousClock.now
            var poller: pthread_t?
            deployPush.append(try push(appClone, deploying: true) {
                poller = Self.thread {
                    let giveUp = monotonicSeconds() + 120
                    while monotonicSeconds() < giveUp {
                        if get()?.body == expected {
                            let at = seconds(ContinuousClock.now - start)
                            served.value.withLock { $0 = at }
                            return
                        }
                        usleep(10_000)
                    }
                }
            })
            if let poller { pthread_join(poller, nil) }
            guard let at = served.value.withLock({ $0 }) else { throw ValidationError("the gear never answered \(expected)") }
            toServing.append(at)

            try commit(floorClone, "version \(version)")
            floorPush.append(try push(floorClone, deploying: false))
        }

        // Consecutive deploys under a request loop.
        let tally = Shared<Tally>(Tally())
        let loop = Self.thread {
            while !tally.value.withLock({ $0.stop }) {
                let (body, failure) = Self.probe(ip: ip, port: port)
                tally.value.withLock { t in
                    t.requests += 1
                    if let failure { t.failures[failure, default: 0] += 1 } else { t.bodies.insert(body) }
                }
            }
        }
        var loopPushes: [Double] = []
        for _ in 0..<deploys {
            version += 1
            try commit(appClone, "version \(version)")
            loopPushes.append(try push(appClone, deploying: true))
        }
        usleep(300_000)
        tally.value.withLock { $0.stop = true }
        pthread_join(loop, nil)
        let seen = tally.value.withLock { $0 }

        print("node-bench deploy: python gear, git push over a private sshd (127.0.0.1:\(server.port)) through oo-trap-user, "
            + "\(count) deploys alternating with \(count) hookless pushes")
        report("push-to-serving", toServing)
        report("deploy push", deployPush)
        report("floor push", floorPush)
        let overhead = median(toServing) - median(floorPush)
        print(pad("deploy overhead", 17) + "median(push-to-serving) - median(floor) = \(overhead >= 0 ? "" : "-")\(format(abs(overhead)))")
        print(pad("during deploys", 17) + "\(deploys) consecutive deploys (push median \(format(median(loopPushes)))): "
            + "\(seen.requests) requests, \(seen.failures.values.reduce(0, +)) failed"
            + (seen.failures.isEmpty ? "" : " (" + seen.failures.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")")
            + ", \(seen.bodies.count) distinct answers")
    }

    static func wsgi(_ text: String) -> String {
        """
        def application(environ, start_response):
            body = b"\(text)\\n"
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]

        """
    }

    struct Tally: Sendable {
        var requests = 0
        var failures: [String: Int] = [:]
        var bodies: Set<String> = []
        var stop = false
    }

    final class Shared<Value: Sendable>: Sendable {
        let value: Mutex<Value>
        init(_ initial: Value) { value = Mutex(initial) }
    }

    /// One HTTP/1.0 GET with 2 s timeouts: the body of a 200, or why it failed (refused, reset,
    /// timeout, closed without an answer, another status).
    static func probe(ip: String, port: UInt16) -> (body: String, failure: String?) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return ("", "socket errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, ip, &address.sin_addr) == 1 else { return ("", "bad address") }
        func why(_ code: Int32) -> String {
            switch code {
            case ECONNREFUSED: return "refused"
            case ECONNRESET, EPIPE: return "reset"
            case EAGAIN, EINPROGRESS, ETIMEDOUT: return "timeout"
            default: return "errno \(code)"
            }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return ("", why(errno)) }
        let request = Array("GET / HTTP/1.0\r\nHost: \(ip)\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return ("", why(errno)) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { break }
            if n < 0 { return ("", why(errno)) }
            bytes += buffer[0..<n]
        }
        if bytes.isEmpty { return ("", "closed") }
        let text = String(decoding: bytes, as: UTF8.self)
        let status = text.split(separator: "\r\n").first?.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
        guard status == "200" else { return ("", "status " + status) }
        return (text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? "", nil)
    }

    private final class Body {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    /// Runs `body` on a new thread; join it with pthread_join.
    static func thread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<Body>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, box)
        precondition(rc == 0, "pthread_create: \(rc)")
        return thread
    }

    func report(_ label: String, _ values: [Double]) {
        let sorted = values.sorted()
        let p90 = sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.9).rounded(.up)) - 1)]
        print(pad(label, 17) + "median \(format(median(values)))  p90 \(format(p90))  min \(format(sorted.first ?? 0))  (n=\(values.count))")
    }
}
