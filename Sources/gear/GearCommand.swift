import Access
import ArgumentParser

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
        abstract: "Control, snapshot and restore this gear (run inside the gear, as its user).",
        subcommands: [Start.self, Stop.self, Restart.self, Status.self, Snapshot.self, Restore.self])
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
        try inGear { (gear: InGear) throws(InGearError) in try GearSnapshot(gear: gear, say: say).run() }
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
        try inGear { (gear: InGear) throws(InGearError) in try GearRestore(gear: gear, includeGit: git, say: say).run() }
    }
}
