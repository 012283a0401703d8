import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// Runs a program from an argv array with an explicit environment, never through a shell. The
/// one place the node starts processes.
///
/// The child gets its own session (so it and what it forks are not tied to the caller's
/// terminal or process group, and a daemon restart does not take them down), default signal
/// dispositions and an empty signal mask, stdin from `/dev/null`, its stdout/stderr captured up
/// to `outputLimit` bytes each (the rest is counted and dropped), and no other descriptor of
/// ours: everything from 3 up is closed in the child (`closefrom`), whatever its close-on-exec
/// flag. `input` is the one exception: given, it is handed to the child as descriptor 3, a
/// sealed in-memory file (how `oo-gear-exec` receives the gear's environment without it ever
/// being the environment of a root process).
///
/// On timeout, or when the calling operation's `Cancellation` fires, the child's process group
/// is killed. Output is read until the program exits, plus a short grace: a background process
/// it started that keeps the pipes open does not hang the caller.
public enum Spawner {
    /// `posix_spawn` of `argv` (argv[0] the program's absolute path) with `environment` as the whole
    /// environment, every signal unblocked and at its default, plus `flags`; never a shell. The
    /// pid, and 0 or the error number.
    public static func spawn(_ argv: [String], environment: [String: String], actions: inout posix_spawn_file_actions_t,
                             flags: Int32 = 0) -> (pid: pid_t, rc: Int32) {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(flags | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        return (pid, rc)
    }

    public struct Result: Sendable, Equatable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var timedOut: Bool
        public var truncated: Bool

        public init(status: Int32, stdout: String, stderr: String, timedOut: Bool, truncated: Bool) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
            self.timedOut = timedOut
            self.truncated = truncated
        }
    }

    public static func run(
        _ argv: [String], environment: [String: String], directory: String? = nil, input: [UInt8]? = nil,
        timeoutSeconds: Double = 300, outputLimit: Int = 1 << 20
    ) throws(SystemError) -> Result {
        guard let program = argv.first, program.hasPrefix("/") else {
            throw SystemError(step: "spawn (an absolute program path is required)", path: argv.first ?? "", errno: EINVAL)
        }
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        guard cl_pipe_cloexec(&outPipe) == 0 else { throw SystemError(step: "pipe", path: program, errno: errno) }
        guard cl_pipe_cloexec(&errPipe) == 0 else {
            let code = errno
            close(outPipe[0])
            close(outPipe[1])
            throw SystemError(step: "pipe", path: program, errno: code)
        }
        var inputFD: Int32 = -1
        defer {
            if inputFD >= 0 { close(inputFD) }
        }
        if let input {
            do throws(SystemError) {
                inputFD = try sealedMemoryFile(input, name: "spawn-input")
            } catch {
                for fd in outPipe + errPipe { close(fd) }
                throw error
            }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        if inputFD >= 0 { posix_spawn_file_actions_adddup2(&actions, inputFD, 3) }
        _ = cl_spawn_add_closefrom(&actions, inputFD >= 0 ? 4 : 3)
        if let directory { _ = cl_spawn_add_chdir(&actions, directory) }
        let (pid, rc) = spawn(argv, environment: environment, actions: &actions, flags: cl_spawn_setsid_flag())
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw SystemError(step: "posix_spawn", path: program, errno: rc)
        }
        defer {
            close(outPipe[0])
            close(errPipe[0])
        }
        _ = fcntl(outPipe[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(errPipe[0], F_SETFL, O_NONBLOCK)

        let cancellation = Cancellation.current
        var out = Capture(limit: outputLimit)
        var err = Capture(limit: outputLimit)
        let deadline = monotonicSeconds() + timeoutSeconds
        var status: Int32?
        var timedOut = false
        var graceEnd = 0.0
        while true {
            var fds = [pollfd(fd: out.open ? outPipe[0] : -1, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: err.open ? errPipe[0] : -1, events: Int16(POLLIN), revents: 0)]
            if out.open || err.open {
                _ = poll(&fds, 2, 20)
                if out.open { out.drain(outPipe[0]) }
                if err.open { err.drain(errPipe[0]) }
            } else if status == nil {
                usleep(5_000)
            }
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid {
                    let signal = raw & 0x7f
                    status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
                    graceEnd = monotonicSeconds() + 0.2
                }
            }
            if status != nil {
                if (!out.open && !err.open) || monotonicSeconds() > graceEnd { break }
            } else if monotonicSeconds() > deadline || cancellation?.isCancelled == true {
                timedOut = true
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                var raw: Int32 = 0
                while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
                status = 137
                graceEnd = monotonicSeconds()
            }
        }
        return Result(status: status ?? 1, stdout: out.text, stderr: err.text, timedOut: timedOut,
                      truncated: out.dropped > 0 || err.dropped > 0)
    }

    /// An anonymous, sealed, close-on-exec file holding `bytes`, positioned at its start.
    public static func sealedMemoryFile(_ bytes: [UInt8], name: String) throws(SystemError) -> Int32 {
        var fd = cl_memfd(name)
        guard fd >= 0 else { throw SystemError(step: "memfd_create", path: name, errno: errno) }
        // Descriptor 3 is where the child wants it: keep it above, so the dup2 is never a no-op.
        if fd <= 3 {
            let higher = fcntl(fd, F_DUPFD_CLOEXEC, 10)
            close(fd)
            guard higher >= 0 else { throw SystemError(step: "fcntl(F_DUPFD_CLOEXEC)", path: name, errno: errno) }
            fd = higher
        }
        do throws(SystemError) {
            try FileSystem.writeAll(fd, bytes, path: name)
            guard cl_memfd_seal(fd) == 0 else { throw SystemError(step: "seal", path: name, errno: errno) }
            guard lseek(fd, 0, SEEK_SET) == 0 else { throw SystemError(step: "lseek", path: name, errno: errno) }
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    struct Capture {
        var limit: Int
        var bytes: [UInt8] = []
        var dropped = 0
        var open = true

        mutating func drain(_ fd: Int32) {
            var buffer = [UInt8](repeating: 0, count: 32 * 1024)
            while true {
                let n = read(fd, &buffer, buffer.count)
                if n > 0 {
                    let room = max(0, limit - bytes.count)
                    bytes += buffer[0..<min(n, room)]
                    dropped += n - min(n, room)
                    continue
                }
                if n == 0 { open = false }
                return
            }
        }

        var text: String { String(decoding: bytes, as: UTF8.self) }
    }
}

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}
