import ArgumentParser
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// One whole process, timed as an admin's shell runs it: forked by a small launcher (`node-bench
/// launch`), timed from `fork` to `wait4` returning, with its standard output drained from a pipe
/// and its peak resident set size (`ru_maxrss`) from `wait4`. Standard error goes to a file, read
/// only when the run fails.
///
/// Why a launcher: Linux starts a child's `ru_maxrss` at the resident size of the memory it was
/// created from (the whole parent's for `posix_spawn`/vfork, its copied anonymous pages for
/// `fork`), so a child spawned straight from this bench would report at least the bench's own
/// peak. A fresh launcher holds little anonymous memory, so the figure is the command's own.
struct TimedProcess {
    var argv: [String]
    /// The whole environment of the child (nothing is inherited).
    var environment: [String]
    var stderrPath: String

    struct Run {
        var seconds: Double
        var peakKilobytes: Int
        /// The exit status, or 128 + the signal that ended it.
        var status: Int32
        var output: [UInt8]

        var text: String { String(decoding: output, as: UTF8.self) }
        var lines: [Substring] { text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }
    }

    func run() throws -> Run {
        let output = try Pipe()
        let report = try Pipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, report.write, Launch.reportDescriptor)
        let launcher = [selfExecutable(), "launch", "--"] + argv
        let cArgs = launcher.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer { (cArgs + cEnv).forEach { free($0) } }

        var pid: pid_t = 0
        let rc = posix_spawn(&pid, launcher[0], &actions, nil, cArgs, cEnv)
        output.closeWrite()
        report.closeWrite()
        guard rc == 0 else { throw BenchFailure("cannot start \(launcher[0]): \(String(cString: strerror(rc)))") }
        let bytes = output.drain()
        let reported = String(decoding: report.drain(), as: UTF8.self).split(separator: " ")
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 && errno == EINTR {}
        guard raw == 0, reported.count == 3, let seconds = Double(reported[0]), let peak = Int(reported[1]),
              let status = Int32(reported[2].filter(\.isNumber))
        else {
            throw BenchFailure("launcher for \(argv[0]) failed (wait status \(raw)): \(TestFiles.read(stderrPath) ?? "")")
        }
        return Run(seconds: seconds, peakKilobytes: peak, status: status, output: bytes)
    }

    /// Runs, and throws with the tail of standard error unless the exit status is 0.
    func runChecked() throws -> Run {
        let result = try run()
        guard result.status == 0 else {
            let errors = (TestFiles.read(stderrPath) ?? "").split(separator: "\n").suffix(8).joined(separator: "\n")
            throw BenchFailure("\(argv.joined(separator: " ")) exited \(result.status):\n\(errors)\n"
                + result.lines.suffix(4).joined(separator: "\n"))
        }
        return result
    }
}

/// A close-on-exec pipe: the child gets only the copy a file action puts on a fixed descriptor.
private struct Pipe {
    let read: Int32
    private(set) var write: Int32

    init() throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw BenchFailure("pipe: errno \(errno)") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        (read, write) = (fds[0], fds[1])
    }

    func closeWrite() { close(write) }

    /// Everything until end of file; closes the read end.
    func drain() -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(read, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        close(read)
        return bytes
    }
}

/// `node-bench launch -- <argv>`: internal. Forks and execs argv with this environment, waits, and
/// writes `<seconds> <ru_maxrss kB> <exit status>` to descriptor 3 (see `TimedProcess`).
struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Internal: time one command (used by `repository`).",
                                                    shouldDisplay: false)
    static let reportDescriptor: Int32 = 3

    @Argument(parsing: .captureForPassthrough) var command: [String]

    func run() throws {
        let argv = command.first == "--" ? Array(command.dropFirst()) : command
        guard !argv.isEmpty else { throw ValidationError("no command to launch") }
        _ = fcntl(Self.reportDescriptor, F_SETFD, FD_CLOEXEC)
        let cArgs = argv.map { strdup($0) } + [nil]
        let path = cArgs[0]!
        let start = ContinuousClock.now
        // Between fork and execve the child only calls those two (nothing allocates).
        let pid = cArgs.withUnsafeBufferPointer { buffer -> pid_t in
            let args = buffer.baseAddress!
            let pid = fork()
            if pid == 0 {
                execve(path, args, environ)
                _exit(127)
            }
            return pid
        }
        guard pid > 0 else { throw BenchFailure("fork: errno \(errno)") }
        var raw: Int32 = 0
        var usage = rusage()
        while wait4(pid, &raw, 0, &usage) < 0 && errno == EINTR {}
        let elapsed = ContinuousClock.now - start
        let status = raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        let line = Array("\(seconds(elapsed)) \(usage.ru_maxrss) \(status)\n".utf8)
        _ = write(Self.reportDescriptor, line, line.count)
    }
}
