import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Where the node routes through Apache: the configuration parses (`apache2 -t`, from an argv)
/// and one of its files reads the node's routes map, so gears' host names are served.
///
/// `apache2` is run directly, not through `apache2ctl`, which creates Apache's run and lock
/// directories when they are missing; the environment `apache2ctl` would give it comes from
/// Debian's `envvars`, read as data.
struct ApacheCheck: NodeCheck {
    let name = "apache"
    static let program = "/usr/sbin/apache2"
    static let envvars = "/etc/apache2/envvars"

    func run(_ node: NodeUnderTest) -> [Finding] {
        guard node.apacheConfigured else {
            return [.note("apache is not in OPENSHIFT_FRONTEND_HTTP_PLUGINS: Apache is not checked")]
        }
        var config = node.httpdConfig
        if config == nil, let root = node.layout.root {
            let sandboxConfig = root + "/httpd.conf"
            guard access(sandboxConfig, F_OK) == 0 else {
                return [.note("no Apache configuration for this sandbox (\(sandboxConfig), or --httpd-config FILE): Apache is not checked")]
            }
            config = sandboxConfig
        }
        guard access(Self.program, X_OK) == 0 else {
            return [.fail("apache is in OPENSHIFT_FRONTEND_HTTP_PLUGINS, but \(Self.program) is not installed: no gear's host name is served",
                          fix: "install apache2, or remove apache from OPENSHIFT_FRONTEND_HTTP_PLUGINS")]
        }
        if let config, access(config, R_OK) != 0 {
            return [.fail("Apache configuration \(config) cannot be read: \(String(cString: strerror(errno)))",
                          fix: "name Apache's configuration with --httpd-config FILE (`openshift-node apache-config --standalone PORT` writes a whole one)")]
        }
        let shown = config ?? "/etc/apache2/apache2.conf"
        let argv = [Self.program, "-t", "-D", "DUMP_INCLUDES"] + (config.map { ["-f", $0] } ?? [])
        let test = argv.filter { $0 != "-D" && $0 != "DUMP_INCLUDES" }.map(NodeUnderTest.quoted).joined(separator: " ")
        let result: Spawner.Result
        do {
            result = try Spawner.run(argv, environment: Self.environment(), timeoutSeconds: 60)
        } catch {
            return [.fail("\(Self.program) could not be run to test \(shown): \(error)", fix: "check the apache2 installation")]
        }
        guard result.status == 0, !result.timedOut else {
            // Apache's own words: "AH00526: Syntax error on line 9 of FILE:" and the reason.
            let lines = result.stderr.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("AH00558") }
            let reason = lines.prefix(3).joined(separator: " ")
            return [.fail("Apache configuration \(shown) does not parse: " + (reason.isEmpty ? "\(Self.program) exited \(result.status)" : reason),
                          fix: "correct it, then test it with \(test)")]
        }
        let files = Self.includedFiles(result.stdout)
        let routes = node.mapDirectory + "/routes.txt"
        guard files.contains(where: { (FileSystem.read($0, limit: 4 << 20) ?? "").contains(routes) }) else {
            return [.fail("Apache configuration \(shown) parses but does not route gears: none of its \(files.count) file(s) reads \(routes)",
                          fix: "include the output of \(node.command(["openshift-node", "apache-config"])) in a VirtualHost, then reload Apache")]
        }
        return [.note("Apache configuration \(shown) parses and routes gears from \(node.mapDirectory)")]
    }

    /// The files of `-D DUMP_INCLUDES`: `  (*) /etc/apache2/apache2.conf`, `    (146) /etc/...`.
    static func includedFiles(_ output: String) -> [String] {
        output.split(separator: "\n").compactMap { line in
            guard let close = line.firstIndex(of: ")"), line.drop(while: { $0 == " " }).hasPrefix("(") else { return nil }
            let path = line[line.index(after: close)...].drop(while: { $0 == " " })
            return path.hasPrefix("/") ? String(path) : nil
        }
    }

    /// What `apache2ctl` exports from `envvars` (`export APACHE_RUN_DIR=/var/run/apache2$SUFFIX`
    /// lines; `SUFFIX` is empty for the default instance), with a fixed PATH.
    static func environment() -> [String: String] {
        var environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"]
        for raw in (FileSystem.read(envvars, limit: 1 << 20) ?? "").split(separator: "\n") {
            let line = raw.drop(while: { $0 == " " || $0 == "\t" })
            guard line.hasPrefix("export "), let eq = line.firstIndex(of: "=") else { continue }
            let key = String(line.dropFirst(7)[..<eq]).trimmingSpaces
            var value = String(line[line.index(after: eq)...])
            for suffix in ["${SUFFIX}", "$SUFFIX"] { value = value.split(separator: suffix, omittingEmptySubsequences: false).joined() }
            guard key.hasPrefix("APACHE_"), !value.contains("$"), !value.contains("`") else { continue }
            environment[key] = value
        }
        return environment
    }
}

extension String {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
