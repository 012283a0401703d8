import NodeTestSupport
import Testing

@testable import Containment

#if canImport(Glibc)
import Glibc
#endif

/// Reads `/proc/<pid>/status` once the process has exec'ed `name`.
func status(of pid: pid_t, once name: String) async -> String? {
    for _ in 0..<200 {
        if let text = TestFiles.read("/proc/\(pid)/status"), text.contains("Name:\t\(name)") { return text }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return nil
}

func field(_ status: String, _ name: String) -> String? {
    status.split(separator: "\n").first { $0.hasPrefix(name + ":") }
        .map { $0.dropFirst(name.count + 1).split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " ") }
}

@Suite("gear exec")
struct GearExecTests {
    @Test("bad arguments are refused by the helper with the reason, before it changes anything")
    func arguments() throws {
        var spec = GearExec(uid: 4000, gid: 4000, command: ["/bin/sleep", "1"])
        spec.supplementaryGroups = [4001, 4002]
        spec.context = "unconfined_u:system_r:openshift_t:s0:c3,c9"
        spec.cgroupFiles = ["/sys/fs/cgroup/pids/openshift/g/cgroup.procs"]
        spec.rlimits = [.init("NPROC", 250, 250)]
        spec.directory = "/var/lib/openshift/g"
        #expect(spec.arguments == ["--uid", "4000", "--gid", "4000", "--groups", "4001,4002", "--context", spec.context!,
                                   "--cgroup", spec.cgroupFiles[0], "--rlimit", "NPROC=250:250", "--chdir", "/var/lib/openshift/g",
                                   "--env-fd", "3", "--", "/bin/sleep", "1"])
        let refused: [([String], String)] = [
            (["--uid", "0", "--gid", "5", "--", "/bin/true"], "a gear never runs as root"),
            (["--uid", "5", "--gid", "0", "--", "/bin/true"], "a gear never runs as root"),
            (["--uid", "-1", "--gid", "5", "--", "/bin/true"], "a gear never runs as root"),
            (["--uid", "4294967295", "--gid", "5", "--", "/bin/true"], "a gear never runs as root"),
            (["--uid", "5", "--gid", "5", "--", "true"], "an absolute path is required"),
            (["--uid", "5", "--gid", "5", "--rlimit", "NPROC=9:1", "--", "/bin/true"], "SOFT <= HARD"),
            (["--uid", "5", "--gid", "5", "--rlimit", "BOGUS=1:1", "--", "/bin/true"], "unknown resource limit"),
            (["--uid", "5", "--gid", "5", "--frobnicate", "x", "--", "/bin/true"], "unknown option"),
            (["--uid", "5", "--gid", "5", "--env-fd", "1", "--", "/bin/true"], "from 3 to 1023"),
            (["--uid", "5", "--", "/bin/true"], "both are required"),
        ]
        for (argv, reason) in refused {
            let result = try ProcessRunner.run([ProcessRunner.executable("oo-gear-exec")] + argv)
            #expect(result.status == 126, "\(argv)")
            #expect(result.stderr.contains(reason), "\(argv): \(result.stderr)")
        }
    }

    @Test("a process run as the gear has its uid, gid, groups and limits, and no capability at all",
          .enabled(if: Prerequisites.rootOrCI), .timeLimit(.minutes(3)))
    func identity() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        var spec = GearExec(uid: 45001, gid: 45001, command: ["/bin/sleep", "30"])
        spec.supplementaryGroups = [45002]
        spec.rlimits = [.init("NPROC", 100, 120), .init("NOFILE", 512, 1024)]
        spec.directory = "/tmp"
        spec.environmentOnDescriptor3 = false
        let scratch = TestFiles.temporaryDirectory("gear-exec")
        defer { TestFiles.remove(scratch) }
        let pid = try ProcessRunner.spawn([ProcessRunner.executable("oo-gear-exec")] + spec.arguments,
                                          stdout: scratch + "/out", stderr: scratch + "/err")
        defer {
            kill(pid, SIGKILL)
            _ = ProcessRunner.wait(pid)
        }
        let text = try #require(await status(of: pid, once: "sleep"), "\(TestFiles.read(scratch + "/err") ?? "")")
        #expect(field(text, "Uid") == "45001 45001 45001 45001")
        #expect(field(text, "Gid") == "45001 45001 45001 45001")
        #expect(field(text, "Groups") == "45002")
        let sets = try #require(Capabilities.Sets(status: text))
        #expect(sets.effective == 0 && sets.permitted == 0 && sets.bounding == 0 && sets.inheritable == 0 && sets.ambient == 0)
        let limits = TestFiles.read("/proc/\(pid)/limits") ?? ""
        #expect(limits.contains { _ in true } && limits.split(separator: "\n").contains { $0.hasPrefix("Max processes") && $0.contains("100") && $0.contains("120") })
        #expect(limits.split(separator: "\n").contains { $0.hasPrefix("Max open files") && $0.contains("512") && $0.contains("1024") })
    }

    @Test("a setuid-root program run by a gear still gets no capability",
          .enabled(if: Prerequisites.rootOrCI), .timeLimit(.minutes(3)))
    func noRegain() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let scratch = TestFiles.temporaryDirectory("gear-suid")
        defer { TestFiles.remove(scratch) }
        chmod(scratch, 0o755)
        // A private setuid-root copy of sleep: exec'ing it makes the euid 0.
        #expect(try ProcessRunner.run(["/bin/cp", "/bin/sleep", scratch + "/suid-sleep"]).status == 0)
        chmod(scratch + "/suid-sleep", 0o4755)
        let pid = try ProcessRunner.spawn(
            [ProcessRunner.executable("oo-gear-exec"), "--uid", "45003", "--gid", "45003", "--", scratch + "/suid-sleep", "30"],
            stdout: scratch + "/out", stderr: scratch + "/err")
        defer {
            kill(pid, SIGKILL)
            _ = ProcessRunner.wait(pid)
        }
        let text = try #require(await status(of: pid, once: "suid-sleep"), "\(TestFiles.read(scratch + "/err") ?? "")")
        let euid = field(text, "Uid")?.split(separator: " ").dropFirst().first
        #expect(euid == "0" || euid == "45003", "0 unless the file system is mounted nosuid")
        let sets = try #require(Capabilities.Sets(status: text))
        #expect(sets.isEmpty, "even with euid 0, an empty bounding set leaves no capability: \(sets)")
    }
}
