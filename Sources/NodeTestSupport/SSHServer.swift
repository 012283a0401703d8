import NodeConfig
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A private OpenSSH server for tests: `/usr/sbin/sshd -D -e -f <directory>/sshd_config` on a
/// free loopback port, with its own host key, pid file and configuration (the settings of
/// `openshift-node sshd-config`), started as root and stopped by its pid. Its log (sshd's stderr
/// with `LogLevel VERBOSE`) is `<directory>/sshd.log`.
///
/// sshd's `StrictModes` refuses a login unless every directory from / to the user's home is
/// owned by root (or the user) and not group- or world-writable: gear homes under /tmp (1777)
/// never log in. Put a test node's GEAR_BASE_DIR under `SSHServer.testBase` (root, 0755).
public final class SSHServer: @unchecked Sendable {
    public let port: UInt16
    /// Holds `sshd_config`, the host key, `sshd.pid`, `sshd.log` and the clients' `known_hosts`.
    public let directory: String
    public var configurationFile: String { directory + "/sshd_config" }
    public var logPath: String { directory + "/sshd.log" }

    private let pid = Mutex<pid_t?>(nil)

    public static let sshdPath = "/usr/sbin/sshd"
    public static let sshPath = "/usr/bin/ssh"
    public static let keygenPath = "/usr/bin/ssh-keygen"

    /// Whether the OpenSSH server and client are installed.
    public static var isInstalled: Bool { [sshdPath, sshPath, keygenPath].allSatisfy { (path: String) in access(path, X_OK) == 0 } }

    /// A root-owned 0755 directory for test gear homes that sshd's StrictModes accepts.
    public static let testBase = "/var/lib/openshift-node-tests"

    /// A new directory `<testBase>/<label>-<random>`, root 0755 down from /.
    public static func scratchDirectory(_ label: String) throws -> String {
        try FileSystem.makeDirectories(testBase, mode: 0o755)
        chmod(testBase, 0o755)
        let path = testBase + "/\(label)-\(UInt64.random(in: 0...UInt64.max) & 0xffff_ffff_ffff)"
        guard mkdir(path, 0o755) == 0 else { throw TestFiles.Failure(description: "mkdir \(path): errno \(errno)") }
        chmod(path, 0o755)
        return path
    }

    /// The settings of a node's sshd: what `openshift-node sshd-config` prints (a test checks
    /// they are the same), repeated here so that this type needs only NodeConfig.
    public static let nodeSettings = [
        "AuthorizedKeysFile .ssh/authorized_keys", "StrictModes yes", "UsePAM yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "GSSAPIAuthentication yes", "GSSAPICleanupCredentials yes",
        "GSSAPIStrictAcceptorCheck no", "AcceptEnv GIT_PROTOCOL", "ExposeAuthInfo yes", "PermitUserEnvironment no", "MaxSessions 40", "X11Forwarding no",
        "PrintMotd no", "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]

    /// Writes a private configuration into a new directory and starts sshd, waiting (up to 30 s)
    /// until it answers with its banner.
    ///
    /// - Parameters:
    ///   - nodeConf: passed to the gear shell as `OPENSHIFT_NODE_CONF` (`SetEnv`).
    ///   - extraSettings: lines placed before the node's settings (sshd keeps the first value of
    ///     a keyword, so these win), e.g. `KerberosAuthentication no`.
    ///   - environment: sshd's own environment, e.g. `KRB5_KTNAME`, `KRB5_CONFIG`.
    public static func start(nodeConf: String? = nil, extraSettings: [String] = [], environment: [String: String] = [:]) throws -> SSHServer {
        guard isInstalled else {
            throw TestFiles.Failure(description: "OpenSSH is not installed (apt-get install openssh-server openssh-client)")
        }
        let directory = try scratchDirectory("sshd")
        try generateHostKey(directory + "/ssh_host_ed25519_key")
        var lastFailure = ""
        for _ in 0..<3 {   // a free port can be taken by someone else before sshd binds it
            let port = HTTPProbe.freePort()
            var lines = ["Port \(port)", "ListenAddress 127.0.0.1", "HostKey \(directory)/ssh_host_ed25519_key",
                         "PidFile \(directory)/sshd.pid", "LogLevel VERBOSE", "PrintLastLog no"]
            if let nodeConf { lines.append("SetEnv OPENSHIFT_NODE_CONF=\(nodeConf)") }
            try TestFiles.write(directory + "/sshd_config", (lines + extraSettings + nodeSettings).joined(separator: "\n") + "\n", mode: 0o600)
            do {
                return try start(configuration: directory + "/sshd_config", port: port, directory: directory, environment: environment)
            } catch {
                lastFailure = "\(error)"
            }
        }
        TestFiles.remove(directory)
        throw TestFiles.Failure(description: lastFailure)
    }

    /// Starts sshd on an existing configuration (e.g. one `openshift-node sshd-config --standalone`
    /// wrote) that listens on 127.0.0.1:`port`; `directory` receives the log and known_hosts.
    public static func start(configuration: String, port: UInt16, directory: String,
                             environment: [String: String] = [:]) throws -> SSHServer {
        // Debian's sshd needs its privilege separation directory.
        try FileSystem.makeDirectories("/run/sshd", mode: 0o755)
        let server = SSHServer(port: port, directory: directory)
        let child = try ProcessRunner.spawn([sshdPath, "-D", "-e", "-f", configuration], stdout: directory + "/sshd.out",
                                            stderr: server.logPath, environment: environment)
        server.pid.withLock { $0 = child }
        let deadline = monotonicSeconds() + 30
        while monotonicSeconds() < deadline {
            if banner(port: port)?.hasPrefix("SSH-2.0-") == true { return server }
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                server.pid.withLock { $0 = nil }
                throw TestFiles.Failure(description: "sshd exited (wait status \(status)) before listening on \(port):\n\(server.logTail())")
            }
            usleep(20_000)
        }
        let log = server.logTail()
        server.stop()
        throw TestFiles.Failure(description: "sshd did not answer on 127.0.0.1:\(port) within 30 s:\n\(log)")
    }

    private init(port: UInt16, directory: String) {
        self.port = port
        self.directory = directory
    }

    /// Stops sshd (SIGTERM, then SIGKILL after 5 s) and removes its directory. Idempotent.
    public func stop() {
        let running = pid.withLock { value -> pid_t? in
            let current = value
            value = nil
            return current
        }
        if let child = running { ProcessRunner.terminate(child, graceSeconds: 5) }
        TestFiles.remove(directory)
    }

    deinit { stop() }

    /// The last 4 KiB of sshd's log.
    public func logTail() -> String { String((TestFiles.read(logPath) ?? "").suffix(4096)) }

    /// A new ed25519 client key pair in `directory`: the private key's path and the public key's
    /// type and base64 body (what the broker sends the node).
    public static func generateKey(in directory: String, name: String = "id_ed25519") throws -> (path: String, type: String, body: String) {
        let path = directory + "/" + name
        let result = try ProcessRunner.run([keygenPath, "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", path])
        guard result.status == 0, let text = TestFiles.read(path + ".pub") else {
            throw TestFiles.Failure(description: "ssh-keygen \(path) failed: \(result.stderr)")
        }
        let fields = text.split(separator: " ")
        guard fields.count >= 2 else { throw TestFiles.Failure(description: "unexpected public key \(text)") }
        return (path, String(fields[0]), String(fields[1]))
    }

    static func generateHostKey(_ path: String) throws {
        let result = try ProcessRunner.run([keygenPath, "-q", "-t", "ed25519", "-N", "", "-C", "test host", "-f", path])
        guard result.status == 0 else { throw TestFiles.Failure(description: "ssh-keygen \(path) failed: \(result.stderr)") }
    }

    /// The options the real `ssh` client gets: this key only, this server's known_hosts, no
    /// prompt, no user configuration.
    public func clientOptions(key: String) -> [String] {
        ["-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "UserKnownHostsFile=\(directory)/known_hosts",
         "-o", "StrictHostKeyChecking=accept-new", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR",
         "-p", "\(port)"]
    }

    /// Runs the real `ssh` client as `user@127.0.0.1` with `command` (one string, as a client sends
    /// it; nil: a login without command), stdin from the file `stdin`. `options` go before the
    /// destination (e.g. `-T`, `-o GSSAPIAuthentication=yes`).
    public func ssh(user: String, key: String, command: String?, stdin: String = "/dev/null", options: [String] = [],
                    environment: [String: String] = [:]) throws -> ProcessRunner.Result {
        var argv = [Self.sshPath] + clientOptions(key: key) + options + ["\(user)@127.0.0.1"]
        if let command { argv.append(command) }
        return try ProcessRunner.run(argv, environment: environment, stdin: stdin)
    }

    /// sshd's identification line, or nil if nothing answers on the port.
    static func banner(port: UInt16) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = read(fd, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : nil
    }
}
