import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The gear's application repository (`~/git/<app>.git`, bare), used by the gear itself: every
/// git run is an argv (never a shell), with a clean environment (none of git's hook variables,
/// so a pre-receive quarantine or a `GIT_DIR` from the caller never changes what it reads), and
/// every ref a user gave is resolved with `--end-of-options` so it cannot become an option.
public struct GitRepository: Sendable {
    public static let git = "/usr/bin/git"
    public let path: String
    let home: String

    public init(path: String, home: String) {
        self.path = path
        self.home = home
    }

    public var exists: Bool {
        var st = stat()
        return lstat(path + "/objects", &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    var environment: [String: String] { ["PATH": "/usr/bin:/bin", "HOME": home, "LANG": "C", "LC_ALL": "C"] }

    func run(_ arguments: [String], timeoutSeconds: Double = 300) throws(InGearError) -> Spawner.Result {
        do throws(SystemError) {
            return try Spawner.run([Self.git, "--git-dir=" + path] + arguments, environment: environment, directory: home,
                                   timeoutSeconds: timeoutSeconds)
        } catch {
            throw .system(error)
        }
    }

    /// Whether a user's ref is one git could take as a revision name: bounded, no option, no
    /// control character or space. (Anything else is refused before git sees it.)
    public static func isAcceptableRef(_ ref: String) -> Bool {
        !ref.isEmpty && ref.utf8.count <= 256 && !ref.hasPrefix("-")
            && ref.unicodeScalars.allSatisfy { $0.value > 32 && $0.value != 127 }
    }

    public static func isObjectName(_ text: String) -> Bool {
        text.utf8.count == 40 && text.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    /// The full commit name `ref` resolves to, or nil (no such ref, an empty repository).
    public func commit(_ ref: String) throws(InGearError) -> String? {
        guard Self.isAcceptableRef(ref) else { return nil }
        let result = try run(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"], timeoutSeconds: 60)
        let name = result.stdout.trimmed()
        return result.status == 0 && Self.isObjectName(name) ? name : nil
    }

    /// The commit's tree name (what a deployment's checksum records).
    public func tree(_ commit: String) throws(InGearError) -> String? {
        let result = try run(["rev-parse", "--verify", "--quiet", "--end-of-options", commit + "^{tree}"], timeoutSeconds: 60)
        let name = result.stdout.trimmed()
        return result.status == 0 && Self.isObjectName(name) ? name : nil
    }

    /// Whether the commit holds `file` (the node's markers are read from the pushed commit).
    public func has(_ file: String, at commit: String) throws(InGearError) -> Bool {
        let result = try run(["ls-tree", "--name-only", commit, "--", file], timeoutSeconds: 60)
        return result.status == 0 && !result.stdout.isEmpty
    }

    /// Writes the commit's files into `directory` (`git archive | tar -x`, two processes joined
    /// by a pipe, no shell).
    public func archive(_ commit: String, into directory: String) throws(InGearError) {
        let (pipe, errors) = try ChildProcess.pipes()
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(null) }
        let gitProcess: ChildProcess
        let tarProcess: ChildProcess
        do throws(InGearError) {
            gitProcess = try ChildProcess.start([Self.git, "--git-dir=" + path, "archive", "--format=tar", commit],
                                                environment: environment, descriptors: [null, pipe.write, errors.write])
        } catch {
            for fd in [pipe.read, pipe.write, errors.read, errors.write] { close(fd) }
            throw error
        }
        close(pipe.write)
        do throws(InGearError) {
            tarProcess = try ChildProcess.start(["/bin/tar", "-x", "--no-same-owner", "-f", "-", "-C", directory],
                                                environment: toolEnvironment, descriptors: [pipe.read, null, errors.write])
        } catch {
            close(pipe.read)
            close(errors.write)
            kill(gitProcess.pid, SIGKILL)
            _ = gitProcess.wait()
            close(errors.read)
            throw error
        }
        close(pipe.read)
        close(errors.write)
        let messages = ChildProcess.drain(errors.read)
        close(errors.read)
        let gitStatus = gitProcess.wait()
        let tarStatus = tarProcess.wait()
        if gitStatus != 0 { throw .toolFailed(program: "git archive", status: gitStatus, output: messages) }
        if tarStatus != 0 { throw .toolFailed(program: "tar -x", status: tarStatus, output: messages) }
    }
}
