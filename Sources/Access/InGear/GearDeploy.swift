import FoundationEssentials
import Gears
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The deploy lifecycle, run by the gear itself (`gear postreceive`, `gear deploy`, `gear
/// activate`, `gear binary-deploy`; the node's agent runs the same commands as the gear):
///
/// 1. build in a NEW `app-deployments/<datetime>/` while the current deployment keeps serving:
///    the pushed commit is archived into its `repo/`, the previous `dependencies/` copied in
///    (unless force clean build), then the primary cartridge's `pre-repo-archive`,
///    `update-configuration`, `pre-build` + the user's `pre_build`, `build` + `build`, and the
///    user's `prepare`, with `OPENSHIFT_REPO_DIR` and the dependency directories pointing into it;
/// 2. activate: the primary's `deploy` + the user's `deploy` (still on the new directory), then
///    ONE rename of the `current` link (the runtime's `repo`/`dependencies` are links through
///    it), then the primary's `restart` (a cartridge restarts without dropping a request) or,
///    for a hot deploy, nothing; then `post-deploy` + `post_deploy`.
///
/// A failure before the rename changes nothing that serves; a failed restart switches back and
/// restarts the previous deployment. The failed directory stays for inspection until a later
/// deploy prunes it. One deploy at a time per gear: `app-root/runtime/.deploy.lock`.
public struct GearDeploy {
    public let gear: InGear
    let say: (String) -> Void
    public let store: DeploymentStore
    public var lockWaitSeconds: Double = 600

    public init(gear: InGear, say: @escaping (String) -> Void) {
        self.gear = gear
        self.say = say
        store = DeploymentStore(home: gear.home)
    }

    // MARK: Settings

    /// A deployment setting: the gear's `.env/<name>` as the node wrote it last (so a change of
    /// `update-configuration` applies to the next push), else the process environment.
    public func setting(_ name: String) -> String? {
        if let text = FileSystem.read(gear.home + "/.env/" + name, limit: 4096) {
            let value = text.hasSuffix("\n") ? String(text.dropLast()) : text
            return value.isEmpty ? nil : value
        }
        return gear.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    public var deploymentType: String { setting("OPENSHIFT_DEPLOYMENT_TYPE") ?? "git" }
    public var deploymentBranch: String { setting("OPENSHIFT_DEPLOYMENT_BRANCH") ?? "master" }
    public var keepDeployments: Int { max(1, Int(setting("OPENSHIFT_KEEP_DEPLOYMENTS") ?? "1") ?? 1) }
    public var autoDeploy: Bool { setting("OPENSHIFT_AUTO_DEPLOY") != "false" }

    public var repository: GitRepository {
        let app = gear.environment["OPENSHIFT_APP_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? setting("OPENSHIFT_APP_NAME") ?? gear.uuid
        return GitRepository(path: gear.home + "/git/" + app + ".git", home: gear.home)
    }

    public var primary: InGearCartridge? { gear.cartridges.first { $0.name == gear.primary } }

    // MARK: Git push

    /// The pushed ref lines (`<old> <new> <ref>`) that update the deployment branch: the new
    /// commit, or nil when the push does not concern it (another branch, a tag of the same
    /// name, a deletion).
    public func pushedCommit(_ input: String) -> String? {
        let wanted = "refs/heads/" + deploymentBranch
        for line in input.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, String(fields[2]) == wanted else { continue }
            let new = String(fields[1])
            return GitRepository.isObjectName(new) && new != String(repeating: "0", count: 40) ? new : nil
        }
        return nil
    }

    /// `gear prereceive`: refuses a git push to a binary-deployed gear (exit 255 rejects it).
    /// Nothing stops: the application serves until the new deployment is active.
    public func preReceive() throws(InGearError) {
        if deploymentType == "binary" {
            throw .precondition("OPENSHIFT_DEPLOYMENT_TYPE is 'binary' - git-based deployments are disabled.")
        }
    }

    /// `gear postreceive`: deploys the deployment branch's tip when the push updated it and
    /// auto deploy is on. Prints the original's result block.
    public func postReceive(input: String, initial: Bool = false) throws(InGearError) {
        if deploymentType == "binary" {
            throw .precondition("OPENSHIFT_DEPLOYMENT_TYPE is 'binary' - git-based deployments are disabled.")
        }
        if !initial {
            guard let pushed = pushedCommit(input) else {
                say("The push does not update the deployment branch '\(deploymentBranch)': nothing deployed.")
                return
            }
            guard autoDeploy else {
                say("Auto deploy is disabled: nothing deployed (run 'gear deploy' to deploy \(String(pushed.prefix(7)))).")
                return
            }
        }
        do throws(InGearError) {
            try deploy(ref: deploymentBranch, hotDeploy: nil, forceCleanBuild: nil, initial: initial, supersedable: true)
        } catch {
            resultBlock(success: false)
            throw error
        }
        resultBlock(success: true)
    }

    func resultBlock(success: Bool) {
        let status = success ? "success" : "failure"
        let block = "-------------------------\nGit Post-Receive Result: \(status)\nActivation status: \(status)\n"
            + "Deployment completed with status: \(status)\n"
        _ = block.utf8CString.withUnsafeBufferPointer { write(1, $0.baseAddress, $0.count - 1) }
    }

    // MARK: Deploy

    /// Builds `ref` into a new deployment and activates it. `hotDeploy`/`forceCleanBuild` nil:
    /// from the commit's `.openshift/markers`. `supersedable`: a push's deploy that finds a newer
    /// tip of the branch once it holds the lock deploys that tip (or nothing, when it is active).
    @discardableResult
    public func deploy(ref: String, hotDeploy: Bool?, forceCleanBuild: Bool?, initial: Bool = false,
                       supersedable: Bool = false, activating: Bool = true) throws(InGearError) -> String {
        guard deploymentType != "binary" || initial else {
            throw .precondition("OPENSHIFT_DEPLOYMENT_TYPE is 'binary' - git-based deployments are disabled.")
        }
        guard GitRepository.isAcceptableRef(ref) else { throw .precondition("Git ref \(InGearError.quoted(ref)) is invalid") }
        let repo = repository
        guard repo.exists else { throw .precondition("this gear has no application repository (\(repo.path))") }
        return try withDeployLock { () throws(InGearError) -> String in
            guard let commit = try repo.commit(ref) else { throw .precondition("Git ref \(InGearError.quoted(ref)) is invalid") }
            if supersedable, let current = store.current, store.metadata(current).gitSHA1.map({ commit.hasPrefix($0) && $0.count >= 7 }) == true,
               !initial {
                say("Commit \(commit.prefix(7)) of '\(ref)' is already the active deployment: nothing to do.")
                return store.metadata(current).id ?? ""
            }
            var hot = hotDeploy ?? false
            var clean = forceCleanBuild ?? false
            if !initial {
                if hotDeploy == nil { hot = try repo.has(".openshift/markers/hot_deploy", at: commit) }
                if forceCleanBuild == nil { clean = try repo.has(".openshift/markers/force_clean_build", at: commit) }
            } else {
                hot = false
                clean = false
            }
            var metadata = DeploymentMetadata()
            metadata.gitRef = ref
            metadata.gitSHA1 = String(commit.prefix(7))
            metadata.hotDeploy = hot
            metadata.forceCleanBuild = clean
            metadata.checksum = try repo.tree(commit)
            let (datetime, id) = try store.create(metadata)
            do throws(InGearError) {
                say("Building git ref '\(ref)', commit \(commit.prefix(7))")
                try repo.archive(commit, into: store.path(datetime) + "/repo")
                try build(datetime, forceCleanBuild: clean)
                say("Deployment id is \(id)")
                if activating { try activate(datetime, hotDeploy: hot, initial: initial) }
            } catch {
                say("Deployment \(id) failed; it stays in app-deployments/\(datetime) for inspection."
                    + (store.current.map { " The active deployment (\(store.metadata($0).id ?? $0)) was not changed." } ?? ""))
                store.prune(keep: keepDeployments, sparing: [datetime])
                throw error
            }
            store.prune(keep: keepDeployments)
            return id
        }
    }

    /// The build steps in the new directory (nothing that serves changes here).
    func build(_ datetime: String, forceCleanBuild: Bool) throws(InGearError) {
        let directory = store.path(datetime)
        if forceCleanBuild {
            say("Force clean build enabled - cleaning dependencies")
        } else if let current = store.current, current != datetime {
            for part in ["dependencies", "build-dependencies"] {
                try tool(["/bin/cp", "-a", "--reflink=auto", store.path(current) + "/" + part + "/.", directory + "/" + part + "/"])
            }
        }
        guard let primary else { return }
        let env = environment(for: primary, deployment: datetime)
        try control("pre-repo-archive", primary, env)
        try control("update-configuration", primary, env)
        try control("pre-build", primary, env)
        try actionHook("pre_build", env, deployment: datetime)
        try control("build", primary, env)
        try actionHook("build", env, deployment: datetime)
        try actionHook("prepare", env, deployment: datetime)
    }

    /// Makes `datetime` the active deployment (see the type's comment).
    func activate(_ datetime: String, hotDeploy: Bool, initial: Bool) throws(InGearError) {
        say("Activating deployment")
        let previous = store.current
        if let primary {
            let env = environment(for: primary, deployment: datetime)
            try control("deploy", primary, env)
            try actionHook("deploy", env, deployment: datetime)
        }
        let wasStarted = gear.state == .started
        try store.switchCurrent(to: datetime)
        try store.recordActivation(datetime)
        if !initial && !hotDeploy {
            do throws(InGearError) {
                try startApplication(wasStarted: wasStarted)
            } catch {
                if let previous, previous != datetime {
                    say("Starting the new deployment failed: switching back to the previous one")
                    try? store.switchCurrent(to: previous)
                    try? store.dropLastActivation(datetime)
                    try? startApplication(wasStarted: wasStarted)
                }
                throw error
            }
        } else if hotDeploy && !initial, wasStarted, let primary {
            // Hot deploy: no stop and no start; the cartridge's reload picks the new code up
            // its own way (python: the same seamless hand-over as a restart).
            say("Hot deploy: reloading instead of restarting")
            try control("reload", primary, gear.environment(for: primary))
        }
        if !initial {
            try gear.setStopLock(false)
            try gear.setState(.started)
        }
        if let primary {
            let env = gear.environment(for: primary)
            do throws(InGearError) {
                try control("post-deploy", primary, env)
                try actionHook("post_deploy", env, deployment: datetime)
            } catch {
                say("Warning: the deployment is active, but its post-deploy step failed: \(error.description)")
            }
        }
    }

    /// Starts the gear on the current deployment: a started primary is restarted (the cartridge
    /// swaps code without dropping requests), a stopped gear is started (secondaries first).
    func startApplication(wasStarted: Bool) throws(InGearError) {
        guard let primary else { return }
        if wasStarted {
            try control("restart", primary, gear.environment(for: primary))
        } else {
            for cartridge in gear.startOrder where cartridge.name != primary.name && gear.hasControl(cartridge) {
                try control("start", cartridge, gear.environment(for: cartridge))
            }
            try control("start", primary, gear.environment(for: primary))
        }
    }

    /// `gear activate <id>`: re-activates a kept deployment (a rollback).
    public func activate(id: String) throws(InGearError) {
        guard DeploymentStore.isID(id) else { throw .precondition("Deployment id \(InGearError.quoted(id)) is invalid") }
        try withDeployLock { () throws(InGearError) in
            guard let datetime = store.datetime(ofID: id) else { throw .precondition("No deployment with id \(id) found on gear") }
            let metadata = store.metadata(datetime)
            try activate(datetime, hotDeploy: metadata.hotDeploy == true, initial: false)
            say("Deployment \(id) (\(metadata.gitRef), \(metadata.gitSHA1 ?? "no commit")) is active")
        }
    }

    // MARK: Steps

    /// A cartridge's environment with the deployment's directories in place of the runtime's.
    func environment(for cartridge: InGearCartridge, deployment datetime: String) -> [String: String] {
        var env = gear.environment(for: cartridge)
        let directory = store.path(datetime)
        env["OPENSHIFT_REPO_DIR"] = directory + "/repo/"
        env["OPENSHIFT_DEPENDENCIES_DIR"] = directory + "/dependencies/"
        env["OPENSHIFT_BUILD_DEPENDENCIES_DIR"] = directory + "/build-dependencies/"
        return env
    }

    func control(_ action: String, _ cartridge: InGearCartridge, _ env: [String: String]) throws(InGearError) {
        guard gear.hasControl(cartridge) else { return }
        let result: Spawner.Result
        do throws(SystemError) {
            result = try Spawner.run([cartridge.directory + "/bin/control", action], environment: env, directory: cartridge.directory,
                                     timeoutSeconds: gear.hookTimeoutSeconds)
        } catch {
            throw .system(error)
        }
        say(result.stdout + result.stderr)
        guard result.status == 0 && !result.timedOut else {
            throw .precondition("CLIENT_ERROR: Failed to execute: 'control \(action)' for \(cartridge.directory) (exit \(result.status)"
                                + (result.timedOut ? ", over \(Int(gear.hookTimeoutSeconds)) s" : "") + ")")
        }
    }

    /// The user's `.openshift/action_hooks/<name>` of the deployment's repo, when it is an
    /// executable regular file; run as the gear from its home.
    func actionHook(_ name: String, _ env: [String: String], deployment datetime: String) throws(InGearError) {
        let path = store.path(datetime) + "/repo/.openshift/action_hooks/" + name
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFREG, access(path, X_OK) == 0 else {
            say("NOTE: The .openshift/action_hooks/\(name) hook is not executable, to make it executable:\n"
                + "      On Windows run:   git update-index --chmod=+x .openshift/action_hooks/\(name)\n"
                + "      On Linux/OSX run: chmod +x .openshift/action_hooks/\(name)")
            return
        }
        let result: Spawner.Result
        do throws(SystemError) {
            result = try Spawner.run([path], environment: env, directory: gear.home, timeoutSeconds: gear.hookTimeoutSeconds)
        } catch {
            throw .system(error)
        }
        say(result.stdout + result.stderr)
        guard result.status == 0 && !result.timedOut else {
            throw .precondition("CLIENT_ERROR: Failed to execute action hook '\(name)' for \(gear.uuid) application "
                                + "\(gear.environment["OPENSHIFT_APP_NAME"] ?? "") (exit \(result.status))")
        }
    }

    func tool(_ argv: [String]) throws(InGearError) {
        let result: Spawner.Result
        do throws(SystemError) {
            result = try Spawner.run(argv, environment: toolEnvironment, directory: gear.home, timeoutSeconds: gear.hookTimeoutSeconds)
        } catch {
            throw .system(error)
        }
        guard result.status == 0 else { throw .toolFailed(program: argv[0], status: result.status, output: result.stderr) }
    }

    /// Runs `body` holding the gear's deploy lock (deploys, activations, snapshot and restore
    /// take it); one already running is waited for (up to `lockWaitSeconds`), with a message,
    /// and never interleaved with. The lock file is in the runtime, which a restore never replaces.
    public func withDeployLock<T>(_ body: () throws(InGearError) -> T) throws(InGearError) -> T {
        try store.makeDirectory(store.root, mode: 0o750)
        let path = gear.home + "/app-root/runtime/.deploy.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .system(SystemError(step: "open", path: path, errno: errno)) }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            say("Another deployment of this gear is running: waiting for it to finish...")
            let deadline = monotonicSeconds() + lockWaitSeconds
            while flock(fd, LOCK_EX | LOCK_NB) != 0 {
                guard monotonicSeconds() < deadline else {
                    throw .precondition("another deployment of this gear has been running for over \(Int(lockWaitSeconds)) s; try again later")
                }
                usleep(50_000)
            }
        }
        removeLeftovers()
        return try body()
    }

    /// What a deploy killed half way can leave (only ever removed under the deploy lock, when no
    /// other deploy runs): a `current` link not yet renamed, a binary archive being staged, a
    /// runtime directory set aside for its link.
    func removeLeftovers() {
        for name in FileSystem.entries(store.root) ?? [] where name.hasPrefix(".current.") || name.hasPrefix(".incoming.") {
            FileSystem.removeTree(store.root + "/" + name)
        }
        let runtime = gear.home + "/app-root/runtime"
        for name in FileSystem.entries(runtime) ?? [] where name.contains(".replaced.") {
            FileSystem.removeTree(runtime + "/" + name)
        }
    }
}
