import Cartridges
import Containment
import Frontend
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// A cartridge configured in a gear: `<home>/<name>/` with its ident in `env/OPENSHIFT_<SHORT>_IDENT`.
public struct GearCartridge: Sendable, Equatable {
    public var name: String
    public var directory: String
    public var ident: String
    public var shortName: String
    public var manifest: Manifest?
}

/// The outcome of a hook or control action: its output and exit status, never thrown away.
public struct HookOutput: Sendable, Equatable {
    public var output: String
    public var status: Int32
}

extension GearManager {
    // MARK: Cartridges in a gear

    public func cartridges(of gear: Gear) -> [GearCartridge] {
        let names = (FileSystem.entries(gear.home) ?? []).filter {
            !$0.hasPrefix(".") && $0 != "app-root" && $0 != "app-deployments" && $0 != "git"
        }
        return names.compactMap { name in
            let directory = gear.home + "/" + name
            var st = stat()
            guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
            let env = EnvDirectory(directory + "/env").read()
            guard let (key, ident) = env.first(where: { $0.key.hasPrefix("OPENSHIFT_") && $0.key.hasSuffix("_IDENT") }) else { return nil }
            let short = String(key.dropFirst("OPENSHIFT_".count).dropLast("_IDENT".count))
            let manifest = readSmallFile(directory + "/metadata/manifest.yml").flatMap {
                try? ManifestDocument.parse(yaml: $0, path: directory + "/metadata/manifest.yml")
            }
            let version = ident.split(separator: ":").dropFirst(2).first.map(String.init)
            let projected = manifest?.projections.first { $0.version.text == version } ?? manifest?.primary
            return GearCartridge(name: name, directory: directory, ident: ident, shortName: short, manifest: projected)
        }
    }

    func primaryCartridge(of gear: Gear) -> String? {
        EnvDirectory(gear.home + "/.env").value("OPENSHIFT_PRIMARY_CARTRIDGE_DIR").map {
            String($0.split(separator: "/").last ?? "")
        }
    }

    /// `python-3.11` or `python`: the cartridge's manifest from the repository, at its default
    /// (greatest) cartridge version; with no software version, the manifest's own `Version`.
    /// Vendor `redhat` is preferred when several vendors ship the same name.
    func resolve(_ token: String) throws(GearsError) -> Manifest {
        var name = token
        var version: String?
        if let dash = token.lastIndex(of: "-"), CartridgeVersion(String(token[token.index(after: dash)...])) != nil {
            name = String(token[..<dash])
            version = String(token[token.index(after: dash)...])
        }
        if let problem = ManifestDocument.nameProblem(name) {
            throw .invalidArgument(field: "cartridge", value: token, reason: problem)
        }
        let snapshot = repository.snapshot
        let vendors = snapshot.cartridges.keys.filter { $0.name == name }.map(\.vendor)
            .sorted { a, b in a == "redhat" || (b != "redhat" && a < b) }
        for vendor in vendors {
            if let version {
                if let manifest = try? snapshot.select(vendor: vendor, name: name, version: version) { return manifest }
                continue
            }
            guard let latest = snapshot.latestCartridgeVersion(vendor: vendor, name: name),
                  let versions = snapshot.cartridges[.init(vendor: vendor, name: name)] else { continue }
            let provided = versions.values.compactMap { $0[latest] }
            if let manifest = provided.first(where: { $0.version == $0.defaultVersion }) ?? provided.max(by: { $0.version < $1.version }) {
                return manifest
            }
        }
        throw .invalidArgument(field: "cartridge", value: token, reason: "not in the cartridge repository")
    }

    // MARK: Configure

    /// Adds a cartridge to a gear: copy from the repository, identity variables, endpoints,
    /// then `bin/setup` and `bin/install` as the gear. A failure removes everything it added.
    public func configure(_ uuid: String, cartridge token: String) throws(GearsError) -> HookOutput {
        try withLock("gear." + uuid) { () throws(GearsError) -> HookOutput in
            let gear = try self.gear(uuid)
            let manifest = try resolve(token)
            let target = gear.home + "/" + manifest.gearDirectory
            if access(target, F_OK) == 0 { throw .cartridgeAlreadyConfigured(gear: uuid, cartridge: manifest.name) }
            let gearEnv = EnvDirectory(gear.home + "/.env")
            var written: [String] = []
            var becamePrimary = false
            do throws(GearsError) {
                try cartridging { () throws(CartridgesError) in try repository.instantiate(manifest, into: target) }
                try ownTree(target, gear, writable: true)
                let cartEnv = EnvDirectory(target + "/env")
                if access(cartEnv.path, F_OK) != 0 { mkdir(cartEnv.path, 0o755) }
                try cartEnv.write("OPENSHIFT_\(manifest.shortName)_DIR", target + "/")
                try cartEnv.write("OPENSHIFT_\(manifest.shortName)_IDENT", manifest.ident)
                for path in [target + "/metadata/manifest.yml", cartEnv.path + "/OPENSHIFT_\(manifest.shortName)_DIR",
                             cartEnv.path + "/OPENSHIFT_\(manifest.shortName)_IDENT"] where access(path, F_OK) == 0 {
                    try containing { () throws(ContainmentError) in try plugin.own(path, by: gear.identity, writable: false) }
                }
                if gearEnv.value("OPENSHIFT_PRIMARY_CARTRIDGE_DIR") == nil {
                    try gearEnv.write("OPENSHIFT_PRIMARY_CARTRIDGE_DIR", target + "/")
                    becamePrimary = true
                }
                written = try createEndpoints(gear, manifest)
                try fail("gear.configure.before-hooks", gear)
                let configured = GearCartridge(name: manifest.gearDirectory, directory: target, ident: manifest.ident,
                                               shortName: manifest.shortName, manifest: manifest)
                var output = try renderTemplates(gear, configured)
                if manifest.isWebFramework { try deployTemplate(gear, from: target + "/template") }
                let before = topLevelEntries(gear)
                try unlock(gear, configured)
                do throws(GearsError) {
                    for hook in ["setup", "install"] {
                        let path = target + "/bin/" + hook
                        guard access(path, F_OK) == 0 else { continue }
                        let result = try runHook(gear, cartridge: configured, [path, "--version", manifest.version.text])
                        output += result.stdout
                        guard result.status == 0 else {
                            throw GearsError.hookFailed(gear: uuid, hook: "\(manifest.name) bin/\(hook)", status: result.status,
                                                        output: result.stdout + result.stderr)
                        }
                    }
                } catch {
                    try? lock(gear, configured)
                    throw error
                }
                try lock(gear, configured)
                let added = topLevelEntries(gear).subtracting(before).subtracting([manifest.gearDirectory])
                if !added.isEmpty {
                    for name in added { removeTreeQuietly(gear.home + "/" + name) }
                    throw GearsError.invalidArgument(field: "cartridge", value: manifest.name,
                                                     reason: "it created the following directories in the gear home directory: \(added.sorted().joined(separator: ", "))")
                }
                output += try connectFrontend(gear, manifest)
                logger.info("configured cartridge", metadata: ["gear.uuid": "\(uuid)", "cartridge": "\(manifest.ident)"])
                return HookOutput(output: output, status: 0)
            } catch {
                removeTreeQuietly(target)
                for name in written { gearEnv.remove(name) }
                if becamePrimary { gearEnv.remove("OPENSHIFT_PRIMARY_CARTRIDGE_DIR") }
                throw error
            }
        }
    }

    /// Allocates each distinct private IP name once (lowest free host of the gear's block) and
    /// writes the IP and port variables; returns the names written.
    func createEndpoints(_ gear: Gear, _ manifest: Manifest) throws(GearsError) -> [String] {
        let env = EnvDirectory(gear.home + "/.env")
        var current = env.read()
        var written: [String] = []
        for endpoint in manifest.endpoints {
            guard let ipName = endpoint.privateIPName, let portName = endpoint.privatePortName else { continue }
            if current[ipName] == nil {
                let used = Set(current.filter { $0.key.hasSuffix("_IP") || $0.key.contains("_IP") }.map(\.value))
                guard let ip = (1...127).lazy.compactMap({ GearAddress.ip(uid: gear.identity.uid, host: $0,
                                                                          wraparoundUID: self.configuration.integer("WRAPAROUND_UID"),
                                                                          wraparoundOffset: self.configuration.integer("IP_ADDRESS_WRAPAROUND_OFFSET")) })
                    .first(where: { !used.contains($0) })
                else { throw .invalidArgument(field: "endpoint", value: ipName, reason: "No IP was available in the gear's block") }
                try env.write(ipName, ip)
                current[ipName] = ip
                written.append(ipName)
            }
            if current[portName] == nil {
                try env.write(portName, "\(endpoint.privatePort)")
                current[portName] = "\(endpoint.privatePort)"
                written.append(portName)
            }
            if let wsName = endpoint.websocketPortName, let port = endpoint.websocketPort, current[wsName] == nil {
                try env.write(wsName, "\(port)")
                written.append(wsName)
            }
        }
        for name in written {
            try containing { () throws(ContainmentError) in try plugin.own(env.path + "/" + name, by: gear.identity, writable: false) }
        }
        return written
    }

    /// Renders the cartridge's `env/*.erb` into variables (the template is then removed); a
    /// template that cannot be rendered is kept and reported as a `CLIENT_ERROR:` line.
    func renderTemplates(_ gear: Gear, _ cartridge: GearCartridge) throws(GearsError) -> String {
        let envPath = cartridge.directory + "/env"
        let templates = (FileSystem.entries(envPath) ?? []).filter { $0.hasSuffix(".erb") }
        var messages = ""
        let environment = self.environment(gear, cartridge: cartridge)
        for template in templates.sorted() {
            let variable = String(template.dropLast(4))
            guard EnvDirectory.isValidName(variable), let text = readSmallFile(envPath + "/" + template) else { continue }
            do {
                let value = try Templates.render(text, environment: environment)
                try EnvDirectory(envPath).write(variable, value.hasSuffix("\n") ? String(value.dropLast()) : value)
                try containing { () throws(ContainmentError) in try plugin.own(envPath + "/" + variable, by: gear.identity, writable: true) }
                unlink(envPath + "/" + template)
            } catch {
                messages += "CLIENT_ERROR: cannot render \(cartridge.name)/env/\(template): \(error)\n"
            }
        }
        return messages
    }

    /// A web cartridge's `template/` becomes the application's first code when the repository
    /// directory is still empty. (The original also created a bare git repository from it; that
    /// comes with deployments.)
    func deployTemplate(_ gear: Gear, from template: String) throws(GearsError) {
        let repo = gear.home + "/app-root/runtime/repo"
        guard access(template, F_OK) == 0, FileSystem.entries(repo)?.isEmpty == true else { return }
        let result = try containing { () throws(ContainmentError) in
            try Spawner.run(["/bin/cp", "-a", template + "/.", repo + "/"], environment: ["PATH": "/usr/bin:/bin"], timeoutSeconds: 60)
        }
        guard result.status == 0 else { throw .io(step: "copy template into", path: repo, errno: EIO) }
        try ownTree(repo, gear, writable: true)
    }

    /// Connects the cartridge's endpoint mappings (target = its private IP and port plus the
    /// mapping's backend path). The root mapping belongs to the primary cartridge only.
    func connectFrontend(_ gear: Gear, _ manifest: Manifest) throws(GearsError) -> String {
        guard let frontend else { return "" }
        let env = EnvDirectory(gear.home + "/.env").read()
        let primary = env["OPENSHIFT_PRIMARY_CARTRIDGE_DIR"] == gear.home + "/" + manifest.gearDirectory + "/"
        var connections: [Connection] = []
        for endpoint in manifest.endpoints {
            guard let ipName = endpoint.privateIPName, let ip = env[ipName] else { continue }
            if !endpoint.protocols.contains(where: { $0 == "http" || $0 == "https" || $0 == "ws" }) { continue }
            for mapping in endpoint.mappings where !(mapping.frontend.isEmpty && !primary) {
                var options = Connection.Options()
                let flags = mapping.options
                options.websocket = flags?["websocket"]?.boolean ?? false
                options.gone = flags?["gone"]?.boolean ?? false
                options.forbidden = flags?["forbidden"]?.boolean ?? false
                options.noproxy = flags?["noproxy"]?.boolean ?? false
                options.health = flags?["health"]?.boolean ?? false
                options.sslToGear = (flags?["ssl_to_gear"]?.boolean ?? false) || (endpoint.protocols.contains("https") && !endpoint.protocols.contains("http"))
                options.protocols = endpoint.protocols
                connections.append(Connection(path: mapping.frontend, target: "\(ip):\(endpoint.privatePort)\(mapping.backend)", options: options))
            }
        }
        guard !connections.isEmpty else { return "" }
        let allowed = Set((1...127).compactMap { GearAddress.ip(uid: gear.identity.uid, host: $0,
                                                                 wraparoundUID: configuration.integer("WRAPAROUND_UID"),
                                                                 wraparoundOffset: configuration.integer("IP_ADDRESS_WRAPAROUND_OFFSET")) })
        try routing { () throws(FrontendError) in try frontend.connect(uuid: gear.uuid, connections, allowedIPs: allowed) }
        let fqdn = (try? frontend.frontend(gear.uuid))??.fqdn ?? ""
        return connections.filter { $0.path.isEmpty }.map { _ in "CLIENT_RESULT: routed http://\(fqdn)/\n" }.joined()
    }

    // MARK: Post-configure

    /// Runs `bin/post_install --version <v>` of a configured cartridge (the broker's
    /// `post-configure`, after every gear of the application is configured).
    public func postConfigure(_ uuid: String, cartridge token: String) throws(GearsError) -> HookOutput {
        try withLock("gear." + uuid) { () throws(GearsError) -> HookOutput in
            let gear = try self.gear(uuid)
            let cartridge = try configuredCartridge(gear, token)
            let path = cartridge.directory + "/bin/post_install"
            guard access(path, F_OK) == 0 else { return HookOutput(output: "", status: 0) }
            let version = cartridge.ident.split(separator: ":").dropFirst(2).first.map(String.init) ?? ""
            let result = try runHook(gear, cartridge: cartridge, [path, "--version", version])
            guard result.status == 0 else {
                throw GearsError.hookFailed(gear: uuid, hook: "\(cartridge.name) bin/post_install", status: result.status,
                                            output: result.stdout + result.stderr)
            }
            return HookOutput(output: result.stdout, status: 0)
        }
    }

    /// The configured cartridge named by `python` or `python-3.11`.
    func configuredCartridge(_ gear: Gear, _ token: String) throws(GearsError) -> GearCartridge {
        var name = token
        if let dash = token.lastIndex(of: "-"), CartridgeVersion(String(token[token.index(after: dash)...])) != nil {
            name = String(token[..<dash])
        }
        guard let cartridge = cartridges(of: gear).first(where: { $0.name == name.lowercased() }) else {
            throw .cartridgeNotFound(gear: gear.uuid, cartridge: token)
        }
        return cartridge
    }

    // MARK: Deconfigure

    public func deconfigure(_ uuid: String, cartridge token: String) throws(GearsError) -> HookOutput {
        try withLock("gear." + uuid) { () throws(GearsError) -> HookOutput in
            let gear = try self.gear(uuid)
            let cartridge = try configuredCartridge(gear, token)
            var output = ""
            var status: Int32 = 0
            for hook in [["control", "stop"], ["teardown"]] {
                let path = cartridge.directory + "/bin/" + hook[0]
                guard access(path, X_OK) == 0 else { continue }
                let result = try runHook(gear, cartridge: cartridge, [path] + hook.dropFirst())
                output += result.stdout
                if result.status != 0 {
                    status = result.status
                    output += "CLIENT_ERROR: \(hook.joined(separator: " ")) of \(cartridge.name) failed (exit \(result.status))\n"
                }
            }
            let env = EnvDirectory(gear.home + "/.env")
            for endpoint in cartridge.manifest?.endpoints ?? [] {
                for variable in [endpoint.privateIPName, endpoint.privatePortName, endpoint.websocketPortName].compactMap({ $0 }) {
                    env.remove(variable)
                }
            }
            if let manifest = cartridge.manifest, let frontend {
                let paths = manifest.endpoints.flatMap { $0.mappings.map(\.frontend) }
                if !paths.isEmpty { try routing { () throws(FrontendError) in try frontend.disconnect(uuid: uuid, paths: paths) } }
            }
            if primaryCartridge(of: gear) == cartridge.name { env.remove("OPENSHIFT_PRIMARY_CARTRIDGE_DIR") }
            removeTreeQuietly(cartridge.directory)
            return HookOutput(output: output, status: status)
        }
    }

    // MARK: Control

    public enum ControlAction: String, Sendable, CaseIterable {
        case start, stop, restart, status, tidy, reload
    }

    /// Runs `bin/control <action>` of every cartridge (secondaries first on start, the primary
    /// first on stop) and records the gear's state and stop lock as the original did.
    public func control(_ uuid: String, _ action: ControlAction, userInitiated: Bool = true) throws(GearsError) -> HookOutput {
        try withLock("gear." + uuid) { () throws(GearsError) -> HookOutput in
            let gear = try self.gear(uuid)
            if !userInitiated && hasStopLock(gear) && (action == .start || action == .restart) {
                return HookOutput(output: "Not starting gear \(uuid) because the application was explicitly stopped by the user\n", status: 0)
            }
            let primary = primaryCartridge(of: gear)
            var ordered = cartridges(of: gear)
            ordered.sort { a, b in (a.name == primary ? 1 : 0) < (b.name == primary ? 1 : 0) }
            if action == .stop { ordered.reverse() }
            var output = ""
            var status: Int32 = 0
            for cartridge in ordered {
                let path = cartridge.directory + "/bin/control"
                guard access(path, X_OK) == 0 else { continue }
                let result = try runHook(gear, cartridge: cartridge, [path, action.rawValue])
                output += result.stdout + result.stderr
                if result.status != 0 && action != .status {
                    status = result.status
                    output += "CLIENT_ERROR: Failed to execute: 'control \(action.rawValue)' for \(cartridge.directory)\n"
                }
            }
            switch action {
            case .start, .restart:
                if userInitiated { unlink(gear.home + "/" + stopLockName) }
                if status == 0, let frontend, (try? frontend.isIdle(uuid: uuid)) == true {
                    try routing { () throws(FrontendError) in try frontend.unidle(uuid: uuid) }
                }
                if status == 0 { try setState(gear, .started) }
            case .stop:
                if userInitiated {
                    try writeFileAtomically(gear.home + "/" + stopLockName, "", mode: 0o644)
                    try containing { () throws(ContainmentError) in try plugin.own(gear.home + "/" + stopLockName, by: gear.identity, writable: true) }
                }
                try setState(gear, .stopped)
            case .status, .tidy, .reload:
                break
            }
            if status != 0 { throw .hookFailed(gear: uuid, hook: "control \(action.rawValue)", status: status, output: output) }
            return HookOutput(output: output, status: status)
        }
    }

    /// Kills every process of the gear at once (`force-stop`), then records it stopped with a
    /// stop lock, as a user's stop does.
    public func forceStop(_ uuid: String) throws(GearsError) {
        try withLock("gear." + uuid) { () throws(GearsError) in
            let gear = try self.gear(uuid)
            try containing { () throws(ContainmentError) in try plugin.killProcesses(gear.identity) }
            try writeFileAtomically(gear.home + "/" + stopLockName, "", mode: 0o644)
            try containing { () throws(ContainmentError) in try plugin.own(gear.home + "/" + stopLockName, by: gear.identity, writable: true) }
            try setState(gear, .stopped)
        }
    }

    // MARK: Idle

    /// Stops the gear (with a stop lock, so boot-time starts skip it) and marks its routes idle.
    public func idle(_ uuid: String) throws(GearsError) {
        _ = try control(uuid, .stop)
        try routing { () throws(FrontendError) in try frontend?.idle(uuid: uuid) }
        try withLock("gear." + uuid) { () throws(GearsError) in try setState(try self.gear(uuid), .idle) }
    }

    /// Starts an idle gear as its user would; starting also clears the idle mark.
    public func unidle(_ uuid: String) throws(GearsError) -> HookOutput {
        try control(uuid, .start)
    }

    // MARK: Running hooks

    /// The environment a cartridge's hook sees: node defaults, the gear's `.env`, every
    /// cartridge's `env`, this cartridge's again, then user variables; PATH built from the
    /// cartridges' `*_PATH_ELEMENT`s.
    public func environment(_ gear: Gear, cartridge: GearCartridge?) -> [String: String] {
        var env: [String: String] = ["LANG": "C.UTF-8", "OPENSHIFT_CLOUD_DOMAIN": configuration.string("CLOUD_DOMAIN"),
                                     "OPENSHIFT_BROKER_HOST": configuration.string("BROKER_HOST")]
        env.merge(EnvDirectory(gear.home + "/.env").read()) { $1 }
        var pathElements: [String] = []
        for other in cartridges(of: gear) {
            let values = EnvDirectory(other.directory + "/env").read()
            env.merge(values) { $1 }
            pathElements += values.filter { $0.key.hasSuffix("_PATH_ELEMENT") && !$0.key.hasSuffix("_LD_LIBRARY_PATH_ELEMENT") }.map(\.value)
        }
        if let cartridge { env.merge(EnvDirectory(cartridge.directory + "/env").read()) { $1 } }
        let reserved: Set<String> = ["OPENSHIFT_PRIMARY_CARTRIDGE_DIR", "OPENSHIFT_NAMESPACE", "PATH", "IFS", "USER", "SHELL", "HOSTNAME", "LOGNAME"]
        for (name, value) in EnvDirectory(gear.home + "/.env/user_vars").read()
        where !reserved.contains(name) && !(name.hasPrefix("OPENSHIFT_") && name.hasSuffix("_IDENT")) {
            env[name] = value
        }
        env["PATH"] = (pathElements + ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]).joined(separator: ":")
        env["OPENSHIFT_GEAR_UUID"] = gear.uuid
        env["HOME"] = gear.home + "/"
        return env
    }

    func runHook(_ gear: Gear, cartridge: GearCartridge, _ argv: [String]) throws(GearsError) -> Spawner.Result {
        let result = try containing { () throws(ContainmentError) in
            try plugin.run(gear.identity, argv, environment: environment(gear, cartridge: cartridge),
                           directory: cartridge.directory, timeoutSeconds: hookTimeoutSeconds)
        }
        if result.timedOut {
            throw GearsError.hookFailed(gear: gear.uuid, hook: argv.joined(separator: " "), status: result.status,
                                        output: result.stdout + "\nexceeded the time limit of \(Int(hookTimeoutSeconds)) s")
        }
        return result
    }

    /// Gives a whole tree to the gear (or to root with the gear's group), links not followed.
    func ownTree(_ path: String, _ gear: Gear, writable: Bool) throws(GearsError) {
        try containing { () throws(ContainmentError) in try plugin.own(path, by: gear.identity, writable: writable) }
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        for name in FileSystem.entries(path) ?? [] { try ownTree(path + "/" + name, gear, writable: writable) }
    }
}

func removeTreeQuietly(_ path: String) { FileSystem.removeTree(path) }
