import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// `gear restore [--restore-git-repo]`: the reference's restore (section 5.2) without the
/// scaled-application calls, in two phases.
///
/// 1. Nothing of the gear changes: the archive is read from stdin through `/bin/gzip -dc`, every
///    tar header is walked and checked (`TarReader`, `ArchivePolicy`), and the members of the
///    restored scope are written into a staging tree inside the gear (`.tmp/gear-restore.*`:
///    the gear's, on the home's file system so it counts in the gear's quota, and excluded from
///    snapshots). A truncated, corrupt or hostile archive, gzip's failure, or a full quota stops
///    here with the reason; the staging tree is removed.
/// 2. The gear is stopped (state and stop lock remembered), `control pre-restore` runs, the old
///    contents of `app-root/data` (and with git `app-deployments` and the repository's
///    non-`h*` directories) are moved aside and the staged ones renamed into place; any failure
///    renames everything back. `app-root/runtime/data` -> `../data` is recreated,
///    `control post-restore` runs, the gear is started again if it was started.
///
/// Member names are mapped as the original's `tar --strip=2 --transform` did: the top directory
/// is the gear's, the cartridges' `restore_transforms` and the original's two
/// (`<gear>/data` -> `app-root/data`, `git/*.git` -> `git/<gear>.git`) apply to the whole name.
/// Restored files get the archive's mode (setuid and setgid bits dropped) and time.
public struct GearRestore {
    public let gear: InGear
    public var includeGit: Bool
    public var limits = TarLimits()
    let say: (String) -> Void

    public init(gear: InGear, includeGit: Bool, say: @escaping (String) -> Void) {
        self.gear = gear
        self.includeGit = includeGit
        self.say = say
    }

    var gearName: String { gear.environment["OPENSHIFT_GEAR_NAME"] ?? gear.environment["OPENSHIFT_APP_NAME"] ?? gear.uuid }

    /// `git/<gear name>.git` when the git repository is restored.
    var gitRepository: String? { includeGit ? "git/\(gearName).git" : nil }

    /// The cartridges' transforms (with `$VAR` and `${VAR}` from the environment), then the original's two.
    public func transforms() throws(InGearError) -> [SedTransform] {
        var expressions: [String] = []
        for (_, rules) in gear.snapshotRules { expressions += rules.transforms.map { Self.expand($0, gear.environment) } }
        expressions += ["s|\(gearName)/data|app-root/data|", "s|git/.*\\.git|git/\(gearName).git|"]
        var result: [SedTransform] = []
        for expression in expressions {
            do throws(SedTransform.Invalid) { result.append(try SedTransform(expression)) } catch {
                throw .precondition("a cartridge's restore transform is invalid: \(error.description)")
            }
        }
        return result
    }

    /// `$NAME` and `${NAME}` replaced by the environment's value (empty when unset), as the
    /// original's shell did with these strings; nothing else of a shell.
    static func expand(_ text: String, _ environment: [String: String]) -> String {
        var out = ""
        var index = text.startIndex
        let nameCharacter = { (c: Character) in c == "_" || c.isLetter || c.isNumber }
        while index < text.endIndex {
            let c = text[index]
            guard c == "$" else {
                out.append(c)
                index = text.index(after: index)
                continue
            }
            var cursor = text.index(after: index)
            var braced = false
            if cursor < text.endIndex && text[cursor] == "{" {
                braced = true
                cursor = text.index(after: cursor)
            }
            let nameStart = cursor
            while cursor < text.endIndex && nameCharacter(text[cursor]) && text[cursor].isASCII { cursor = text.index(after: cursor) }
            let name = String(text[nameStart..<cursor])
            if name.isEmpty || (braced && (cursor == text.endIndex || text[cursor] != "}")) {
                out.append(c)
                index = text.index(after: index)
                continue
            }
            if braced { cursor = text.index(after: cursor) }
            out += environment[name] ?? ""
            index = cursor
        }
        return out
    }

    // MARK: Phase 1

    /// Where the staging tree goes: the gear's `.tmp/<uuid>` (pam_namespace's instance) or `.tmp`.
    func stagingBase() throws(InGearError) -> String {
        for candidate in [gear.home + "/.tmp/" + gear.uuid, gear.home + "/.tmp"] {
            var st = stat()
            if lstat(candidate, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, access(candidate, W_OK | X_OK) == 0 { return candidate }
        }
        throw .precondition("restore needs a directory of the gear to stage the archive in: \(gear.home)/.tmp is missing or not writable")
    }

    /// Staging trees of restores that were killed (their process is gone) are removed.
    static func removeStale(in base: String) {
        for name in FileSystem.entries(base) ?? [] where name.hasPrefix("gear-restore.") {
            let parts = name.split(separator: ".")
            if parts.count >= 2, let pid = pid_t(parts[1]), pid != getpid(), kill(pid, 0) != 0 && errno == ESRCH {
                FileSystem.removeTree(base + "/" + name)
            }
        }
    }

    func stage(input: Int32, into staging: StagingTree, policy: inout ArchivePolicy) throws(InGearError) {
        try Self.stage(input: input, into: staging, policy: &policy, limits: limits)
    }

    /// Checks the whole gzip tar archive from `input` with `policy` and writes what it admits
    /// into `staging` (restore and binary deploy).
    static func stage<Policy: MemberPolicy>(input: Int32, into staging: StagingTree, policy: inout Policy,
                                            limits: TarLimits) throws(InGearError) {
        let (output, errors) = try ChildProcess.pipes()
        let gzip: ChildProcess
        do throws(InGearError) {
            gzip = try ChildProcess.start(["/bin/gzip", "-dc"], environment: toolEnvironment, descriptors: [input, output.write, errors.write])
        } catch {
            for fd in [output.read, output.write, errors.read, errors.write] { close(fd) }
            throw error
        }
        close(output.write)
        close(errors.write)
        _ = fcntl(output.read, 1031 /* F_SETPIPE_SZ */, 1 << 20)
        var failure: InGearError?
        do throws(InGearError) {
            let reader = TarReader(DescriptorSource(output.read, name: "the output of gzip -dc"), limits: limits)
            while let entry = try reader.next() {
                switch try policy.admit(entry) {
                case .skip: break
                case .directory(let path, let mode, let time): try staging.directory(path, mode: mode, modificationTime: time)
                case .file(let path, let mode, let time): try staging.file(path, mode: mode, modificationTime: time, from: reader)
                case .symlink(let path, let target): try staging.symlink(path, target: target)
                case .hardLink(let path, let target): try staging.hardLink(path, target: target)
                }
            }
        } catch {
            failure = error
        }
        close(output.read)
        if failure != nil {
            // gzip may be blocked reading a stream that goes on: give it a moment to report its
            // own error (the better reason for a corrupt stream), then stop it.
            var waited = 0
            var raw: Int32 = 0
            while waitpid(gzip.pid, &raw, WNOHANG) == 0 && waited < 20 {
                usleep(10_000)
                waited += 1
            }
            if waited == 20 { kill(gzip.pid, SIGKILL) }
            else {
                let messages = ChildProcess.drain(errors.read)
                close(errors.read)
                let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
                if status != 0, case .refused(_, let reason)? = failure, reason.contains("truncated") || reason.contains("corrupt") {
                    throw .refused(member: "", reason: "the gzip stream is corrupt or truncated (gzip: \(Self.firstLine(messages)))")
                }
                throw failure!
            }
            _ = gzip.wait()
            close(errors.read)
            throw failure!
        }
        let messages = ChildProcess.drain(errors.read)
        close(errors.read)
        let status = gzip.wait()
        guard status == 0 else {
            throw .refused(member: "", reason: "the gzip stream is corrupt or truncated (gzip exit \(status): \(Self.firstLine(messages)))")
        }
    }

    static func firstLine(_ text: String) -> String {
        let line = String(text.split(separator: "\n").first ?? "no message")
        return line.hasPrefix("gzip: stdin: ") ? String(line.dropFirst(13)) : line
    }

    /// The target of the gear's link at a home-relative path, nil when it is not a link.
    func liveLink(_ relative: [UInt8]) -> [UInt8]? {
        let path = Array(gear.home.utf8) + [UInt8(ascii: "/")] + relative + [0]
        var buffer = [UInt8](repeating: 0, count: 4097)
        let n = path.withUnsafeBufferPointer { p in
            p.withMemoryRebound(to: CChar.self) { c in buffer.withUnsafeMutableBytes { readlink(c.baseAddress!, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) } }
        }
        return n > 0 ? Array(buffer[0..<n]) : nil
    }

    // MARK: Run

    public func run(input: Int32 = 0) throws(InGearError) {
        // Phase 1: nothing of the gear changes.
        if let gitRepository {
            var st = stat()
            guard lstat(gear.home + "/" + gitRepository, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
                throw .precondition("--restore-git-repo: this gear has no git repository ~/\(gitRepository) to restore into; nothing was changed")
            }
        }
        let scope = RestoreScope(gitRepository: gitRepository)
        for root in scope.roots {
            var st = stat()
            let path = gear.home + "/" + pathText(root)
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, access(path, W_OK | X_OK) == 0 else {
                throw .precondition("~/\(pathText(root)) is not a directory this gear can write; nothing was changed")
            }
        }
        var policy = ArchivePolicy(scope: scope, transforms: try transforms())
        let base = try stagingBase()
        var baseStatus = stat(), dataStatus = stat()
        guard stat(base, &baseStatus) == 0, stat(gear.home + "/app-root/data", &dataStatus) == 0, baseStatus.st_dev == dataStatus.st_dev else {
            throw .precondition("\(base) is not on the file system of ~/app-root/data: the archive cannot be staged there; nothing was changed")
        }
        Self.removeStale(in: base)
        let staging = try StagingTree(root: base + "/gear-restore.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
        defer { staging.remove() }
        do throws(InGearError) {
            try stage(input: input, into: staging, policy: &policy)
            try policy.finish(live: liveLink)
        } catch {
            if case .system(let system) = error, system.errno == EDQUOT || system.errno == ENOSPC {
                throw .precondition("the restored data does not fit in the gear's disk quota (\(system.description)); nothing was changed")
            }
            throw error
        }

        // Phase 2.
        let controller = GearController(gear: gear)
        try controller.whileStopped(say: say) { () throws(InGearError) in
            say(try controller.hook("pre-restore"))
            if includeGit { say("Removing old git repo: ~/\(gitRepository!)/") }
            say("Removing old data dir: ~/app-root/data/*")
            say(includeGit ? "Restoring ~/\(gitRepository!) and ~/app-root/data" : "Restoring ~/app-root/data")
            var swap = Swap(home: gear.home, staging: staging.root)
            do throws(InGearError) {
                try swap.replace(scope: scope, gitRepository: gitRepository)
                try staging.applyDirectoryAttributes(under: gear.home)
            } catch {
                let rolledBack = swap.rollBack()
                throw InGearError.restoreFailed(step: "putting the restored files in place", underlying: error.description, rolledBack: rolledBack)
            }
            ensureDataLink()
            say(try controller.hook("post-restore"))
        }
    }

    /// `app-root/runtime/data` -> `../data`, as the node creates it.
    func ensureDataLink() {
        let path = gear.home + "/app-root/runtime/data"
        if liveLink(Array("app-root/runtime/data".utf8)) == Array("../data".utf8) { return }
        unlink(path)
        if symlink("../data", path) != 0 { say("Could not recreate ~/app-root/runtime/data -> ../data: \(String(cString: strerror(errno)))") }
    }
}

/// The renames of phase 2, journaled so that a failure can put everything back.
struct Swap {
    let home: String
    let staging: String
    private var journal: [(from: String, to: String)] = []
    private var discarded = 0

    init(home: String, staging: String) {
        self.home = home
        self.staging = staging
    }

    private mutating func move(_ from: String, _ to: String) throws(InGearError) {
        guard rename(from, to) == 0 else { throw .system(SystemError(step: "rename to \(to)", path: from, errno: errno)) }
        journal.append((from, to))
    }

    /// Moves a live entry aside (into the staging tree, removed at the end).
    private mutating func discard(_ path: String) throws(InGearError) {
        if discarded == 0 { mkdir(staging + "/.old", 0o700) }
        var st = stat()
        // Moving a directory to another parent needs write permission on it (its `..` entry).
        if lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_mode & 0o200 == 0 { chmod(path, (st.st_mode & 0o7777) | 0o700) }
        discarded += 1
        try move(path, staging + "/.old/\(discarded)")
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Replaces each root's contents by the staged ones.
    mutating func replace(scope: RestoreScope, gitRepository: String?) throws(InGearError) {
        for root in scope.roots.map(pathText) {
            let live = home + "/" + root
            if root == gitRepository {
                // The original's `git/<app>.git/[^h]*/*`: hooks and top-level files stay (the latter are replaced if staged).
                for name in FileSystem.entries(live) ?? [] where !name.hasPrefix("h") && Self.isDirectory(live + "/" + name) {
                    for child in FileSystem.entries(live + "/" + name) ?? [] { try discard(live + "/" + name + "/" + child) }
                }
            } else {
                for name in FileSystem.entries(live) ?? [] { try discard(live + "/" + name) }
            }
            let staged = staging + "/" + root
            if Self.isDirectory(staged) { try merge(staged, into: live) }
        }
    }

    private mutating func merge(_ staged: String, into live: String) throws(InGearError) {
        for name in FileSystem.entries(staged) ?? [] {
            let source = staged + "/" + name, target = live + "/" + name
            var st = stat()
            if lstat(target, &st) == 0 {
                if (st.st_mode & S_IFMT) == S_IFDIR && Self.isDirectory(source) {
                    try merge(source, into: target)
                    continue
                }
                try discard(target)
            }
            try move(source, target)
        }
    }

    /// Undoes every rename, last first; false if one could not be undone.
    mutating func rollBack() -> Bool {
        var complete = true
        for (from, to) in journal.reversed() where rename(to, from) != 0 { complete = false }
        journal.removeAll()
        return complete
    }
}
