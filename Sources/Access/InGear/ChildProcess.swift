import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Starts a program from an argv array with chosen standard descriptors (tar writing straight
/// to the caller's stdout, gzip reading straight from its stdin), default signal dispositions and
/// an explicit environment; never a shell. Every other descriptor of this process is
/// close-on-exec (`pipe` here sets it), so the child gets 0-2 only.
struct ChildProcess {
    let pid: pid_t
    let program: String

    /// `descriptors[i]` becomes the child's descriptor i (0, 1, 2).
    static func start(_ argv: [String], environment: [String: String], descriptors: [Int32]) throws(InGearError) -> ChildProcess {
        precondition(descriptors.count == 3 && argv.first?.hasPrefix("/") == true)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in descriptors.enumerated() where source != Int32(target) {
            posix_spawn_file_actions_adddup2(&actions, source, Int32(target))
        }
        let (pid, rc) = Spawner.spawn(argv, environment: environment, actions: &actions)
        guard rc == 0 else { throw .system(SystemError(step: "posix_spawn", path: argv[0], errno: rc)) }
        return ChildProcess(pid: pid, program: argv[0])
    }

    /// Runs a tool with stdin from /dev/null and `output` as its stdout, and waits for it: its
    /// exit status and what it wrote to stderr.
    static func run(_ argv: [String], output: Int32) throws(InGearError) -> (status: Int32, messages: String) {
        let errors = try pipe()
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        let child: ChildProcess
        do throws(InGearError) {
            child = try start(argv, environment: toolEnvironment, descriptors: [devNull, output, errors.write])
        } catch {
            close(errors.read)
            close(errors.write)
            throw error
        }
        close(errors.write)
        let messages = drain(errors.read)
        close(errors.read)
        return (child.wait(), messages)
    }

    /// Waits for the child; its exit status, 128 + signal when killed.
    func wait() -> Int32 {
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            if errno != EINTR { return 127 }
        }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }

    /// A pipe whose both ends are close-on-exec (the child gets its end through dup2).
    static func pipe() throws(InGearError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard Glibc.pipe(&fds) == 0 else { throw .system(SystemError(step: "pipe", path: "", errno: errno)) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    /// Two pipes: one for a child's data, one for its messages (none left open on failure).
    static func pipes() throws(InGearError) -> (data: (read: Int32, write: Int32), errors: (read: Int32, write: Int32)) {
        let data = try pipe()
        do throws(InGearError) {
            return (data, try pipe())
        } catch {
            close(data.read)
            close(data.write)
            throw error
        }
    }

    /// Reads a descriptor to its end, keeping at most `limit` bytes.
    static func drain(_ fd: Int32, limit: Int = 64 * 1024) -> String {
        var kept: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if kept.count < limit { kept += buffer[0..<min(n, limit - kept.count)] }
        }
        return String(decoding: kept, as: UTF8.self)
    }
}

/// The environment external tools (tar, gzip) run with: nothing of the gear's (no TAR_OPTIONS,
/// no GZIP), so they behave as the argv says.
let toolEnvironment = ["PATH": "/usr/bin:/bin", "LC_ALL": "C"]
