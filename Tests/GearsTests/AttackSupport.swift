import Containment
import Gears
import NodeConfig
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Tools for performing attacks as a gear's user would: commands run with the gear's uid and
/// gid (`setpriv`, no capability, no PAM), a shared library that records which user loaded it,
/// and root-only decoys that must come out of an attack untouched.
enum Attack {
    /// Runs `script` with /bin/sh as the gear's user, in its home, with its group only.
    static func asGear(_ gear: Gear, _ script: String) throws -> ProcessRunner.Result {
        try ProcessRunner.run(["/usr/bin/setpriv", "--reuid=\(gear.identity.uid)", "--regid=\(gear.identity.gid)", "--clear-groups",
                               "--inh-caps=-all", "--bounding-set=-all", "--", "/bin/sh", "-c", "cd \(gear.home) && " + script],
                              environment: ["PATH": "/usr/bin:/bin", "HOME": gear.home])
    }

    /// Starts `script` as the gear's user in the background (an attacker racing root); returns its pid.
    static func startAsGear(_ gear: Gear, _ script: String, log: String) throws -> pid_t {
        try ProcessRunner.spawn(["/usr/bin/setpriv", "--reuid=\(gear.identity.uid)", "--regid=\(gear.identity.gid)", "--clear-groups",
                                 "--inh-caps=-all", "--bounding-set=-all", "--", "/bin/sh", "-c", "cd \(gear.home) && " + script],
                                stdout: log, stderr: log + ".err", environment: ["PATH": "/usr/bin:/bin"])
    }

    static func stop(_ pid: pid_t) {
        kill(pid, SIGKILL)
        _ = ProcessRunner.wait(pid)
    }

    /// A compiler for the planted library: the system's, or the Swift toolchain's clang.
    static var compiler: String? {
        for candidate in ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang", "/opt/swift/usr/bin/clang"] where access(candidate, X_OK) == 0 {
            return candidate
        }
        return nil
    }

    /// Builds `<directory>/planted.so`: when any process loads it, it appends its pid to
    /// `<markers>/loaded-by-<euid>`. A `loaded-by-0` file means code a gear planted ran as root.
    static func plantedLibrary(in directory: String, markers: String) throws -> String {
        guard let compiler else { throw TestFiles.Failure(description: "no C compiler (cc, gcc or clang) to build the planted library") }
        let source = directory + "/planted.c"
        try TestFiles.write(source, """
            #include <stdio.h>
            #include <unistd.h>
            __attribute__((constructor)) static void planted(void) {
                char path[512];
                snprintf(path, sizeof path, "\(markers)/loaded-by-%d", (int)geteuid());
                FILE *f = fopen(path, "a");
                if (f) { fprintf(f, "%d\\n", (int)getpid()); fclose(f); }
            }
            """)
        let library = directory + "/planted.so"
        let result = try ProcessRunner.run([compiler, "-shared", "-fPIC", "-o", library, source], environment: ["PATH": "/usr/bin:/bin"])
        guard result.status == 0 else { throw TestFiles.Failure(description: "cannot build the planted library: \(result.stderr)") }
        chmod(library, 0o755)
        return library
    }

    /// A directory only root may read, with `count` root files: what an attack must not reach.
    static func rootOnlyDecoy(_ path: String, count: Int) throws {
        try TestFiles.makeDirectories(path)
        for index in 0..<count { try TestFiles.write(path + "/secret\(index)", "root's \(index)\n", mode: 0o600) }
        chown(path, 0, 0)
        chmod(path, 0o700)
    }

    /// How many of the decoy's files are still there, root's, mode 0600.
    static func intactDecoyFiles(_ path: String, count: Int) -> Int {
        (0..<count).filter { mode(path + "/secret\($0)").map { $0 == (0, 0, 0o600) } ?? false }.count
    }

    /// A scratch directory every user may write to (markers of planted code).
    static func sharedDirectory(_ label: String) -> String {
        let path = TestFiles.temporaryDirectory(label)
        chmod(path, 0o1777)
        return path
    }
}
