import Access
import ArgumentParser
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// `gear`: the command a gear's user runs inside the gear (over SSH, through `oo-trap-user`):
/// start, stop, restart and status of the gear's cartridges, snapshot to stdout and restore from
/// stdin. It runs as the gear's user and refuses root. Messages go to stderr; stdout carries
/// only the archive (snapshot) or the status report.
@main
struct GearCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gear",
        abstract: "Deploy, control, snapshot and restore this gear (run inside the gear, as its user).",
        subcommands: [Start.self, Stop.self, Restart.self, Status.self, Snapshot.self, Restore.self,
                      PreReceive.self, PostReceive.self, Deploy.self, Build.self, Activate.self, Deployments.self,
                      ArchiveDeployment.self, BinaryDeploy.self])
}

/// Prints to stderr (never stdout: it may be the archive).
func say(_ text: String) {
    guard !text.isEmpty else { return }
    let line = text.hasSuffix("\n") ? text : text + "\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

/// The process's environment, as the gear's login shell built it.
func processEnvironment() -> [String: String] {
    var env: [String: String] = [:]
    var index = 0
    while let entry = environ[index] {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
        index += 1
    }
    return env
}

/// Runs `body` on the calling gear; an error is printed as its sentence and becomes the exit code.
func inGear(_ body: (InGear) throws(InGearError) -> Void) throws {
    // A closed SSH connection must not kill gear half way (a stopped gear would stay stopped):
    // the children get default dispositions back.
    signal(SIGPIPE, SIG_IGN)
    signal(SIGHUP, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    do throws(InGearError) {
        try body(try InGear.current(environment: processEnvironment()))
    } catch {
        say("gear: \(error.description)")
        throw ExitCode(error.kind.exitCode)
    }
}

func control(_ action: GearController.Action, message: String?) throws {
    try inGear { (gear: InGear) throws(InGearError) in
        if let message { say(message) }
        let output = try GearController(gear: gear).run(action)
        if action == .status {
            print(output, terminator: "")
        } else {
            say(output)
        }
    }
}

struct Start: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start every cartridge (secondaries first); removes the stop lock.")
    func run() throws { try control(.start, message: "Starting gear...") }
}

struct Stop: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop every cartridge (the primary first); sets the stop lock.")
    func run() throws { try control(.stop, message: "Stopping gear...") }
}

struct Restart: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Restart every cartridge (secondaries first).")
    @Flag(name: .customLong("all-cartridges"), help: "Accepted for compatibility: every cartridge is always restarted.")
    var allCartridges = false
    func run() throws { try control(.restart, message: "Restarting gear...") }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Every cartridge's control status, on stdout.")
    func run() throws { try control(.status, message: nil) }
}

struct Snapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a gzip tar of the gear to stdout (the gear is stopped meanwhile and started again if it was started).")

    func validate() throws {
        if isatty(1) != 0 { throw ValidationError("stdout is a terminal: redirect it to a file, e.g. gear snapshot > app.tar.gz") }
    }

    func run() throws {
        try inGear { (gear: InGear) throws(InGearError) in
            try GearDeploy(gear: gear, say: say).withDeployLock { () throws(InGearError) in try GearSnapshot(gear: gear, say: say).run() }
        }
    }
}

struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore app-root/data (and app-deployments, and with --restore-git-repo the git repository) from a snapshot on stdin.",
        discussion: "The whole archive is checked before anything of the gear changes: a truncated, corrupt or hostile archive is refused with the member and the reason.")

    @Flag(name: .customLong("restore-git-repo"), help: "Also restore the git repository (what `restore INCLUDE_GIT` asks).")
    var restoreGitRepo = false

    @Flag(name: .customLong("no-report-deployments"), help: "Accepted and ignored (nothing is reported to a broker from here).")
    var noReportDeployments = false

    @Argument(help: "INCLUDE_GIT: the same as --restore-git-repo.")
    var words: [String] = []

    func validate() throws {
        for word in words where word != "INCLUDE_GIT" { throw ValidationError("unexpected argument '\(word)' (only INCLUDE_GIT)") }
        if isatty(0) != 0 { throw ValidationError("stdin is a terminal: give the archive on stdin, e.g. gear restore < app.tar.gz") }
    }

    func run() throws {
        let git = restoreGitRepo || words.contains("INCLUDE_GIT")
        try inGear { (gear: InGear) throws(InGearError) in
            try GearDeploy(gear: gear, say: say).withDeployLock { () throws(InGearError) in
                try GearRestore(gear: gear, includeGit: git, say: say).run()
            }
        }
    }
}

// MARK: Deployments

/// Runs a deploy command; its failure is printed and exits 255, as the original's did.
func deploying(_ body: (GearDeploy) throws(InGearError) -> Void) throws {
    do {
        try inGear { (gear: InGear) throws(InGearError) in try body(GearDeploy(gear: gear, say: say)) }
    } catch is ExitCode {
        throw ExitCode(255)
    }
}

/// Standard input to its end (git's ref lines), at most 1 MiB.
func standardInput() -> String {
    (try? FileSystem.readAll(0, limit: 1 << 20, path: "stdin")).map { String(decoding: $0, as: UTF8.self) } ?? ""
}

struct PreReceive: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prereceive",
        abstract: "git's pre-receive hook: refuses a push to a binary-deployed gear; the application keeps running.")
    @Flag(name: .customLong("init")) var initial = false
    func run() throws {
        _ = standardInput()
        try deploying { (deploy: GearDeploy) throws(InGearError) in try deploy.preReceive() }
    }
}

struct PostReceive: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "postreceive",
        abstract: "git's post-receive hook: builds the pushed deployment branch in a new deployment and activates it.")
    @Flag(name: .customLong("init"), help: "The first deployment (configure): no restart, no markers.") var initial = false
    func run() throws {
        let input = standardInput()
        try deploying { (deploy: GearDeploy) throws(InGearError) in try deploy.postReceive(input: input, initial: initial) }
    }
}

struct Deploy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build REF (default: the deployment branch) in a new deployment and activate it.")
    @Flag(name: .customLong("hot-deploy")) var hotDeploy = false
    @Flag(name: .customLong("force-clean-build")) var forceCleanBuild = false
    @Flag(name: .customLong("init"), help: "The first deployment (configure): the application is not started.") var initial = false
    @Argument(help: "A branch, tag or commit.") var ref: String?
    func run() throws {
        try deploying { (deploy: GearDeploy) throws(InGearError) in
            try deploy.deploy(ref: ref ?? deploy.deploymentBranch, hotDeploy: initial ? false : hotDeploy,
                              forceCleanBuild: initial ? false : forceCleanBuild, initial: initial)
        }
    }
}

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Build REF in a new deployment without activating it (gear activate ID does).")
    @Argument(help: "A branch, tag or commit.") var ref: String?
    func run() throws {
        try deploying { (deploy: GearDeploy) throws(InGearError) in
            let id = try deploy.deploy(ref: ref ?? deploy.deploymentBranch, hotDeploy: nil, forceCleanBuild: nil, activating: false)
            print(id)
        }
    }
}

struct Activate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Activate a kept deployment by its id (a rollback).")
    @Argument var id: String
    @Flag(name: .customLong("all"), help: "Accepted for compatibility: this gear is the only one.") var all = false
    @Flag(name: .customLong("post-install")) var postInstall = false
    @Flag(name: .customLong("rotation"), inversion: .prefixedNo) var rotation = true
    func run() throws {
        try deploying { (deploy: GearDeploy) throws(InGearError) in try deploy.activate(id: id) }
    }
}

struct Deployments: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the deployments: activation time, id, git ref, sha1, ACTIVE.")
    @Flag(name: .customLong("json"), help: "The list the broker stores, as JSON.") var json = false
    func run() throws {
        try deploying { (deploy: GearDeploy) throws(InGearError) in
            print(json ? deploy.store.brokerJSON() : deploy.store.listing(), terminator: json ? "\n" : "")
        }
    }
}

struct ArchiveDeployment: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "archive-deployment",
        abstract: "Write a deployment (default: the current one) as a gzip tar to stdout, for gear binary-deploy.")
    @Option(name: .customLong("deployment-id")) var id: String?
    func validate() throws {
        if isatty(1) != 0 { throw ValidationError("stdout is a terminal: redirect it to a file") }
    }
    func run() throws {
        try deploying { (deploy: GearDeploy) throws(InGearError) in try deploy.archiveDeployment(id: id) }
    }
}

struct BinaryDeploy: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "binary-deploy",
        abstract: "Deploy a gzip tar (repo/, dependencies/, build-dependencies/) from stdin or FILE, without a build.")
    @Flag(name: .customLong("hot-deploy")) var hotDeploy = false
    @Argument(help: "A .tar.gz file (default: stdin).") var file: String?
    func run() throws {
        var input: Int32 = 0
        if let file {
            input = open(file, O_RDONLY | O_CLOEXEC)
            guard input >= 0 else {
                say("Specified file '\(file)' does not exist.")
                throw ExitCode(255)
            }
        }
        try deploying { (deploy: GearDeploy) throws(InGearError) in try deploy.binaryDeploy(input: input, hotDeploy: hotDeploy) }
    }
}
