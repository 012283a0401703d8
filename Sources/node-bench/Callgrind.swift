import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Apache's user-space instructions per request, counted by valgrind's callgrind on a single
/// process (`apache2 -X`): a figure that does not move with the machine's load, unlike requests
/// per second on a shared CPU. Each configuration serves `small` and then `large` keep-alive
/// requests in two runs; the difference of the two totals over `large - small` requests leaves
/// start-up and shutdown out.
struct Callgrind {
    /// Where each run's server root goes (one directory per configuration).
    let directory: String
    var small = 300
    var large = 1300

    static var available: Bool { access("/usr/bin/valgrind", X_OK) == 0 }

    /// Instructions per request of the configuration `config(root)` for `GET url` with `host`.
    /// `prepare(root)` fills the root first. Nil if a run fails. As root, Apache changes to the
    /// `User` of its configuration (www-data) before it serves: callgrind can only write its
    /// counts at exit into a file that user may write, so the file is made for it beforehand.
    func perRequest(_ name: String, port: UInt16, url: String, host: String?,
                    prepare: (String) throws -> Void = { _ in }, config: (String) -> String) throws -> Double? {
        let root = directory + "/" + name
        try TestFiles.makeDirectories(root)
        try prepare(root)
        try TestFiles.write(root + "/httpd.conf", config(root))
        var totals: [Double] = []
        for count in [small, large] {
            let out = root + "/callgrind-\(count).out"
            try TestFiles.write(out, "")
            if geteuid() == 0 { _ = try ProcessRunner.run(["/bin/chown", "www-data", out]) }
            let argv = ["/usr/bin/valgrind", "--tool=callgrind", "--vgdb=no", "--callgrind-out-file=" + out, "/usr/sbin/apache2", "-X", "-f", root + "/httpd.conf"]
            let pid = try ProcessRunner.spawn(argv, stdout: root + "/valgrind-\(count).log", stderr: root + "/valgrind-\(count).err")
            var up = false
            for _ in 0..<300 where !up {
                up = HTTPProbe.get(port: port, path: url, headers: host.map { ["Host: \($0)"] } ?? [])?.status == 200
                if !up { usleep(100_000) }
            }
            let ab = try ProcessRunner.run(["/usr/bin/ab", "-q", "-k", "-c", "2", "-n", "\(count)"] + (host.map { ["-H", "Host: \($0)"] } ?? [])
                                           + ["http://127.0.0.1:\(port)\(url)"])
            // Apache exits on SIGTERM; valgrind then writes its counts.
            kill(pid, SIGTERM)
            _ = ProcessRunner.wait(pid, timeoutSeconds: 60)
            let failed = ab.stdout.split(separator: "\n").contains { $0.hasPrefix("Non-2xx") || ($0.hasPrefix("Failed requests:") && !$0.hasSuffix(" 0")) }
            if !up || ab.status != 0 || failed {
                let errors = [root + "/valgrind-\(count).err", root + "/httpd-error.log", root + "/error.log"].compactMap { TestFiles.read($0) }.joined()
                print("callgrind \(name): \(up ? "ab failed: \(ab.stdout)" : "Apache did not answer"): \(errors.suffix(600))")
            }
            guard up, ab.status == 0, !failed,
                  let line = (TestFiles.read(out) ?? "").split(separator: "\n").first(where: { $0.hasPrefix("totals:") }),
                  let total = Double(line.split(separator: " ").last ?? "") else { return nil }
            totals.append(total)
        }
        return (totals[1] - totals[0]) / Double(large - small)
    }
}
