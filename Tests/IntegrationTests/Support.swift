import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif


/// `oo-cartridge list` in a sandbox.
func listing(root: String, basePath: String) throws -> String {
    let result = try ProcessRunner.node("oo-cartridge", ["list", "--root", root, "--cartridge-base-path", basePath])
    #expect(result.status == 0, "oo-cartridge list failed: \(result.stderr)")
    return result.stdout
}

/// A running `openshift-node` daemon in sandbox mode, with its log in a file.
final class Daemon {
    let pid: pid_t
    let log: String
    private var exited: Int32?

    /// With `umask`, the daemon starts with that umask (set by /bin/sh, which then execs it).
    init(root: String, basePath: String, extraArguments: [String] = [], config: String? = nil, umask: String? = nil,
         environment: [String: String] = [:]) throws {
        log = root + "/daemon.log"
        try TestFiles.makeDirectories(root)
        var argv = [ProcessRunner.executable("openshift-node"), "run", "--root", root, "--cartridge-base-path", basePath]
        if let config { argv += ["--config", config] }
        if let umask { argv = ["/bin/sh", "-c", "umask \(umask) && exec \"$0\" \"$@\""] + argv }
        pid = try ProcessRunner.spawn(argv + extraArguments, stdout: root + "/daemon.out", stderr: log, environment: environment)
    }

    var logText: String { TestFiles.read(log) ?? "" }

    /// Number of completed rescans, from the summary lines of the log.
    var rescans: Int { logText.components("rescan of ").count - 1 }

    func signal(_ number: Int32) { kill(pid, number) }

    var isRunning: Bool { exited == nil && kill(pid, 0) == 0 && !hasExited() }

    private func hasExited() -> Bool {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exited = status
            return true
        }
        return false
    }

    /// SIGTERM, then the exit status.
    func stop() -> Int32 {
        if let exited { return exited }
        kill(pid, SIGTERM)
        return ProcessRunner.wait(pid)
    }

    /// SIGTERM, then the exit status if the daemon exits within `seconds` (nil if it does not).
    func stop(within seconds: Double) async -> Int32? {
        if let exited { return exited }
        kill(pid, SIGTERM)
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        // Checked once more after the deadline: a test task that could not run meanwhile (other
        // tests holding the concurrency pool's threads) must not mistake its own delay for the daemon's.
        var lastLook = false
        while !lastLook {
            lastLook = ContinuousClock.now >= deadline
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                let signal = status & 0x7f
                exited = signal == 0 ? (status >> 8) & 0xff : 128 + signal
                return exited
            }
            if !lastLook { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return nil
    }

    /// The daemon's resident memory in KiB (VmRSS), 0 if it cannot be read.
    var residentKiB: Int {
        let status = TestFiles.read("/proc/\(pid)/status") ?? ""
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    deinit {
        if exited == nil {
            kill(pid, SIGKILL)
            _ = ProcessRunner.wait(pid)
        }
    }
}

extension String {
    func components(_ separator: String) -> [Substring] {
        split(separator: separator, omittingEmptySubsequences: false)
    }
}

/// Copies a cartridge into the base path the way a package manager does: written elsewhere,
/// then renamed into place.
func deliver(_ builder: CartridgeBuilder, to basePath: String, staging: String) throws {
    let built = try builder.write(into: staging)
    guard rename(built, basePath + "/" + builder.name) == 0 else {
        throw TestFiles.Failure(description: "rename into \(basePath): errno \(errno)")
    }
}

/// A node.conf for one test's sandbox: its own uid window (gear IPs come from uids, and tests
/// run side by side on one host) and its own wake port (0: none).
func sandboxConfig(_ node: ScratchNode, wakePort: UInt16 = 0) throws -> String {
    let low = Int.random(in: 0..<1000) * 20 + 20000
    let path = node.root + "/node.conf"
    try TestFiles.write(path, "GEAR_MIN_UID=\(low)\nGEAR_MAX_UID=\(low + 19)\nFRONTEND_WAKE_PORT=\(wakePort)\nCARTRIDGE_RESCAN_DEBOUNCE_MS=200\n")
    return path
}
