import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A private MIT Kerberos realm for tests: a real KDC (`krb5kdc -n`) on a free loopback port,
/// its database, stash, configuration and log in a fresh scratch directory. Every program runs
/// from an argument array with `KRB5_CONFIG` and `KRB5_KDC_PROFILE` pointing into that
/// directory, so nothing of the host's Kerberos setup is read or changed. `stop()` (or deinit)
/// kills the KDC by its pid and removes the directory.
public final class KerberosRealm: @unchecked Sendable {
    public let realm: String
    public let port: Int
    public let directory: String
    /// Client configuration (`KRB5_CONFIG`): default realm, no DNS, the KDC on loopback.
    public var configFile: String { directory + "/krb5.conf" }
    /// KDC configuration (`KRB5_KDC_PROFILE`).
    public var kdcProfile: String { directory + "/kdc.conf" }
    public var logPath: String { directory + "/kdc.log" }

    public static let krb5kdc = "/usr/sbin/krb5kdc"
    public static let kdb5Util = "/usr/sbin/kdb5_util"
    public static let kadminLocal = "/usr/sbin/kadmin.local"
    public static let kinitPath = "/usr/bin/kinit"

    private let pid = Mutex<pid_t?>(nil)

    /// Whether the MIT KDC, admin tools and client are installed (krb5-kdc, krb5-admin-server, krb5-user).
    public static var isInstalled: Bool {
        let tools: [String] = [krb5kdc, kdb5Util, kadminLocal, kinitPath]
        return tools.allSatisfy { (tool: String) in access(tool, X_OK) == 0 }
    }

    /// The environment every Kerberos program of this realm gets.
    public var environment: [String: String] {
        ["KRB5_CONFIG": configFile, "KRB5_KDC_PROFILE": kdcProfile, "KRB5CCNAME": "FILE:" + directory + "/default.ccache"]
    }

    /// Creates the realm's database and starts the KDC; waits (up to 20 s) until it accepts TCP
    /// connections. `k5loginDirectory` adds `k5login_directory` to `[libdefaults]`.
    public static func start(realm: String = "GEARS.TEST", k5loginDirectory: String? = nil) throws -> KerberosRealm {
        guard isInstalled else {
            throw TestFiles.Failure(description: "MIT Kerberos is not installed (apt-get install krb5-kdc krb5-admin-server krb5-user)")
        }
        let port = Int(HTTPProbe.freePort())
        let directory = TestFiles.temporaryDirectory("krb5-realm")
        chmod(directory, 0o755)
        let kdc = KerberosRealm(realm: realm, port: port, directory: directory)
        do {
            try TestFiles.write(kdc.configFile, """
                [libdefaults]
                    default_realm = \(realm)
                    dns_lookup_kdc = false
                    dns_lookup_realm = false
                    rdns = false
                    dns_canonicalize_hostname = false
                \(k5loginDirectory.map { "    k5login_directory = \($0)\n" } ?? "")
                [realms]
                    \(realm) = {
                        kdc = 127.0.0.1:\(port)
                    }

                [domain_realm]
                    localhost = \(realm)

                """)
            try TestFiles.write(kdc.kdcProfile, """
                [kdcdefaults]
                    kdc_listen = 127.0.0.1:\(port)
                    kdc_tcp_listen = 127.0.0.1:\(port)

                [realms]
                    \(realm) = {
                        database_name = \(directory)/principal
                        key_stash_file = \(directory)/stash
                        acl_file = \(directory)/kadm5.acl
                        kdc_listen = 127.0.0.1:\(port)
                        kdc_tcp_listen = 127.0.0.1:\(port)
                    }

                [logging]
                    kdc = FILE:\(directory)/kdc.log
                    admin_server = FILE:\(directory)/kadmin.log
                    default = FILE:\(directory)/krb5.log

                """)
            try TestFiles.write(directory + "/kadm5.acl", "")
            let masterPassword = "master-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
            try kdc.check([kdb5Util, "-r", realm, "create", "-s", "-P", masterPassword], "kdb5_util create")
            let child = try ProcessRunner.spawn([krb5kdc, "-n", "-r", realm], stdout: directory + "/krb5kdc.out",
                                                stderr: directory + "/krb5kdc.err", environment: kdc.environment)
            kdc.pid.withLock { $0 = child }
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if acceptsConnections(port: port) { return kdc }
                var status: Int32 = 0
                if waitpid(child, &status, WNOHANG) == child {
                    kdc.pid.withLock { $0 = nil }
                    throw TestFiles.Failure(description: "krb5kdc exited (wait status \(status)) before listening on \(port):\n\(kdc.logTail())")
                }
                usleep(20_000)
            }
            throw TestFiles.Failure(description: "krb5kdc did not listen on 127.0.0.1:\(port) within 20 s:\n\(kdc.logTail())")
        } catch {
            kdc.stop()
            throw error
        }
    }

    private init(realm: String, port: Int, directory: String) {
        self.realm = realm
        self.port = port
        self.directory = directory
    }

    deinit { stop() }

    /// `name@REALM`.
    public func principal(_ name: String) -> String { name.contains("@") ? name : name + "@" + realm }

    /// Adds a user principal with a password.
    public func addPrincipal(_ name: String, password: String) throws {
        try check([Self.kadminLocal, "-r", realm, "addprinc", "-pw", password, principal(name)], "addprinc \(name)")
    }

    /// Adds `host/<host>` with a random key and writes its keys to the keytab at `path` (for sshd's `KRB5_KTNAME`).
    public func addHostKeytab(_ host: String, path: String) throws {
        let name = principal("host/" + host)
        try check([Self.kadminLocal, "-r", realm, "addprinc", "-randkey", name], "addprinc \(name)")
        try check([Self.kadminLocal, "-r", realm, "ktadd", "-k", path, name], "ktadd \(name)")
    }

    /// Runs the real `kinit` with the password on its standard input; the tickets go to `ccache`
    /// (a file path). Returns kinit's result: status 0 when the KDC accepted the password.
    @discardableResult
    public func kinit(_ name: String, password: String, ccache: String) throws -> ProcessRunner.Result {
        let input = directory + "/kinit-input-" + String(UInt32.random(in: 0...UInt32.max))
        try TestFiles.write(input, password + "\n")
        chmod(input, 0o600)
        defer { unlink(input) }
        var environment = self.environment
        environment["KRB5CCNAME"] = "FILE:" + ccache
        return try Self.run([Self.kinitPath, principal(name)], stdin: input, environment: environment)
    }

    /// The last lines of the KDC's log and output.
    public func logTail(lines: Int = 30) -> String {
        let text = ["/kdc.log", "/krb5kdc.out", "/krb5kdc.err"].map { TestFiles.read(directory + $0) ?? "" }.joined()
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Stops the KDC (SIGTERM, SIGKILL after 5 s) and removes the realm's directory. Idempotent.
    public func stop() {
        pid.withLock { pid in
            guard let child = pid else { return }
            pid = nil
            ProcessRunner.terminate(child, graceSeconds: 5)
        }
        TestFiles.remove(directory)
    }

    private func check(_ argv: [String], _ step: String) throws {
        let result = try Self.run(argv, stdin: "/dev/null", environment: environment)
        guard result.status == 0 else {
            throw TestFiles.Failure(description: "\(step) failed (exit \(result.status)): \(result.stderr)\(result.stdout)")
        }
    }

    /// Runs `argv` to completion with stdin from the file `stdin`; killed after `timeoutSeconds`
    /// (a tool blocked on something outside the test, such as a syslog socket nobody reads,
    /// fails the test instead of hanging it).
    private static func run(_ argv: [String], stdin: String, environment: [String: String],
                            timeoutSeconds: Int = 30) throws -> ProcessRunner.Result {
        let scratch = TestFiles.temporaryDirectory("krb5-run")
        defer { TestFiles.remove(scratch) }
        let pid = try ProcessRunner.spawn(argv, stdout: scratch + "/out", stderr: scratch + "/err", environment: environment,
                                          stdin: stdin, inheritEnvironment: false)
        guard let status = ProcessRunner.wait(pid, timeoutSeconds: Double(timeoutSeconds)) else {
            throw TestFiles.Failure(description: "\(argv.joined(separator: " ")) did not finish within \(timeoutSeconds) s")
        }
        return ProcessRunner.Result(status: status, stdout: TestFiles.read(scratch + "/out") ?? "", stderr: TestFiles.read(scratch + "/err") ?? "")
    }

    private static func acceptsConnections(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
