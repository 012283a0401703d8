import Containment
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The application's git repository (`~/git/<app>.git`) and the node's side of deployments.
///
/// Every git run here is the gear's own: an argv run through the container plugin (as the gear,
/// in its cgroup, without capabilities), so a hostile template URL or template repository only
/// ever meets git running as the gear. Root only writes the hooks (root-owned, through
/// `GearHome`) and `~/.gitconfig`. Deploys and activations are the in-gear `gear` command run as
/// the gear: one implementation for a push over SSH and for the broker.
extension GearManager {
    static let git = "/usr/bin/git"

    /// The in-gear command: `GEAR_TOOL`, else `gear` beside this program.
    public var gearTool: String {
        let configured = configuration.string("GEAR_TOOL")
        if !configured.isEmpty { return configured }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/usr/bin/gear" }
        let exe = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return String(exe[..<(exe.lastIndex(of: "/") ?? exe.endIndex)]) + "/gear"
    }

    /// A template URL the node clones from: `empty`, an absolute local path, or an
    /// http(s)/git/file URL, optionally with `#<commit-ish>`; anything else is refused.
    static func templateSource(_ url: String) throws(GearsError) -> (source: String, ref: String?)? {
        if url == "empty" { return nil }
        var source = url
        var ref: String?
        if let hash = url.lastIndex(of: "#") {
            source = String(url[..<hash])
            ref = String(url[url.index(after: hash)...])
            guard let r = ref, (1...256).contains(r.utf8.count), r.utf8.allSatisfy({ ASCII.isAlphanumeric($0) || "_./~^-".utf8.contains($0) }),
                  !r.hasPrefix("-") else {
                throw .invalidArgument(field: "--with-template-git-url", value: String(url.prefix(200)),
                                       reason: "the #fragment must be a branch, tag or commit")
            }
        }
        let allowed = ["http://", "https://", "git://", "file:///"]
        guard source.utf8.count <= 2048, !source.hasPrefix("-"),
              source.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value != 127 }),
              allowed.contains(where: { source.hasPrefix($0) }) || (source.hasPrefix("/") && !source.contains("/../")) else {
            throw .invalidArgument(field: "--with-template-git-url", value: String(url.prefix(200)),
                                   reason: "CLIENT_ERROR: Source code repository URL protocol must be one of: git, http, https, file (or an absolute path)")
        }
        return (source, ref)
    }

    /// Creates the repository of a deployable cartridge (from the template URL, the cartridge's
    /// `template/` or `template.git`, or empty), its hooks, and the first deployment (not
    /// started). An existing repository is kept. Without git on the node, the template is copied
    /// into the runtime as before, and the output says so.
    func populateRepository(_ gear: Gear, _ cartridge: GearCartridge, source: String, templateURL: String?,
                            home: GearHome) throws(GearsError) -> String {
        let relative = "git/" + gear.appName + ".git"
        // An existing repository is the gear's code: kept (its hooks rewritten if they are not
        // root's any more). A new one is made under a temporary name and renamed into place
        // last, so a configure killed half way leaves no half repository under the real name.
        if home.exists(relative) {
            if home.status(relative + "/hooks/post-receive")?.st_uid != 0 { try writeHooks(relative, home: home) }
            return try firstDeployment(gear, repo: gear.home + "/" + relative, home: home)
        }
        let staging = "git/." + gear.appName + ".git.creating"
        let repo = gear.home + "/" + staging
        guard access(Self.git, X_OK) == 0 else {
            try deployTemplate(from: source + "/template", in: home)
            return "CLIENT_MESSAGE: git is not installed on this node: no application repository was created\n"
        }
        // nil: no URL (the cartridge's template); .some(nil): "empty".
        var url: (source: String, ref: String?)?? = nil
        if let templateURL { url = .some(try Self.templateSource(templateURL)) }
        try containing { () throws(ContainmentError) in
            try home.makeDirectory("git", mode: 0o750, owner: .gear)
            if home.exists(staging) { try home.remove(staging) }
        }
        do throws(GearsError) {
            let builder = ["-c", "user.name=Template builder", "-c", "user.email=builder@example.com"]
            let template = "\(cartridge.name)/template"
            if let url {
                if let url {
                    try gearGit(gear, ["clone", "--bare", "--no-hardlinks", "--quiet", "--", url.source, repo], what: "clone \(url.source)")
                    let ref = url.ref ?? "HEAD"
                    let commit = try gearGit(gear, ["--git-dir=" + repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"],
                                             what: "find \(ref) in \(url.source)")
                    try gearGit(gear, ["--git-dir=" + repo, "update-ref", "refs/heads/master", (commit ?? "").trimmingTrailingNewlines], what: "set master")
                    try gearGit(gear, ["--git-dir=" + repo, "symbolic-ref", "HEAD", "refs/heads/master"], what: "set HEAD")
                } else {
                    try gearGit(gear, ["init", "--bare", "--quiet", "--initial-branch=master", repo], what: "create an empty repository")
                }
            } else if home.isDirectory(template + ".git") {
                try gearGit(gear, ["clone", "--bare", "--no-hardlinks", "--quiet", "--", gear.home + "/" + template + ".git", repo], what: "clone the template")
            } else {
                try gearGit(gear, ["init", "--bare", "--quiet", "--initial-branch=master", repo], what: "create the repository")
                if home.isDirectory(template) {
                    let work = ["--git-dir=" + repo, "--work-tree=" + gear.home + "/" + template]
                    try gearGit(gear, builder + work + ["add", "--all", "--force", "."], what: "add the template")
                    try gearGit(gear, builder + work + ["commit", "--quiet", "--no-verify", "-m", "Creating template"], what: "commit the template")
                    try containing { () throws(ContainmentError) in try home.remove(staging + "/index") }
                }
            }
            try gearGit(gear, ["--git-dir=" + repo, "config", "core.logAllRefUpdates", "true"], what: "configure the repository")
            try writeHooks(staging, home: home)
            try runAsGear(gear, ["/bin/mv", "-T", "--", repo, gear.home + "/" + relative], what: "move the repository into place")
        } catch {
            try? containing { () throws(ContainmentError) in try home.remove(staging) }
            throw error
        }
        return try firstDeployment(gear, repo: gear.home + "/" + relative, home: home)
    }

    /// `gear deploy --init` (the template becomes the first deployment, not started) when the
    /// gear has no deployment yet and its repository has a master branch.
    func firstDeployment(_ gear: Gear, repo: String, home: GearHome) throws(GearsError) -> String {
        guard !home.exists("app-deployments/current"),
              try gearGit(gear, ["--git-dir=" + repo, "rev-parse", "--verify", "--quiet", "refs/heads/master"], what: "", allowFailure: true) != nil
        else { return "" }
        return try runGearTool(gear, ["deploy", "--init"], what: "the first deployment")
    }

    /// The hooks git runs on a push (root's, so the gear cannot change what they run; it runs
    /// them as itself anyway) and `~/.gitconfig` when the gear has none.
    func writeHooks(_ relative: String, home: GearHome) throws(GearsError) {
        let tool = gearTool
        guard !tool.contains("'"), !tool.contains("\n") else {
            throw .invalidArgument(field: "GEAR_TOOL", value: tool, reason: "a path without quotes or newlines")
        }
        try containing { () throws(ContainmentError) in
            try home.remove(relative + "/hooks")
            try home.makeDirectory(relative + "/hooks", mode: 0o755, owner: .root)
            for (hook, command) in [("pre-receive", "prereceive"), ("post-receive", "postreceive")] {
                try home.write(relative + "/hooks/" + hook, "#!/bin/sh\nexec '\(tool)' \(command)\n", mode: 0o755, owner: .root)
            }
            if !home.exists(".gitconfig") {
                try home.write(".gitconfig", "[user]\n  name = OpenShift System User\n[gc]\n  auto = 100\n[pack]\n  windowMemory = 10m\n  packSizeLimit = 20m\n",
                               mode: 0o644, owner: .root)
            }
        }
    }

    /// Runs git as the gear; its stdout, or nil on failure when `allowFailure`.
    @discardableResult
    func gearGit(_ gear: Gear, _ arguments: [String], what: String, allowFailure: Bool = false) throws(GearsError) -> String? {
        try runAsGear(gear, [Self.git] + arguments, what: what, allowFailure: allowFailure)
    }

    /// Runs a program as the gear with a minimal environment; its stdout, or nil on failure when
    /// `allowFailure`.
    @discardableResult
    func runAsGear(_ gear: Gear, _ argv: [String], what: String, allowFailure: Bool = false) throws(GearsError) -> String? {
        let env = ["PATH": "/usr/bin:/bin", "HOME": gear.home + "/", "LANG": "C", "GIT_TERMINAL_PROMPT": "0"]
        let result = try containing { () throws(ContainmentError) in
            try plugin.run(gear.identity, argv, environment: env, directory: gear.home, timeoutSeconds: hookTimeoutSeconds)
        }
        guard result.status == 0 && !result.timedOut else {
            if allowFailure { return nil }
            throw .hookFailed(gear: gear.uuid, hook: "git (\(what))", status: 131,
                              output: "CLIENT_ERROR: Source code repository could not be set up (\(what)): "
                                  + result.stderr.trimmingTrailingNewlines + "\n")
        }
        return result.stdout
    }

    /// Runs the in-gear `gear` command as the gear, with the gear's environment; its output, or
    /// a hook failure carrying it.
    func runGearTool(_ gear: Gear, _ arguments: [String], what: String) throws(GearsError) -> String {
        let result = try gearToolResult(gear, arguments)
        guard result.status == 0 && !result.timedOut else {
            throw .hookFailed(gear: gear.uuid, hook: what, status: result.status, output: result.stdout + result.stderr)
        }
        return result.stdout + result.stderr
    }

    func gearToolResult(_ gear: Gear, _ arguments: [String]) throws(GearsError) -> Spawner.Result {
        try containing { () throws(ContainmentError) in
            try plugin.run(gear.identity, [gearTool] + arguments, environment: environment(gear, cartridge: nil), directory: gear.home,
                           timeoutSeconds: hookTimeoutSeconds)
        }
    }

    // MARK: Broker actions

    /// `deploy`: builds and activates `ref` (default: the deployment branch) as the gear.
    /// Returns the output and the exit status of `gear deploy`.
    public func deploy(_ uuid: String, ref: String?, hotDeploy: Bool, forceCleanBuild: Bool) throws(GearsError) -> HookOutput {
        try Self.validate(uuid: uuid)
        var arguments = ["deploy"]
        if hotDeploy { arguments.append("--hot-deploy") }
        if forceCleanBuild { arguments.append("--force-clean-build") }
        if let ref {
            guard !ref.isEmpty, ref.utf8.count <= 256, !ref.hasPrefix("-"), ref.unicodeScalars.allSatisfy({ $0.value > 32 && $0.value != 127 }) else {
                throw .invalidArgument(field: "--with-ref", value: String(ref.prefix(64)), reason: "a branch, tag or commit (no option, space or control character)")
            }
            arguments += ["--", ref]
        }
        let result = try gearToolResult(try gear(uuid), arguments)
        return HookOutput(output: result.stdout + result.stderr, status: result.timedOut ? 137 : result.status)
    }

    /// `activate`: makes a kept deployment the active one (rollback), as the gear.
    public func activate(_ uuid: String, deploymentID: String) throws(GearsError) -> HookOutput {
        try Self.validate(uuid: uuid)
        guard deploymentID.utf8.count == 8, deploymentID.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw .invalidArgument(field: "--with-deployment-id", value: String(deploymentID.prefix(64)), reason: "8 lowercase hexadecimal digits")
        }
        let result = try gearToolResult(try gear(uuid), ["activate", deploymentID])
        return HookOutput(output: result.stdout + result.stderr, status: result.timedOut ? 137 : result.status)
    }

    /// The gear's deployments as JSON text (`gear deployments --json`, run as the gear).
    public func deploymentsJSON(_ uuid: String) throws(GearsError) -> String {
        try Self.validate(uuid: uuid)
        let gear = try gear(uuid)
        // No deployment yet (no by-id/ link): nothing to ask the gear.
        guard try home(gear).isDirectory("app-deployments/by-id") else { return "[]" }
        let result = try gearToolResult(gear, ["deployments", "--json"])
        guard result.status == 0 && !result.timedOut else {
            throw .hookFailed(gear: uuid, hook: "gear deployments", status: result.status, output: result.stdout + result.stderr)
        }
        return result.stdout
    }
}

extension String {
    var trimmingTrailingNewlines: String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}
