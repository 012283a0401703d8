import NodeConfig
#if canImport(Glibc)
import Glibc
#endif

/// Runs the project's executables from tests, from argv arrays, with output captured in files.
public enum ProcessRunner {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// The directory holding the built executables: the one this test binary was built into.
    public static var productsDirectory: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let path = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "."
        var directory = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        // The test binary may live inside a .xctest bundle directory.
        while directory.hasSuffix(".xctest") || directory.contains(".xctest/") {
            directory = String(directory[..<(directory.lastIndex(of: "/") ?? directory.endIndex)])
        }
        return directory
    }

    public static func executable(_ name: String) -> String { productsDirectory + "/" + name }

    /// Starts `argv` with stdout and stderr redirected to the given files (stdin from `stdin`);
    /// returns the pid.
    /// `inheritEnvironment: false` starts from `PATH=/usr/bin:/bin:/usr/sbin:/sbin` only.
    public static func spawn(_ argv: [String], stdout: String, stderr: String, environment: [String: String] = [:],
                             stdin: String = "/dev/null", inheritEnvironment: Bool = true) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdin, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var env: [String: String] = inheritEnvironment ? [:] : ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
        var index = 0
        while inheritEnvironment, let entry = environ[index] {
            let text = String(cString: entry)
            if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
            index += 1
        }
        env.removeValue(forKey: "OPENSHIFT_NODE_ROOT")
        for (key, value) in environment { env[key] = value }
        // Children start with no blocked signals and default dispositions, whatever the test
        // thread had (a daemon that inherits a blocked SIGUSR1 never reloads).
        let (pid, rc) = Spawner.spawn(argv, environment: env, actions: &actions)
        guard rc == 0 else { throw TestFiles.Failure(description: "posix_spawn \(argv[0]): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// Waits for `pid` at most `timeoutSeconds`: its status (as `wait`), or nil after killing it.
    public static func wait(_ pid: pid_t, timeoutSeconds: Double) -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        var raw: Int32 = 0
        while waitpid(pid, &raw, WNOHANG) == 0 {
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                _ = wait(pid)
                return nil
            }
            usleep(10_000)
        }
        return (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }

    /// Stops a service the tests started: SIGTERM, SIGKILL after `graceSeconds`.
    public static func terminate(_ pid: pid_t, graceSeconds: Double) {
        kill(pid, SIGTERM)
        _ = wait(pid, timeoutSeconds: graceSeconds)
    }

    /// Waits for `pid`; returns its exit status (128 + signal when killed).
    public static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs a command to completion (stdin from the file `stdin`).
    public static func run(_ argv: [String], environment: [String: String] = [:], stdin: String = "/dev/null") throws -> Result {
        let scratch = TestFiles.temporaryDirectory("node-run")
        defer { TestFiles.remove(scratch) }
        let pid = try spawn(argv, stdout: scratch + "/out", stderr: scratch + "/err", environment: environment, stdin: stdin)
        let status = wait(pid)
        return Result(status: status, stdout: TestFiles.read(scratch + "/out") ?? "", stderr: TestFiles.read(scratch + "/err") ?? "")
    }

    /// Runs one of the project's executables.
    public static func node(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        try run([executable(name)] + arguments, environment: environment)
    }
}
