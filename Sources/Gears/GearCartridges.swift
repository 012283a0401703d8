import Cartridges
import Containment
import Frontend
import NodeConfig

/// A cartridge configured in a gear: `<home>/<name>/`, with its manifest from the repository.
public struct GearCartridge: Sendable, Equatable {
    public var name: String
    public var directory: String
    public var ident: String
    public var shortName: String
    /// The repository's manifest of this version (never the gear's copy); nil if it was erased.
    public var manifest: Manifest?
}

/// The outcome of a hook or control action: its output and exit status, never thrown away.
public struct HookOutput: Sendable, Equatable {
    public var output: String
    public var status: Int32
}

extension GearManager {
    // MARK: Cartridges in a gear

    /// The configured cartridges of a gear, as its record has them.
    public func cartridges(of gear: Gear) -> [GearCartridge] {
        guard let record = try? records.read(gear.uuid) else { return [] }
        return cartridges(of: gear, record: record)
    }

    func cartridges(of gear: Gear, record: GearRecord) -> [GearCartridge] {
        record.cartridges.filter { $0.state == .configured }.map { cartridge(gear, $0) }
    }

    func cartridge(_ gear: Gear, _ entry: CartridgeRecord) -> GearCartridge {
        GearCartridge(name: entry.directory, directory: gear.home + "/" + entry.directory, ident: entry.ident,
                      shortName: entry.shortName, manifest: manifest(for: entry.ident))
    }

    /// The repository's manifest for `vendor:name:version:cartridge version`.
    func manifest(for ident: String) -> Manifest? {
        let parts = ident.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 4 else { return nil }
        return try? repository.snapshot.select(vendor: parts[0], name: parts[1], version: parts[2], cartridgeVersion: parts[3])
    }

    func primaryCartridge(of record: GearRecord) -> String? {
        record.cartridges.first { $0.variables.contains("OPENSHIFT_PRIMARY_CARTRIDGE_DIR") }?.directory
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
        let vendors = snapshot.keys.filter { $0.name == name }.map(\.vendor)
            .sorted { a, b in a == "redhat" || (b != "redhat" && a < b) }
        for vendor in vendors {
            if let version {
                if let manifest = try? snapshot.select(vendor: vendor, name: name, version: version) { return manifest }
                continue
            }
            guard let latest = snapshot.latestCartridgeVersion(vendor: vendor, name: name),
                  let versions = snapshot.versions(of: .init(vendor: vendor, name: name)) else { continue }
            let provided = versions.values.compactMap { $0[latest] }
            if let manifest = provided.first(where: { $0.version == $0.defaultVersion }) ?? provided.max(by: { $0.version < $1.version }) {
                return manifest
            }
        }
        throw .invalidArgument(field: "cartridge", value: token, reason: "not in the cartridge repository")
    }

    /// The cartridge directory a `python` or `python-3.11` token names.
    static func directoryName(_ token: String) -> String {
        var name = token
        if let dash = token.lastIndex(of: "-"), CartridgeVersion(String(token[token.index(after: dash)...])) != nil {
            name = String(token[..<dash])
        }
        return name.lowercased()
    }

    // MARK: Configure

    /// Adds a cartridge to a gear: copy from the repository, identity variables, endpoints,
    /// then `bin/setup` and `bin/install` as the gear. Journaled in the gear's record: a failure
    /// removes everything it added, and a configure killed at any point is undone by the next
    /// configure or deconfigure of that cartridge.
    public func configure(_ uuid: String, cartridge token: String, templateURL: String? = nil) throws(GearsError) -> HookOutput {
        try Self.validate(uuid: uuid)
        return try withGearLock(uuid) { () throws(GearsError) -> HookOutput in
            var record = try self.record(uuid)
            let gear = self.gear(from: record)
            let manifest = try resolve(token)
            let directory = manifest.gearDirectory
            if let existing = record.cartridges.first(where: { $0.directory == directory }) {
                if existing.state == .configured { throw .cartridgeAlreadyConfigured(gear: uuid, cartridge: manifest.name) }
                try undo(existing, of: gear, in: &record)
            }
            let home = try self.home(gear)
            let gearEnv = EnvDirectory(home, ".env")
            var current = gearEnv.read()
            var planned: [String] = []
            if primaryCartridge(of: record) == nil && current["OPENSHIFT_PRIMARY_CARTRIDGE_DIR"] == nil {
                planned.append("OPENSHIFT_PRIMARY_CARTRIDGE_DIR")
            }
            for endpoint in manifest.endpoints {
                for name in [endpoint.privateIPName, endpoint.privatePortName, endpoint.websocketPortName].compactMap({ $0 })
                where current[name] == nil && !planned.contains(name) { planned.append(name) }
            }
            let entry = CartridgeRecord(directory: directory, ident: manifest.ident, shortName: manifest.shortName, state: .configuring,
                                        variables: planned, frontendPaths: manifest.endpoints.flatMap { $0.mappings.map(\.frontend) })
            // The journal first: from here on, whatever this configure leaves can be found and removed.
            record.cartridges.append(entry)
            try records.write(record)
            do throws(GearsError) {
                try fail("gear.configure.journaled", uuid)
                if home.exists(directory) { try containing { () throws(ContainmentError) in try home.remove(directory) } }
                let source = try cartridging { () throws(CartridgesError) in try repository.sourceDirectory(of: manifest) }
                try instantiate(source, as: directory, in: home)
                let cartEnv = EnvDirectory(home, directory + "/env")
                try cartEnv.write("OPENSHIFT_\(manifest.shortName)_DIR", gear.home + "/" + directory + "/")
                try cartEnv.write("OPENSHIFT_\(manifest.shortName)_IDENT", manifest.ident)
                if planned.contains("OPENSHIFT_PRIMARY_CARTRIDGE_DIR") {
                    try gearEnv.write("OPENSHIFT_PRIMARY_CARTRIDGE_DIR", gear.home + "/" + directory + "/")
                }
                try createEndpoints(gear, manifest, env: gearEnv, current: &current)
                try fail("gear.configure.before-hooks", uuid)
                let configured = GearCartridge(name: directory, directory: gear.home + "/" + directory, ident: manifest.ident,
                                               shortName: manifest.shortName, manifest: manifest)
                var output = try renderTemplates(gear, configured, home: home)
                let managed = ManagedFiles(source: source, cartridgeDirectory: directory)
                try unlock(managed, in: home)
                do throws(GearsError) {
                    for hook in ["setup", "install"] where hookExists(gear, configured, hook) {
                        let result = try runHook(gear, cartridge: configured, [configured.directory + "/bin/" + hook, "--version", manifest.version.text])
                        output += result.stdout
                        guard result.status == 0 else {
                            throw GearsError.hookFailed(gear: uuid, hook: "\(manifest.name) bin/\(hook)", status: result.status,
                                                        output: result.stdout + result.stderr)
                        }
                    }
                } catch {
                    try? lock(managed, in: home)
                    throw error
                }
                try lock(managed, in: home)
                if manifest.isWebFramework {
                    output += try populateRepository(gear, configured, source: source, templateURL: templateURL, home: home)
                }
                output += try connectFrontend(gear, manifest, record: record, env: gearEnv)
                try fail("gear.configure.end", uuid)
                var done = record
                if let index = done.cartridges.firstIndex(where: { $0.directory == directory }) { done.cartridges[index].state = .configured }
                try records.write(done)
                logger.info("configured cartridge", metadata: ["gear.uuid": "\(uuid)", "cartridge": "\(manifest.ident)"])
                return HookOutput(output: output, status: 0)
            } catch {
                try? undo(entry, of: gear, in: &record)
                throw error
            }
        }
    }

    /// Copies the repository's cartridge into the gear: every top-level entry except `usr`,
    /// dot-files included, given to the gear; `usr` as a link to the repository's shared copy
    /// (why erase protects versions gears use); the manifest and identity files stay root's.
    func instantiate(_ source: String, as directory: String, in home: GearHome) throws(GearsError) {
        try containing { () throws(ContainmentError) in
            try home.makeDirectory(directory, mode: 0o755, owner: .gear)
            for entry in FileSystem.entries(source) ?? [] where entry != "usr" {
                try home.copyIn(from: source + "/" + entry, to: directory + "/" + entry, owner: .gear)
            }
            if FileSystem.entries(source + "/usr") != nil { try home.symlink(source + "/usr", at: directory + "/usr") }
            if !home.isDirectory(directory + "/env") { try home.makeDirectory(directory + "/env", mode: 0o755, owner: .gear) }
            try home.setOwner(directory + "/metadata/manifest.yml", .root)
        }
    }

    /// Allocates each distinct private IP name once (lowest free host of the gear's block) and
    /// writes the IP and port variables.
    func createEndpoints(_ gear: Gear, _ manifest: Manifest, env: EnvDirectory, current: inout [String: String]) throws(GearsError) {
        for endpoint in manifest.endpoints {
            guard let ipName = endpoint.privateIPName, let portName = endpoint.privatePortName else { continue }
            if current[ipName] == nil {
                let used = Set(current.filter { $0.key.contains("_IP") }.map(\.value))
                guard let ip = (1...127).lazy.compactMap({ GearAddress.ip(uid: gear.identity.uid, host: $0,
                                                                          wraparoundUID: self.configuration.integer("WRAPAROUND_UID"),
                                                                          wraparoundOffset: self.configuration.integer("IP_ADDRESS_WRAPAROUND_OFFSET")) })
                    .first(where: { !used.contains($0) })
                else { throw .invalidArgument(field: "endpoint", value: ipName, reason: "No IP was available in the gear's block") }
                try env.write(ipName, ip)
                current[ipName] = ip
            }
            if current[portName] == nil {
                try env.write(portName, "\(endpoint.privatePort)")
                current[portName] = "\(endpoint.privatePort)"
            }
            if let wsName = endpoint.websocketPortName, let port = endpoint.websocketPort, current[wsName] == nil {
                try env.write(wsName, "\(port)")
                current[wsName] = "\(port)"
            }
        }
    }

    /// Renders the cartridge's `env/*.erb` into variables (the template is then removed); a
    /// template that cannot be rendered is kept and reported as a `CLIENT_ERROR:` line.
    func renderTemplates(_ gear: Gear, _ cartridge: GearCartridge, home: GearHome) throws(GearsError) -> String {
        let envPath = cartridge.name + "/env"
        let templates = (home.entries(envPath) ?? []).filter { $0.hasSuffix(".erb") }
        var messages = ""
        let environment = self.environment(gear, cartridge: cartridge)
        for template in templates.sorted() {
            let variable = String(template.dropLast(4))
            guard EnvDirectory.isValidName(variable), let text = home.readText(envPath + "/" + template, limit: GearHome.environmentValueLimit)
            else { continue }
            do {
                let value = try Templates.render(text, environment: environment)
                try EnvDirectory(home, envPath, owner: .gear).write(variable, value.hasSuffix("\n") ? String(value.dropLast()) : value)
                try containing { () throws(ContainmentError) in try home.remove(envPath + "/" + template) }
            } catch {
                messages += "CLIENT_ERROR: cannot render \(cartridge.name)/env/\(template): \(error)\n"
            }
        }
        return messages
    }

    /// A web cartridge's `template/` (the repository's copy) becomes the application's first
    /// code when the repository directory is still empty. (The original also created a bare git
    /// repository from it; that comes with deployments.)
    func deployTemplate(from template: String, in home: GearHome) throws(GearsError) {
        let repo = "app-root/runtime/repo"
        guard let entries = FileSystem.entries(template), home.entries(repo)?.isEmpty == true else { return }
        try containing { () throws(ContainmentError) in
            for entry in entries { try home.copyIn(from: template + "/" + entry, to: repo + "/" + entry, owner: .gear) }
        }
    }

    /// Connects the cartridge's endpoint mappings (target = its private IP and port plus the
    /// mapping's backend path). The root mapping belongs to the primary cartridge only.
    func connectFrontend(_ gear: Gear, _ manifest: Manifest, record: GearRecord, env gearEnv: EnvDirectory) throws(GearsError) -> String {
        guard let frontend else { return "" }
        let env = gearEnv.read()
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
        try routing { () throws(FrontendError) in
            try frontend.connect(uuid: gear.uuid, connections, allowedIPs: GearAddress.block(uid: gear.identity.uid, configuration: configuration))
        }
        let fqdn = (try? frontend.frontend(gear.uuid))??.fqdn ?? ""
        return connections.filter { $0.path.isEmpty }.map { _ in "CLIENT_RESULT: routed http://\(fqdn)/\n" }.joined()
    }

    /// Removes what a configure (finished, interrupted or failed) added for `entry`: its
    /// variables, routes and directory, then its line in the record.
    func undo(_ entry: CartridgeRecord, of gear: Gear, in record: inout GearRecord) throws(GearsError) {
        let home = try self.home(gear)
        let env = EnvDirectory(home, ".env")
        for name in entry.variables { try env.remove(name) }
        if let frontend, !entry.frontendPaths.isEmpty, (try? frontend.frontend(gear.uuid)) != nil {
            try routing { () throws(FrontendError) in try frontend.disconnect(uuid: gear.uuid, paths: entry.frontendPaths) }
        }
        try containing { () throws(ContainmentError) in try home.remove(entry.directory) }
        record.cartridges.removeAll { $0.directory == entry.directory }
        try records.write(record)
    }

    // MARK: Post-configure

    /// Runs `bin/post_install --version <v>` of a configured cartridge (the broker's
    /// `post-configure`, after every gear of the application is configured).
    public func postConfigure(_ uuid: String, cartridge token: String) throws(GearsError) -> HookOutput {
        try Self.validate(uuid: uuid)
        return try withGearLock(uuid) { () throws(GearsError) -> HookOutput in
            let record = try self.record(uuid)
            let gear = self.gear(from: record)
            guard let entry = record.cartridges.first(where: { $0.directory == Self.directoryName(token) && $0.state == .configured }) else {
                throw .cartridgeNotFound(gear: uuid, cartridge: token)
            }
            let cartridge = self.cartridge(gear, entry)
            guard hookExists(gear, cartridge, "post_install") else { return HookOutput(output: "", status: 0) }
            let result = try runHook(gear, cartridge: cartridge, [cartridge.directory + "/bin/post_install", "--version", entry.version])
            guard result.status == 0 else {
                throw GearsError.hookFailed(gear: uuid, hook: "\(cartridge.name) bin/post_install", status: result.status,
                                            output: result.stdout + result.stderr)
            }
            return HookOutput(output: result.stdout, status: 0)
        }
    }

    // MARK: Deconfigure

    /// Stops the cartridge and runs its teardown, then removes everything configure added. A
    /// cartridge whose configure or deconfigure was interrupted is removed without its hooks.
    public func deconfigure(_ uuid: String, cartridge token: String) throws(GearsError) -> HookOutput {
        try Self.validate(uuid: uuid)
        return try withGearLock(uuid) { () throws(GearsError) -> HookOutput in
            var record = try self.record(uuid)
            let gear = self.gear(from: record)
            guard var entry = record.cartridges.first(where: { $0.directory == Self.directoryName(token) }) else {
                throw .cartridgeNotFound(gear: uuid, cartridge: token)
            }
            var output = ""
            var status: Int32 = 0
            if entry.state == .configured {
                let cartridge = self.cartridge(gear, entry)
                for hook in [["control", "stop"], ["teardown"]] where hookExists(gear, cartridge, hook[0]) {
                    let result = try runHook(gear, cartridge: cartridge, [cartridge.directory + "/bin/" + hook[0]] + hook.dropFirst())
                    output += result.stdout
                    if result.status != 0 {
                        status = result.status
                        output += "CLIENT_ERROR: \(hook.joined(separator: " ")) of \(cartridge.name) failed (exit \(result.status))\n"
                    }
                }
                entry.state = .deconfiguring
                if let index = record.cartridges.firstIndex(where: { $0.directory == entry.directory }) { record.cartridges[index] = entry }
                try records.write(record)
            }
            try fail("gear.deconfigure.after-hooks", uuid)
            try undo(entry, of: gear, in: &record)
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
        try Self.validate(uuid: uuid)
        return try withGearLock(uuid) { () throws(GearsError) -> HookOutput in
            let record = try self.record(uuid)
            let gear = self.gear(from: record)
            let home = try self.home(gear)
            if !userInitiated && home.exists(stopLockName) && (action == .start || action == .restart) {
                return HookOutput(output: "Not starting gear \(uuid) because the application was explicitly stopped by the user\n", status: 0)
            }
            let primary = primaryCartridge(of: record)
            var ordered = cartridges(of: gear, record: record)
            ordered.sort { a, b in (a.name == primary ? 1 : 0) < (b.name == primary ? 1 : 0) }
            if action == .stop { ordered.reverse() }
            var output = ""
            var status: Int32 = 0
            for cartridge in ordered where hookExists(gear, cartridge, "control") {
                let result = try runHook(gear, cartridge: cartridge, [cartridge.directory + "/bin/control", action.rawValue])
                output += result.stdout + result.stderr
                if result.status != 0 && action != .status {
                    status = result.status
                    output += "CLIENT_ERROR: Failed to execute: 'control \(action.rawValue)' for \(cartridge.directory)\n"
                }
            }
            switch action {
            case .start, .restart:
                if userInitiated { try containing { () throws(ContainmentError) in try home.remove(stopLockName) } }
                if status == 0, let frontend, (try? frontend.isIdle(uuid: uuid)) == true {
                    try routing { () throws(FrontendError) in try frontend.unidle(uuid: uuid) }
                }
                if status == 0 { try setState(gear, .started, in: home) }
            case .stop:
                if userInitiated {
                    try containing { () throws(ContainmentError) in try home.write(stopLockName, "", mode: 0o644, owner: .gear) }
                }
                try setState(gear, .stopped, in: home)
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
        try withGear(uuid) { (gear: Gear) throws(GearsError) in
            try containing { () throws(ContainmentError) in try plugin.killProcesses(gear.identity) }
            let home = try self.home(gear)
            try containing { () throws(ContainmentError) in try home.write(stopLockName, "", mode: 0o644, owner: .gear) }
            try setState(gear, .stopped, in: home)
        }
    }

    // MARK: Idle

    /// Stops the gear (with a stop lock, so boot-time starts skip it) and marks its routes idle.
    public func idle(_ uuid: String) throws(GearsError) {
        _ = try control(uuid, .stop)
        try withGear(uuid) { (gear: Gear) throws(GearsError) in
            try routing { () throws(FrontendError) in try frontend?.idle(uuid: uuid) }
            try setState(gear, .idle)
        }
    }

    /// Starts an idle gear as its user would; starting also clears the idle mark.
    public func unidle(_ uuid: String) throws(GearsError) -> HookOutput {
        try control(uuid, .start)
    }

    // MARK: Running hooks

    /// The environment a cartridge's hook sees: node defaults, the gear's `.env`, every
    /// cartridge's `env`, this cartridge's again, then user variables that name nothing already
    /// set and nothing refused; PATH built from the cartridges' `*_PATH_ELEMENT`s. Everything read
    /// through the gear's home, bounded, never through a link.
    public func environment(_ gear: Gear, cartridge: GearCartridge?) -> [String: String] {
        var env: [String: String] = ["LANG": "C.UTF-8", "OPENSHIFT_CLOUD_DOMAIN": configuration.string("CLOUD_DOMAIN"),
                                     "OPENSHIFT_BROKER_HOST": configuration.string("BROKER_HOST")]
        guard let home = try? home(gear) else { return env }
        env.merge(EnvDirectory(home, ".env").read()) { $1 }
        var pathElements: [String] = []
        for other in cartridges(of: gear) {
            let values = EnvDirectory(home, other.name + "/env").read()
            env.merge(values) { $1 }
            pathElements += values.filter { $0.key.hasSuffix("_PATH_ELEMENT") && !$0.key.hasSuffix("_LD_LIBRARY_PATH_ELEMENT") }.map(\.value)
        }
        if let cartridge { env.merge(EnvDirectory(home, cartridge.name + "/env").read()) { $1 } }
        for (name, value) in EnvDirectory(home, ".env/user_vars").read() where env[name] == nil && VariablePolicy.userRefusal(name) == nil {
            env[name] = value
        }
        env["PATH"] = (pathElements + ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]).joined(separator: ":")
        env["OPENSHIFT_GEAR_UUID"] = gear.uuid
        env["HOME"] = gear.home + "/"
        return env
    }

    /// Whether the cartridge has the hook `bin/<name>` (an executable file, or a link the gear
    /// made: it runs as the gear either way).
    func hookExists(_ gear: Gear, _ cartridge: GearCartridge, _ name: String) -> Bool {
        guard let home = try? home(gear), let st = home.status(cartridge.name + "/bin/" + name) else { return false }
        let kind = st.st_mode & S_IFMT
        return kind == S_IFLNK || (kind == S_IFREG && st.st_mode & 0o111 != 0)
    }

    func runHook(_ gear: Gear, cartridge: GearCartridge, _ argv: [String]) throws(GearsError) -> Spawner.Result {
        let result = try containing { () throws(ContainmentError) in
            try plugin.run(gear.identity, argv, environment: environment(gear, cartridge: cartridge),
                           directory: cartridge.directory, timeoutSeconds: hookTimeoutSeconds)
        }
        if result.timedOut {
            throw GearsError.hookFailed(gear: gear.uuid, hook: argv.joined(separator: " "), status: result.status,
                                        output: result.stdout + "\nexceeded the time limit (or the request's time budget) of \(Int(hookTimeoutSeconds)) s")
        }
        return result
    }
}

#if canImport(Glibc)
import Glibc
#endif
