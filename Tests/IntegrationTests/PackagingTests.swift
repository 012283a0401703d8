import Containment
import Foundation
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Debian packages, for real: built from a commit by `packaging/build-debs` (release, static
/// Swift runtime), checked by lintian, published by `packaging/publish` into a signed apt
/// repository served on loopback, installed on this machine with apt from there, the installed
/// daemon started as its unit would start it, cartridge packages installed and removed under
/// the dpkg trigger, and everything purged again: what the packages made is gone, what was
/// there before is unchanged.
///
/// The packages hold the committed HEAD (see `PackageRepository`). The apt test installs into
/// the real /etc/openshift, /var/lib/openshift and /usr; no other test uses those (they run
/// under scratch roots), and the test refuses to start over an installed openshift-node.
@Suite("Debian packages: built from a commit, published, installed with apt",
       .enabled(if: Prerequisites.rootOrCI), .serialized)
struct PackagingTests {
    static let packages = ["openshift-node", "openshift-node-cartridge-cron", "openshift-node-cartridge-diy",
                           "openshift-node-cartridge-mock", "openshift-node-cartridge-python"]

    /// What building, checking and publishing need (.ci/setup installs them).
    static var toolProblem: String? {
        let tools = ["/usr/bin/dpkg-buildpackage", "/usr/bin/dh", "/usr/bin/fakeroot", "/usr/bin/lintian", "/usr/bin/reprepro",
                     "/usr/bin/gpg", "/usr/bin/help2man", "/usr/bin/git", "/usr/bin/python3"]
        let missing = tools.filter { access($0, X_OK) != 0 }
        if !missing.isEmpty { return "missing \(missing.joined(separator: ", ")) (.ci/setup installs them)" }
        return nil
    }

    static func repository() async throws -> PackageRepository {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        try #require(toolProblem == nil, "\(toolProblem ?? "")")
        return try await onThread { try PackageRepository.shared() }
    }

    /// Package name -> .deb file.
    static func debs(_ repository: PackageRepository) throws -> [String: String] {
        var result: [String: String] = [:]
        for file in TestFiles.list(repository.debDirectory) where file.hasSuffix(".deb") {
            let path = repository.debDirectory + "/" + file
            result[try field(path, "Package")] = path
        }
        return result
    }

    static func field(_ deb: String, _ name: String) throws -> String {
        try checked(["/usr/bin/dpkg-deb", "-f", deb, name]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The paths a .deb holds (`dpkg-deb -c`), without the leading "." and link targets.
    static func contents(_ deb: String) throws -> [String] {
        try checked(["/usr/bin/dpkg-deb", "-c", deb]).split(separator: "\n").compactMap { line in
            guard let dot = line.range(of: " ./") else { return nil }
            var path = String(line[line.index(after: dot.lowerBound)...].dropFirst())
            if let arrow = path.range(of: " -> ") { path = String(path[..<arrow.lowerBound]) }
            if path.count > 1 && path.hasSuffix("/") { path.removeLast() }
            return path
        }
    }

    @discardableResult
    static func checked(_ argv: [String], environment: [String: String] = [:]) throws -> String {
        let result = try ProcessRunner.run(argv, environment: environment)
        guard result.status == 0 else {
            throw TestFiles.Failure(description: "\(argv.joined(separator: " ")) exited \(result.status):\n\(result.stdout)\n\(result.stderr)")
        }
        return result.stdout
    }

    @Test("the build makes the five packages, with their sizes, and lintian finds no error in them", .timeLimit(.minutes(40)))
    func packagesAndLintian() async throws {
        let repository = try await Self.repository()
        let debs = try Self.debs(repository)
        #expect(debs.keys.sorted() == Self.packages, "built: \(debs.values.sorted())")

        var figures = ["package sizes (.deb bytes, Installed-Size KiB):"]
        for (name, deb) in debs.sorted(by: { $0.key < $1.key }) {
            var st = stat()
            stat(deb, &st)
            figures.append("  \(name): \(st.st_size) bytes, installed \(try Self.field(deb, "Installed-Size")) KiB")
        }
        let buildLog = repository.debDirectory + "/../build.log"
        if let summary = TestFiles.read(buildLog)?.split(separator: "\n").last(where: { $0.hasPrefix("build-debs: ") && $0.contains(" packages of ") }) {
            figures.append("  \(summary)")
        }
        print(figures.joined(separator: "\n"))

        let lintian = try ProcessRunner.run(["/usr/bin/lintian", "--display-info"] + debs.values.sorted())
        let lines = (lintian.stdout + lintian.stderr).split(separator: "\n").map(String.init)
        let tags = lines.filter { $0.hasPrefix("E: ") || $0.hasPrefix("W: ") || $0.hasPrefix("I: ") }
        print("lintian (\(tags.count) tags):\n" + tags.joined(separator: "\n"))
        let errors = lines.filter { $0.hasPrefix("E: ") }
        #expect(errors.isEmpty, "lintian errors:\n\(errors.joined(separator: "\n"))")
        #expect(lintian.status == 0 || !errors.isEmpty, "lintian failed to run: \(lintian.stderr)")
    }

    @Test("the node package: node.conf a conffile for the packaged paths, units, man pages, completions, the DDL, the trigger",
          .timeLimit(.minutes(40)))
    func nodePackageContents() async throws {
        let repository = try await Self.repository()
        let debs = try Self.debs(repository)
        let node = try #require(debs["openshift-node"])
        let files = Set(try Self.contents(node))

        let conffiles = try Self.checked(["/usr/bin/dpkg-deb", "-I", node, "conffiles"])
        #expect(conffiles.contains("/etc/openshift/node.conf"), "conffiles: \(conffiles)")
        #expect(conffiles.contains("/etc/openshift/resource_limits.conf"), "conffiles: \(conffiles)")
        let triggers = try Self.checked(["/usr/bin/dpkg-deb", "-I", node, "triggers"])
        #expect(triggers.contains("interest-noawait /usr/libexec/openshift/cartridges"), "triggers: \(triggers)")
        let depends = try Self.field(node, "Depends")
        #expect(depends.contains("libselinux1") && depends.contains("apache2"), "Depends: \(depends)")
        #expect(!depends.lowercased().contains("swift"), "the Swift runtime is linked in: Depends: \(depends)")

        let admin = ["openshift-node", "oo-admin-cartridge", "oo-cartridge", "oo-admin-ctl-gears", "oo-devel-node", "oo-accept-node"]
        var expected: [String] = ["/etc/openshift/node.conf", "/etc/openshift/resource_limits.conf", "/var/lib/openshift",
                                  "/lib/systemd/system/openshift-node.service", "/lib/systemd/system/openshift-gears.service",
                                  "/usr/share/mcollective/plugins/mcollective/agent/openshift.ddl",
                                  "/usr/share/mcollective/plugins/mcollective/validator/any_validator.rb",
                                  "/usr/share/mcollective/plugins/mcollective/validator/any_validator.ddl",
                                  "/usr/bin/gear", "/usr/bin/oo-trap-user", "/usr/share/man/man1/gear.1.gz",
                                  "/usr/share/man/man1/oo-trap-user.1.gz", "/usr/share/bash-completion/completions/gear"]
        for program in admin {
            expected += ["/usr/sbin/\(program)", "/usr/share/man/man8/\(program).8.gz", "/usr/share/bash-completion/completions/\(program)"]
        }
        for program in admin + ["gear", "oo-trap-user", "oo-gear-exec"] { expected.append("/usr/libexec/openshift-node/\(program)") }
        let missing = expected.filter { !files.contains($0) }
        #expect(missing.isEmpty, "missing from openshift-node: \(missing)")

        // What the files say, from the package itself.
        let tree = TestFiles.temporaryDirectory("node-deb")
        defer { TestFiles.remove(tree) }
        try Self.checked(["/usr/bin/dpkg-deb", "-x", node, tree])
        let conf = TestFiles.read(tree + "/etc/openshift/node.conf") ?? ""
        #expect(conf.contains("\nGEAR_SHELL=\"/usr/bin/oo-trap-user\"\n") && conf.contains("\nGEAR_TOOL=\"/usr/bin/gear\"\n"))
        let parsed = try NodeConfiguration(parsing: conf, file: "/etc/openshift/node.conf")
        #expect(parsed.string("GEAR_SHELL") == "/usr/bin/oo-trap-user")
        let limits = try ResourceLimits(parsing: TestFiles.read(tree + "/etc/openshift/resource_limits.conf") ?? "",
                                        file: "resource_limits.conf")
        #expect(limits.values == ResourceLimits.defaults, "the shipped limits are the built-in defaults")
        var st = stat()
        #expect(lstat(tree + "/var/lib/openshift", &st) == 0 && st.st_mode & 0o7777 == 0o755)
        let unit = TestFiles.read(tree + "/lib/systemd/system/openshift-node.service") ?? ""
        #expect(unit.contains("ExecStart=/usr/sbin/openshift-node"), "unit: \(unit)")
        let dynamic = try Self.checked(["/usr/bin/readelf", "-d", tree + "/usr/libexec/openshift-node/openshift-node"])
        #expect(!dynamic.contains("libswift") && !dynamic.contains("libFoundation") && !dynamic.contains("RUNPATH")
                && !dynamic.contains("RPATH"), "the daemon needs no Swift library and no search path:\n\(dynamic)")
        for helper in ["oo-gear-exec", "oo-trap-user"] {
            let header = try Self.checked(["/usr/bin/readelf", "-l", tree + "/usr/libexec/openshift-node/" + helper])
            #expect(!header.contains("INTERP"), "\(helper) is static: no dynamic loader")
        }

        for name in Self.packages where name != "openshift-node" {
            let cartridge = String(name.dropFirst("openshift-node-cartridge-".count))
            let deb = try #require(debs[name])
            #expect(try Self.field(deb, "Architecture") == "all")
            #expect(try Self.contents(deb).contains("/usr/libexec/openshift/cartridges/\(cartridge)/metadata/manifest.yml"))
        }
    }

    @Test("apt installs from the served repository; the daemon gets ready; cartridge packages rescan through the trigger; purge leaves nothing",
          .timeLimit(.minutes(40)))
    func installFromTheRepository() async throws {
        let repository = try await Self.repository()
        let debs = try Self.debs(repository)
        try #require(debs.count == Self.packages.count, "built: \(debs.keys.sorted())")
        let installed = try AptSystem.installedPackages(Self.packages)
        try #require(installed.isEmpty, "already installed here (purge them first): \(installed)")

        var watched = Set<String>()
        for deb in debs.values { watched.formUnion(try Self.contents(deb)) }
        let before = SystemSnapshot(paths: watched)
        let apt = try AptSystem(repository: repository, debFiles: Array(debs.values))
        defer { apt.cleanUp(purging: Self.packages) }

        let update = try await onThread { [apt] in try apt.run(["update"]) }
        try #require(update.status == 0, "apt-get update: \(update.stdout)\n\(update.stderr)")
        let install = try await onThread { [apt] in try apt.run(["install", "-y", "--no-install-recommends", "openshift-node", "openshift-node-cartridge-python"]) }
        try #require(install.status == 0, "apt-get install: \(install.stdout)\n\(install.stderr)")

        #expect(try Self.cartridges().contains("(redhat, python, 3.11, "), "python is in the repository once apt returns")
        #expect(TestFiles.read("/etc/shells")?.contains("\n/usr/bin/oo-trap-user\n") == true)
        var st = stat()
        #expect(lstat("/var/lib/openshift", &st) == 0 && st.st_uid == 0 && st.st_mode & 0o7777 == 0o755)

        // The installed daemon, started as the unit's ExecStart, tells systemd it is ready.
        let unit = TestFiles.read("/lib/systemd/system/openshift-node.service") ?? TestFiles.read("/usr/lib/systemd/system/openshift-node.service") ?? ""
        let execStart = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }, "no ExecStart in the unit")
        let argv = execStart.dropFirst("ExecStart=".count).drop { "-@:+!".contains($0) }.split(separator: " ").map(String.init)
        let scratch = TestFiles.temporaryDirectory("node-packaging")
        defer { TestFiles.remove(scratch) }
        let notify = try NotifySocket(path: scratch + "/notify")
        let daemon = try ProcessRunner.spawn(argv, stdout: scratch + "/daemon.out", stderr: scratch + "/daemon.log",
                                             environment: ["NOTIFY_SOCKET": notify.path, "LANG": "C.UTF-8"], inheritEnvironment: false)
        var daemonStopped = false
        defer { if !daemonStopped { ProcessRunner.terminate(daemon, graceSeconds: 10) } }
        let ready = await notify.waitFor(within: 120) { $0 == "READY=1" }
        #expect(ready, "no READY=1 from \(argv.joined(separator: " ")); got \(notify.fields); log:\n\(TestFiles.read(scratch + "/daemon.log") ?? "")")

        // A cartridge package installed: listed as soon as apt returns, the daemon still the same process.
        let diy = try await onThread { [apt] in try apt.run(["install", "-y", "--no-install-recommends", "openshift-node-cartridge-diy"]) }
        try #require(diy.status == 0, "apt-get install diy: \(diy.stdout)\n\(diy.stderr)")
        #expect(diy.stdout.contains("Processing triggers for openshift-node"), "the trigger ran: \(diy.stdout)")
        #expect(try Self.cartridges().contains("(redhat, diy, 0.1, 0.0.1)"), "diy is listed when apt returns")
        var raw: Int32 = 0
        #expect(waitpid(daemon, &raw, WNOHANG) == 0, "the daemon kept running: \(TestFiles.read(scratch + "/daemon.log") ?? "")")

        // Removed: still in the repository (gears may use it), marked not shipped.
        let remove = try await onThread { [apt] in try apt.run(["remove", "-y", "openshift-node-cartridge-diy"]) }
        try #require(remove.status == 0, "apt-get remove diy: \(remove.stdout)\n\(remove.stderr)")
        let entries = try Self.entries()
        #expect(entries.first { $0.name == "diy" }?.shipped == false, "diy after removal: \(entries)")
        #expect(entries.first { $0.name == "python" }?.shipped == true)

        kill(daemon, SIGTERM)
        let status = ProcessRunner.wait(daemon, timeoutSeconds: 60)
        daemonStopped = true
        #expect(status == 0, "the daemon stopped with \(String(describing: status)): \(TestFiles.read(scratch + "/daemon.log") ?? "")")

        // Purge: conffiles and the node's own state go; what was there before stays as it was.
        let purge = try await onThread { [apt] in try apt.run(["purge", "-y"] + Self.packages) }
        try #require(purge.status == 0, "apt-get purge: \(purge.stdout)\n\(purge.stderr)")
        #expect(try AptSystem.installedPackages(Self.packages).isEmpty)
        let after = SystemSnapshot(paths: watched)
        let differences = before.differences(to: after)
        #expect(differences.isEmpty, "purge left the system changed:\n\(differences.joined(separator: "\n"))")
    }

    /// `oo-cartridge list` of the installed node.
    static func cartridges() throws -> String { try checked(["/usr/sbin/oo-cartridge", "list"]) }

    struct Entry: Decodable, CustomStringConvertible {
        let name: String
        let shipped: Bool
        var description: String { "\(name) shipped=\(shipped)" }
    }

    static func entries() throws -> [Entry] {
        try JSONDecoder().decode([Entry].self, from: Data(try checked(["/usr/sbin/oo-cartridge", "list", "--json"]).utf8))
    }
}

/// apt on this machine, pointed at the served repository only: a sources file in
/// /etc/apt/sources.list.d (removed again at the end, with the lists and the archives apt
/// fetched from it), and every apt-get reading just that file.
struct AptSystem {
    static let sourceFile = "/etc/apt/sources.list.d/openshift-node-test.list"
    let port: String
    let debFiles: [String]

    init(repository: PackageRepository, debFiles: [String]) throws {
        port = String(repository.url.split(separator: ":").last?.split(separator: "/").first ?? "")
        self.debFiles = debFiles
        try TestFiles.write(Self.sourceFile,
                            "deb [signed-by=\(repository.keyFile)] \(repository.url) \(repository.suite) \(repository.component)\n")
    }

    func run(_ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.run(["/usr/bin/apt-get", "-o", "Dir::Etc::sourcelist=\(Self.sourceFile)", "-o", "Dir::Etc::sourceparts=-",
                               "-o", "APT::Get::List-Cleanup=0", "-o", "DPkg::Lock::Timeout=600", "-o", "Dpkg::Use-Pty=0"] + arguments,
                              environment: ["DEBIAN_FRONTEND": "noninteractive"])
    }

    /// Which of `packages` dpkg has installed or half-installed (anything but not-installed).
    static func installedPackages(_ packages: [String]) throws -> [String] {
        let result = try ProcessRunner.run(["/usr/bin/dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\n"] + packages)
        return result.stdout.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            return parts.count == 2 && parts[1] != "not-installed" ? String(parts[0]) : nil
        }
    }

    /// Removes every trace of the test's apt use, and the packages if a failure left them.
    func cleanUp(purging packages: [String]) {
        if let left = try? Self.installedPackages(packages), !left.isEmpty {
            _ = try? ProcessRunner.run(["/usr/bin/dpkg", "--purge"] + left, environment: ["DEBIAN_FRONTEND": "noninteractive"])
        }
        unlink(Self.sourceFile)
        for name in TestFiles.list("/var/lib/apt/lists") where name.hasPrefix("127.0.0.1:\(port)_") {
            unlink("/var/lib/apt/lists/" + name)
        }
        for deb in debFiles {
            unlink("/var/cache/apt/archives/" + String(deb[deb.index(after: deb.lastIndex(of: "/")!)...]))
        }
    }
}

/// What the packages may touch, before and after: each path the .debs hold (present or not),
/// every file below the directories the node fills at run time, and /etc/shells.
struct SystemSnapshot {
    static let trees = ["/etc/openshift", "/var/lib/openshift", "/run/openshift", "/usr/libexec/openshift",
                        "/usr/libexec/openshift-node", "/etc/apache2/conf.d", "/usr/share/mcollective/plugins/mcollective",
                        "/etc/systemd/system", "/var/lib/systemd/deb-systemd-helper-enabled"]
    var entries: [String: String] = [:]

    init(paths: Set<String>) {
        for path in paths { entries[path] = Self.describe(path) }
        for tree in Self.trees { walk(tree) }
        entries["/etc/shells (content)"] = TestFiles.read("/etc/shells") ?? "(missing)"
    }

    private mutating func walk(_ path: String) {
        let description = Self.describe(path)
        entries[path] = description
        guard description.hasPrefix("directory") else { return }
        for name in TestFiles.list(path, includeHidden: true) { walk(path + "/" + name) }
    }

    static func describe(_ path: String) -> String {
        var st = stat()
        guard lstat(path, &st) == 0 else { return "absent" }
        let mode = String(st.st_mode & 0o7777, radix: 8)
        switch st.st_mode & S_IFMT {
        case S_IFDIR: return "directory \(mode) \(st.st_uid):\(st.st_gid)"
        case S_IFLNK: return "link"
        default: return "file \(mode) \(st.st_uid):\(st.st_gid)"
        }
    }

    func differences(to other: SystemSnapshot) -> [String] {
        Set(entries.keys).union(other.entries.keys).sorted().compactMap { path in
            let was = entries[path] ?? "absent", now = other.entries[path] ?? "absent"
            return was == now ? nil : "\(path): \(was) before, \(now) after"
        }
    }
}
