import Foundation
import NodeConfig
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The node's Debian packages, built by `packaging/build-debs`, published by `packaging/publish`
/// into a signed apt repository and served over HTTP on a loopback port, for tests that install
/// them for real (apt, Puppet).
///
/// What is built is a commit, not the work tree: uncommitted changes are not in the packages
/// (CI builds a clean clone, so there HEAD is everything). `OPENSHIFT_NODE_PACKAGES_GIT` (a
/// repository) and `OPENSHIFT_NODE_PACKAGES_REF` (a tag, branch or commit, default HEAD) choose
/// another one, e.g. a scratch clone with work in progress committed.
///
/// The build takes minutes (a release build of every program), so its .deb files are kept in
/// `/var/tmp/openshift-node-packages/<commit>/` and reused by later runs; the repository, its
/// signing key and reprepro's state live there too. The build of one commit is serialized across
/// processes by a lock file there.
public struct PackageRepository: Sendable {
    public let url: String          // "http://127.0.0.1:PORT/" serving the apt repository
    public let suite: String        // e.g. "stable"
    public let component: String    // "main"
    public let keyFile: String      // path of the ASCII-armored public signing key
    public let debDirectory: String // the built .deb files

    /// Where the packages of each commit are kept between runs.
    public static let cacheRoot = "/var/tmp/openshift-node-packages"

    /// Builds the packages of the repository's HEAD with packaging/build-debs (once per process;
    /// cached across runs by commit under /var/tmp/openshift-node-packages/<commit>), publishes
    /// them with packaging/publish, and serves them over HTTP on a loopback port (python3 -m http.server --bind 127.0.0.1). Thread-safe.
    ///
    /// Blocks for as long as the build takes (call it through `onThread` from async tests). A
    /// failure is remembered: later calls in the process throw it again without rebuilding. The
    /// HTTP server ends with the process (it exits when its parent is gone).
    public static func shared() throws -> PackageRepository {
        try state.withLock { cached in
            if let cached { return try cached.get() }
            let result = Result { () throws(TestFiles.Failure) in try make() }
            cached = result
            return try result.get()
        }
    }

    private static let state = Mutex<Result<PackageRepository, TestFiles.Failure>?>(nil)

    /// The repository holding this file: Sources/NodeTestSupport/PackageRepository.swift.
    static var sourceRepository: String {
        if let given = getenv("OPENSHIFT_NODE_PACKAGES_GIT"), given.pointee != 0 { return String(cString: given) }
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }

    private static func make() throws(TestFiles.Failure) -> PackageRepository {
        let source = sourceRepository
        let ref = getenv("OPENSHIFT_NODE_PACKAGES_REF").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "HEAD"
        let resolved = try run(["/usr/bin/git", "-C", source, "rev-parse", "--verify", "--end-of-options", ref + "^{commit}"])
        let commit = resolved.trimmingCharacters(in: .whitespacesAndNewlines)
        let cache = cacheRoot + "/" + commit
        try make(cache)
        let lock = open(cache + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw TestFiles.Failure(description: "open \(cache)/.lock: errno \(errno)") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}

        let debs = cache + "/debs"
        if !TestFiles.exists(debs + "/.complete") {
            let partial = cache + "/debs.partial"
            TestFiles.remove(partial)
            TestFiles.remove(debs)
            // build-debs from the commit itself: the packaging being tested is the commit's.
            let script = cache + "/build-debs"
            try write(script, try run(["/usr/bin/git", "-C", source, "show", commit + ":packaging/build-debs"]), mode: 0o755)
            // At the lowest CPU priority: the release build runs beside the other tests, whose
            // waits must not stretch because a compiler holds both cores.
            try runLogged(["/usr/bin/nice", "-n", "19", script, commit, partial], log: cache + "/build.log",
                          environment: ["OPENSHIFT_NODE_GIT": source])
            guard rename(partial, debs) == 0 else { throw TestFiles.Failure(description: "rename \(partial): errno \(errno)") }
            try write(debs + "/.complete", commit + "\n")
            pruneCache(keeping: commit)
        }

        // Published once per commit; the key is generated on the first publish and kept.
        let repository = cache + "/apt/repo"
        if !TestFiles.exists(cache + "/apt/.complete") {
            TestFiles.remove(cache + "/apt")
            let script = cache + "/publish"
            try write(script, try run(["/usr/bin/git", "-C", source, "show", commit + ":packaging/publish"]), mode: 0o755)
            try make(cache + "/apt")
            try runLogged([script, debs, repository], log: cache + "/publish.log",
                          environment: ["GNUPGHOME": cache + "/apt/gnupg"])
            try write(cache + "/apt/.complete", commit + "\n")
        }
        let port = try serve(repository, log: cache + "/apt")
        return PackageRepository(url: "http://127.0.0.1:\(port)/", suite: "stable", component: "main",
                                 keyFile: repository + "/openshift-node.asc", debDirectory: debs)
    }

    /// Each commit's packages and repository take about 220 MB: after a new build, the entries
    /// of other commits beyond the 3 most recent go, unless a process holds their lock.
    private static func pruneCache(keeping commit: String) {
        let entries = TestFiles.list(cacheRoot).filter { $0 != commit }.map { name -> (String, Int) in
            var st = stat()
            return (cacheRoot + "/" + name, lstat(cacheRoot + "/" + name, &st) == 0 ? Int(st.st_mtim.tv_sec) : 0)
        }
        for (path, _) in entries.sorted(by: { $0.1 > $1.1 }).dropFirst(2) {
            let lock = open(path + "/.lock", O_RDWR | O_CLOEXEC)
            guard lock < 0 || flock(lock, LOCK_EX | LOCK_NB) == 0 else {
                close(lock)
                continue
            }
            TestFiles.remove(path)
            if lock >= 0 { close(lock) }
        }
    }

    /// Serves `directory` with Python's http.server on 127.0.0.1 and a free port; the server
    /// exits when this process does. Returns the port.
    private static func serve(_ directory: String, log: String) throws(TestFiles.Failure) -> Int {
        let program = """
            import functools, http.server, os, sys, threading, time
            parent = os.getppid()
            handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            print(server.server_address[1], flush=True)
            def orphaned():
                while os.getppid() == parent:
                    time.sleep(0.5)
                os._exit(0)
            threading.Thread(target=orphaned, daemon=True).start()
            server.serve_forever()
            """
        let out = log + "/http.out"
        let pid: pid_t
        do {
            pid = try ProcessRunner.spawn(["/usr/bin/python3", "-c", program, directory], stdout: out, stderr: log + "/http.log")
        } catch {
            throw TestFiles.Failure(description: "starting the HTTP server: \(error)")
        }
        for _ in 0..<200 {
            if let text = TestFiles.read(out), text.hasSuffix("\n"), let port = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return port
            }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                throw TestFiles.Failure(description: "the HTTP server exited: \(TestFiles.read(log + "/http.log") ?? "")")
            }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        throw TestFiles.Failure(description: "the HTTP server did not say its port within 10 s")
    }

    private static func run(_ argv: [String]) throws(TestFiles.Failure) -> String {
        let result: ProcessRunner.Result
        do { result = try ProcessRunner.run(argv) } catch { throw TestFiles.Failure(description: "\(argv[0]): \(error)") }
        guard result.status == 0 else {
            throw TestFiles.Failure(description: "\(argv.joined(separator: " ")) exited \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    /// Runs a long step with its output in `log`; a failure quotes the log's end.
    private static func runLogged(_ argv: [String], log: String, environment: [String: String]) throws(TestFiles.Failure) {
        let status: Int32
        do {
            status = ProcessRunner.wait(try ProcessRunner.spawn(argv, stdout: log, stderr: log + ".err", environment: environment))
        } catch {
            throw TestFiles.Failure(description: "\(argv[0]): \(error)")
        }
        guard status == 0 else {
            let tail = ((TestFiles.read(log) ?? "") + (TestFiles.read(log + ".err") ?? "")).split(separator: "\n").suffix(40)
            throw TestFiles.Failure(description: "\(argv.joined(separator: " ")) exited \(status); see \(log):\n\(tail.joined(separator: "\n"))")
        }
    }

    private static func make(_ directory: String) throws(TestFiles.Failure) {
        do { try TestFiles.makeDirectories(directory) } catch let failure as TestFiles.Failure { throw failure } catch {
            throw TestFiles.Failure(description: "\(error)")
        }
    }

    private static func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws(TestFiles.Failure) {
        do { try TestFiles.write(path, text, mode: mode) } catch let failure as TestFiles.Failure { throw failure } catch {
            throw TestFiles.Failure(description: "\(error)")
        }
    }
}
