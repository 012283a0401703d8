import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What a binary deployment's archive may hold: what `gear archive-deployment` writes, members
/// under `repo/`, `dependencies/` and `build-dependencies/` (a leading `./` allowed; a top-level
/// `metadata.json` ignored). Refused, with the member and the reason, before anything of the gear
/// changes: absolute names, `..`, other top-level names, devices and fifos, a member twice or
/// under a link or a file, a symbolic link that is absolute or leads out of the deployment
/// (following the archive's own links), a hard link to anything but an earlier regular file.
struct DeploymentArchivePolicy: MemberPolicy {
    private var kinds: [[String]: TarEntry.Kind] = [:]
    private var links: [[String]: [String]] = [:]

    static func components(_ name: [UInt8], member: String) throws(InGearError) -> [String] {
        guard name.first != UInt8(ascii: "/") else { throw .refused(member: member, reason: "an absolute name") }
        let parts = name.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true).map { String(decoding: $0, as: UTF8.self) }
        guard !parts.contains("..") else { throw .refused(member: member, reason: "a name with a '..' component") }
        return parts.filter { $0 != "." }
    }

    mutating func admit(_ entry: TarEntry) throws(InGearError) -> Placement {
        let member = entry.displayName
        switch entry.kind {
        case .file, .directory, .symlink, .hardLink: break
        case .characterDevice, .blockDevice: throw .refused(member: member, reason: "a device")
        case .fifo: throw .refused(member: member, reason: "a fifo")
        case .other: throw .refused(member: member, reason: "an unsupported member type")
        }
        let path = try Self.components(entry.name, member: member)
        guard let top = path.first else {
            guard entry.kind == .directory else { throw .refused(member: member, reason: "the archive's top is not a directory") }
            return .skip
        }
        if path == ["metadata.json"] { return .skip }
        guard DeploymentStore.parts.contains(top) else {
            throw .refused(member: member, reason: "not under repo/, dependencies/ or build-dependencies/ (what gear archive-deployment writes)")
        }
        if let previous = kinds[path], !(previous == .directory && entry.kind == .directory) {
            throw .refused(member: member, reason: "appears twice in the archive")
        }
        for length in 1..<path.count {
            let prefix = Array(path[..<length])
            if links[prefix] != nil { throw .refused(member: member, reason: "lies under a symbolic link member") }
            if let kind = kinds[prefix], kind != .directory { throw .refused(member: member, reason: "lies under a member that is not a directory") }
        }
        let bytes = Array(path.joined(separator: "/").utf8)
        switch entry.kind {
        case .symlink:
            guard !entry.linkName.isEmpty, entry.linkName.first != UInt8(ascii: "/") else {
                throw .refused(member: member, reason: "a symbolic link to an absolute path or to nothing")
            }
            let target = String(decoding: entry.linkName, as: UTF8.self).split(separator: "/", omittingEmptySubsequences: true).map(String.init)
            links[path] = target
            guard resolves(Array(path.dropLast()) + target) else {
                throw .refused(member: member, reason: "a symbolic link that leads out of the deployment")
            }
            kinds[path] = .symlink
            return .symlink(bytes, target: entry.linkName)
        case .hardLink:
            let target = try Self.components(entry.linkName, member: member)
            guard kinds[target] == .file else {
                throw .refused(member: member, reason: "a hard link to something that is not an earlier regular file of the archive")
            }
            kinds[path] = .file
            return .hardLink(bytes, target: Array(target.joined(separator: "/").utf8))
        case .directory:
            kinds[path] = .directory
            return .directory(bytes, mode: entry.mode, modificationTime: entry.modificationTime)
        default:
            kinds[path] = .file
            return .file(bytes, mode: entry.mode, modificationTime: entry.modificationTime)
        }
    }

    /// Whether a path stays inside the deployment, `..` and the archive's links followed.
    func resolves(_ start: [String]) -> Bool {
        var pending = start[...]
        var resolved: [String] = []
        var hops = 0
        while let part = pending.first {
            pending = pending.dropFirst()
            if part == "." { continue }
            if part == ".." {
                guard !resolved.isEmpty else { return false }
                resolved.removeLast()
                continue
            }
            resolved.append(part)
            if let target = links[resolved] {
                hops += 1
                guard hops <= 40 else { return false }
                resolved.removeLast()
                pending = (target + pending)[...]
            }
        }
        return true
    }
}

extension GearDeploy {
    /// `gear binary-deploy`: a gzip tar on `input` (what `gear archive-deployment` writes)
    /// becomes a new deployment, activated without a build. The whole archive is checked and
    /// staged before anything that serves changes.
    public func binaryDeploy(input: Int32, hotDeploy: Bool) throws(InGearError) {
        guard deploymentType == "binary" else {
            throw .precondition("OPENSHIFT_DEPLOYMENT_TYPE is '\(deploymentType)' - binary deployments are disabled.")
        }
        try withDeployLock { () throws(InGearError) in
            say("Starting deploy for binary artifact")
            let staging = try StagingTree(root: store.root + "/.incoming.\(getpid()).\(UInt32.random(in: 0...UInt32.max))")
            defer { staging.remove() }
            var policy = DeploymentArchivePolicy()
            try GearRestore.stage(input: input, into: staging, policy: &policy, limits: TarLimits())
            say("Creating new deployment directory")
            var metadata = DeploymentMetadata()
            metadata.gitRef = deploymentBranch
            metadata.hotDeploy = hotDeploy
            metadata.forceCleanBuild = false
            let (datetime, id) = try store.create(metadata)
            do throws(InGearError) {
                for part in DeploymentStore.parts where access(staging.root + "/" + part, F_OK) == 0 {
                    let destination = store.path(datetime) + "/" + part
                    guard rmdir(destination) == 0, rename(staging.root + "/" + part, destination) == 0 else {
                        throw .system(SystemError(step: "rename", path: destination, errno: errno))
                    }
                }
                try staging.applyDirectoryAttributes(under: store.path(datetime))
                say("Deployment id is \(id)")
                try activate(datetime, hotDeploy: hotDeploy, initial: false)
            } catch {
                say("Deployment \(id) failed; it stays in app-deployments/\(datetime) for inspection.")
                store.prune(keep: keepDeployments, sparing: [datetime])
                throw error
            }
            store.prune(keep: keepDeployments)
            say("Deployment status: success")
        }
    }

    /// `gear archive-deployment`: the deployment (the current one, or `id`) as a gzip tar on
    /// stdout, without its metadata: what `gear binary-deploy` takes.
    public func archiveDeployment(id: String?) throws(InGearError) {
        let datetime: String
        if let id {
            guard let found = store.datetime(ofID: id) else { throw .precondition("Deployment id \(InGearError.quoted(id)) is invalid") }
            datetime = found
        } else {
            guard let current = store.current else { throw .precondition("this gear has no current deployment") }
            datetime = current
        }
        let (status, messages) = try ChildProcess.run(["/bin/tar", "-czf", "-", "--exclude=./metadata.json", "-C", store.path(datetime), "."],
                                                      output: 1)
        guard status == 0 else { throw .toolFailed(program: "tar -cz", status: status, output: messages) }
    }
}
