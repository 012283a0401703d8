import Access
import Containment
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Frontend
import Gears

/// The broker's `--option => value` arguments of one `cartridge_do` call or `execute_parallel` job.
struct CartridgeArgs: Sendable {
    var values: [String: AgentValue]

    /// A Hash from the broker, or (from `mco rpc ... args=TEXT`, which can only send Strings) a JSON object.
    init(_ value: AgentValue?) throws(CartridgeDoFailure) {
        var value = value
        if case .string(let text)? = value {
            guard let parsed = try? AgentValue.parse(json: text), case .hash = parsed else {
                throw CartridgeDoFailure(code: 2, message: "args must be a Hash, or a JSON object of --options, not '\(text.prefix(64))'")
            }
            value = parsed
        }
        var values: [String: AgentValue] = [:]
        switch value {
        case nil, .null?:
            break
        case .hash(let pairs)?:
            for pair in pairs { if let key = pair.key.string { values[key] = pair.value } }
        case let other?:
            throw CartridgeDoFailure(code: 2, message: "args must be a Hash of --options, not \(other.typeName)")
        }
        self.values = values
    }

    /// A String option; an empty one counts as absent, as in the original.
    func string(_ key: String) -> String? {
        switch values[key] {
        case .string(let s)? where !s.isEmpty: return s
        case .symbol(let s)?: return s
        case .int(let n)?: return String(n)
        default: return nil
        }
    }

    func bool(_ key: String) -> Bool {
        switch values[key] {
        case .bool(let b)?: return b
        case .string(let s)?: return s == "true"
        default: return false
        }
    }

    func strings(_ key: String) -> [String] {
        switch values[key] {
        case .array(let items)?: return items.compactMap(\.string)
        case .string(let s)?: return s.split(separator: " ").map(String.init)
        default: return []
        }
    }

    func require(_ key: String) throws(CartridgeDoFailure) -> String {
        guard let value = string(key) else { throw CartridgeDoFailure(code: 2, message: "missing argument \(key)") }
        return value
    }
}

/// An exit code and message for the broker.
struct CartridgeDoFailure: Error {
    var code: Int
    var message: String
}

/// The outcome of one sub-action: the original's `exitcode`, `output`, `addtl_params`.
struct CartridgeDoResult: Sendable {
    var exitcode: Int
    var output: String
    var addtlParams: AgentValue = .null
}

extension OpenShiftAgent {
    func cartridgeDo(_ inputs: Inputs) -> AgentReply {
        let result = runSubAction(inputs.string("action"), cartridge: inputs.string("cartridge"), args: inputs["args"])
        var reply = AgentReply(data: .symbols([
            "output": .string(result.output), "exitcode": .int(result.exitcode), "addtl_params": result.addtlParams,
        ]))
        if result.exitcode != 0 {
            reply.statuscode = 1
            reply.statusmsg = "cartridge_do_action failed \(result.exitcode). Output \(result.output)"
        }
        return reply
    }

    /// Runs one sub-action (cartridge_do or an execute_parallel job), with the original's codes:
    /// 127 for an action this node does not do, 129 for account/frontend failures, the hook's
    /// status for a failed hook, 1 for any other failure.
    func runSubAction(_ action: String, cartridge: String, args raw: AgentValue?) -> CartridgeDoResult {
        var result: CartridgeDoResult
        do {
            let args = try CartridgeArgs(raw)
            result = try subAction(action, cartridge: cartridge, args)
        } catch let failure as CartridgeDoFailure {
            result = CartridgeDoResult(exitcode: failure.code, output: failure.message)
        } catch let error as GearsError {
            result = Self.result(for: error)
        } catch let error as AccessError {
            if case .gears(let inner) = error { result = Self.result(for: inner) } else { result = CartridgeDoResult(exitcode: 1, output: error.description) }
        } catch let error as FrontendError {
            result = CartridgeDoResult(exitcode: 129, output: error.description)
        } catch {
            result = CartridgeDoResult(exitcode: 1, output: "\(error)")
        }
        if result.output.contains("Resource temporarily unavailable") {
            result.output += "\nCLIENT_MESSAGE: The gear ran out of processes or memory; stop it with rhc force-stop-app and start it again\n"
            result.exitcode = 222
        }
        return result
    }

    static func result(for error: GearsError) -> CartridgeDoResult {
        switch error {
        case let .hookFailed(_, _, status, output):
            return CartridgeDoResult(exitcode: Int(status == 0 ? 1 : status), output: output + (output.hasSuffix("\n") || output.isEmpty ? "" : "\n")
                                     + "CLIENT_ERROR: \(error)\n")
        case .containment: return CartridgeDoResult(exitcode: 129, output: error.description)
        case .frontend: return CartridgeDoResult(exitcode: 129, output: error.description)
        default: return CartridgeDoResult(exitcode: 1, output: error.description)
        }
    }

    func subAction(_ action: String, cartridge: String, _ args: CartridgeArgs) throws -> CartridgeDoResult {
        let gears = context.gears
        func uuid() throws(CartridgeDoFailure) -> String { try args.require("--with-container-uuid") }
        /// The cartridge token for the gear manager: name, or name-version.
        func cartridgeToken() -> String {
            let name = args.string("--cart-name") ?? cartridge
            if let version = args.string("--with-software-version"), !name.hasSuffix("-" + version) { return name + "-" + version }
            return name
        }
        func ok(_ output: String = "") -> CartridgeDoResult { CartridgeDoResult(exitcode: 0, output: output) }
        func clientResult(_ text: String) -> CartridgeDoResult { ok("\nCLIENT_RESULT: \(text)\n") }

        switch action {
        case "app-create":
            var uid: UInt32?
            if let text = args.string("--with-uid") {
                guard let value = UInt32(text) else { throw CartridgeDoFailure(code: 129, message: "invalid --with-uid '\(text)'") }
                uid = value
            }
            let gear = try gears.create(GearCreateRequest(
                uuid: try uuid(), uid: uid, appUUID: args.string("--with-app-uuid"), appName: args.string("--with-app-name") ?? "app",
                gearName: args.string("--with-container-name"), namespace: args.string("--with-namespace") ?? "ns"))
            return ok("Created gear \(gear.uuid) with uid \(gear.identity.uid)\n")
        case "app-destroy":
            let output = try gears.destroy(try uuid(), skipHooks: args.bool("--skip-hooks"))
            try context.keys.forget(try uuid())
            return ok(output)
        case "configure":
            let output = try gears.configure(try uuid(), cartridge: cartridgeToken(), templateURL: args.string("--with-template-git-url")).output
            var result = ok(output)
            result.addtlParams = deploymentsParameter(try uuid())
            return result
        case "deploy":
            if let artifact = args.string("--with-artifact-url"), !artifact.isEmpty {
                return CartridgeDoResult(exitcode: 127, output: "CLIENT_ERROR: deploys from an artifact URL are not supported by this node; "
                                         + "use gear binary-deploy over SSH with the archive on stdin")
            }
            let ref = args.string("--with-ref").flatMap { $0.isEmpty ? nil : $0 }
            let result = try gears.deploy(try uuid(), ref: ref, hotDeploy: args.bool("--with-hot-deploy"),
                                          forceCleanBuild: args.bool("--with-force-clean-build"))
            return CartridgeDoResult(exitcode: Int(result.status), output: result.output, addtlParams: deploymentsParameter(try uuid()))
        case "activate":
            let result = try gears.activate(try uuid(), deploymentID: try args.require("--with-deployment-id"))
            return CartridgeDoResult(exitcode: Int(result.status), output: result.output, addtlParams: deploymentsParameter(try uuid()))
        case "post-configure":
            var result = ok(try gears.postConfigure(try uuid(), cartridge: cartridgeToken()).output)
            result.addtlParams = deploymentsParameter(try uuid())
            return result
        case "deconfigure":
            return ok(try gears.deconfigure(try uuid(), cartridge: cartridgeToken()).output)
        case "start", "stop", "restart", "status", "tidy", "reload":
            return ok(try gears.control(try uuid(), GearManager.ControlAction(rawValue: action)!).output)
        case "force-stop":
            try gears.forceStop(try uuid())
            return ok()
        case "app-state-show":
            let gear = try gears.gear(try uuid())
            return clientResult(gears.state(gear).rawValue)
        case "frontend-idle":
            try gears.idle(try uuid())
            return ok()
        case "frontend-unidle":
            return ok(try gears.unidle(try uuid()).output)
        case "frontend-connect":
            let connections = try Self.connections(args.values["--with-path-target-options"])
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in
                try frontend.connect(uuid: gear.uuid, connections, allowedIPs: GearAddress.block(uid: gear.identity.uid, configuration: context.layout.configuration))
            }
            return ok()
        case "frontend-disconnect":
            let paths = args.strings("--with-paths")
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.disconnect(uuid: gear.uuid, paths: paths) }
            return ok()
        case "frontend-connections":
            let connections = try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.connections(uuid: gear.uuid) }
            let rows: [AgentValue] = connections.map { .array([.string($0.path), .string($0.target), Self.options($0.options)]) }
            return clientResult(AgentValue.array(rows).jsonText())
        case "frontend-check-idle":
            return clientResult(String(try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.isIdle(uuid: gear.uuid) }))
        case "add-alias", "remove-alias", "add-aliases", "remove-aliases":
            let names = action.hasSuffix("aliases") ? args.strings("--with-aliases") : [try args.require("--with-alias-name")]
            let adding = action.hasPrefix("add")
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in
                for name in names {
                    if adding { try frontend.addAlias(uuid: gear.uuid, name) } else { try frontend.removeAlias(uuid: gear.uuid, name) }
                }
            }
            return ok()
        case "aliases":
            let record = try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.frontend(gear.uuid) }
            return clientResult(AgentValue.array((record?.aliases ?? []).map(AgentValue.string)).jsonText())
        case "ssl-cert-add":
            let (chain, key, alias) = (try args.require("--with-ssl-cert"), try args.require("--with-priv-key"), try args.require("--with-alias-name"))
            let passphrase = args.string("--with-passphrase") ?? ""
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in
                try frontend.addSSLCert(uuid: gear.uuid, chain: chain, key: key, alias: alias, passphrase: passphrase)
            }
            return ok()
        case "ssl-cert-remove":
            let alias = try args.require("--with-alias-name")
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.removeSSLCert(uuid: gear.uuid, alias: alias) }
            return ok()
        case "frontend-backup", "frontend-to-hash":
            return clientResult(try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.backup(uuid: gear.uuid) })
        case "frontend-restore":
            let document = try args.require("--with-backup")
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in
                try frontend.restore(uuid: gear.uuid, appUUID: gear.appUUID, gearName: gear.gearName, namespace: gear.namespace,
                                     document: document, allowedIPs: GearAddress.block(uid: gear.identity.uid, configuration: context.layout.configuration))
            }
            return ok()
        case "frontend-sts", "frontend-no-sts":
            let maxAge = action == "frontend-sts" ? (args.string("--with-max-age").flatMap { Int($0) } ?? 15_768_000) : nil
            try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.sts(uuid: gear.uuid, maxAge: maxAge) }
            return ok()
        case "frontend-get-sts":
            let record = try gears.withFrontend(try uuid()) { (gear, frontend) throws(FrontendError) in try frontend.frontend(gear.uuid) }
            return clientResult(record?.sts.map(String.init) ?? "null")
        case "env-var-add", "env-var-remove":
            let key = try args.require("--with-key")
            guard EnvDirectory.isValidName(key) else { throw CartridgeDoFailure(code: 2, message: "invalid environment variable name '\(key)'") }
            do {
                try gears.setEnvironmentVariable(try uuid(), key, action == "env-var-add" ? args.string("--with-value") ?? "" : nil)
            } catch let GearsError.invalidArgument(field, value, reason) {
                throw CartridgeDoFailure(code: 2, message: "invalid \(field) '\(value)': \(reason)")
            }
            return ok()
        case "cartridge-list":
            return ok(context.repository.current().listing)
        case "authorized-ssh-key-add":
            // The original passed symbol keys here and wrote an empty key; this writes the key sent.
            let entry = KeyEntry(type: args.string("--with-ssh-key-type"), content: try args.require("--with-ssh-key"),
                                 comment: args.string("--with-ssh-key-comment"), login: args.string("--with-ssh-key-login"))
            try context.keys.add(try uuid(), [entry])
            return ok()
        case "authorized-ssh-key-remove":
            // The broker's option is --with-ssh-comment (sic); --with-ssh-key-comment is accepted too.
            let entry = KeyEntry(type: args.string("--with-ssh-key-type"), content: args.string("--with-ssh-key"),
                                 comment: args.string("--with-ssh-comment") ?? args.string("--with-ssh-key-comment"))
            try context.keys.remove(try uuid(), [entry])
            return ok()
        case "authorized-ssh-key-batch-add":
            try context.keys.add(try uuid(), try Self.keyEntries(args.values["--with-ssh-keys"], bodyField: "content"))
            return ok()
        case "authorized-ssh-key-batch-remove":
            try context.keys.remove(try uuid(), try Self.keyEntries(args.values["--with-ssh-keys"], bodyField: "content"))
            return ok()
        case "authorized-ssh-keys-replace":
            // Absent means the empty set, as the original's default `[]`: the broker sends the full set.
            let value = args.values["--with-ssh-keys"]
            var entries: [KeyEntry] = []
            if let value, value != .null { entries = try Self.keyEntries(value, bodyField: "key") }
            try context.keys.replace(try uuid(), entries)
            return ok()
        case "broker-auth-key-add":
            try gears.setBrokerAuth(try uuid(), iv: try args.require("--with-iv"), token: try args.require("--with-token"))
            return ok()
        case "broker-auth-key-remove":
            try gears.setBrokerAuth(try uuid(), iv: nil, token: nil)
            return ok()
        case "user-var-add":
            let variables = try Self.userVariables(args.string("--with-variables"))
            let otherGears = args.string("--with-gears") ?? ""
            if variables.isEmpty && otherGears.isEmpty { return CartridgeDoResult(exitcode: -1, output: "no variables given\n") }
            try gears.changeUserVariables(try uuid(), set: variables)
            return ok(otherGears.isEmpty ? "" : "CLIENT_MESSAGE: the variables were set on this gear only: pushing them to the app's other gears is not supported by this node\n")
        case "user-var-remove":
            let keys = args.strings("--with-keys")
            if keys.isEmpty { return CartridgeDoResult(exitcode: -1, output: "no variable names given\n") }
            try gears.changeUserVariables(try uuid(), remove: keys)
            return ok()
        case "user-var-list":
            var variables = try gears.userVariables(try uuid())
            let wanted = args.strings("--with-keys")
            if !wanted.isEmpty { variables = variables.filter { wanted.contains($0.key) } }
            return clientResult(AgentValue.strings(variables.mapValues(AgentValue.string)).jsonText())
        case "update-configuration":
            guard let config = args.values["--with-config"], case .hash = config else {
                throw CartridgeDoFailure(code: 2, message: "--with-config must be a Hash of auto_deploy, deployment_branch, keep_deployments, deployment_type")
            }
            var settings: [String: String] = [:]
            for key in ["auto_deploy", "deployment_branch", "keep_deployments", "deployment_type"] {
                guard let value = config[key], !value.isNull else { continue }
                switch value {
                case .bool(let b): settings[key] = String(b)
                case .int(let n): settings[key] = String(n)
                default: settings[key] = value.string ?? ""
                }
            }
            try gears.setDeploymentSettings(try uuid(), settings)
            return ok()
        default:
            return CartridgeDoResult(exitcode: 127, output: "Unsupported action: \(action) is not implemented by this node")
        }
    }

    /// `{"deployments": [...]}` for a reply (the original's `calculate_deployments`), or null
    /// when the gear has no deployments to report.
    /// The list comes from the gear (its `gear deployments --json`), so it is rebuilt here from
    /// the known fields and value types only, at most 1000 entries: a gear cannot put anything
    /// else into the broker's reply.
    func deploymentsParameter(_ uuid: String) -> AgentValue {
        guard let text = try? context.gears.deploymentsJSON(uuid), let list = try? AgentValue.parse(json: text),
              case .array(let items) = list, !items.isEmpty else { return .null }
        let kept: [AgentValue] = items.prefix(1000).compactMap { item in
            guard case .hash = item else { return nil }
            func text(_ key: String, limit: Int) -> AgentValue {
                guard let value = item[key]?.string, value.utf8.count <= limit else { return .null }
                return .string(value)
            }
            func flag(_ key: String) -> AgentValue { .bool(item[key]?.bool ?? false) }
            func number(_ value: AgentValue?) -> AgentValue? {
                switch value {
                case .float(let d)?: return .float(d)
                case .int(let n)?: return .float(Double(n))
                default: return nil
                }
            }
            let activations = (item["activations"]?.array ?? []).prefix(1000).compactMap(number)
            return .symbols(["id": text("id", limit: 8), "ref": text("ref", limit: 256), "sha1": text("sha1", limit: 40),
                             "force_clean_build": flag("force_clean_build"), "hot_deploy": flag("hot_deploy"),
                             "created_at": number(item["created_at"]) ?? .null, "activations": .array(activations), "active": flag("active")])
        }
        return kept.isEmpty ? .null : .symbols(["deployments": .array(kept)])
    }

    /// `--with-ssh-keys`: `[{"key", "type", "comment", "content", "login"}, ...]` (or that as JSON
    /// text, from `mco rpc`). The key body is `bodyField` ("content" for batch add/remove,
    /// "key" for replace, as the original read them), the other name as a fallback.
    static func keyEntries(_ value: AgentValue?, bodyField: String) throws(CartridgeDoFailure) -> [KeyEntry] {
        var value = value
        if case .string(let text)? = value { value = try? AgentValue.parse(json: text) }
        guard case .array(let entries)? = value else {
            throw CartridgeDoFailure(code: 2, message: "--with-ssh-keys must be an Array of {key, type, comment, content, login}")
        }
        let otherField = bodyField == "key" ? "content" : "key"
        return try entries.enumerated().map { (index, entry) throws(CartridgeDoFailure) -> KeyEntry in
            guard case .hash = entry else {
                throw CartridgeDoFailure(code: 2, message: "--with-ssh-keys entry \(index + 1) must be a Hash, not \(entry.typeName)")
            }
            // An empty field counts as absent, as the single-key options do.
            func field(_ name: String) -> String? {
                switch entry[name] {
                case .string(let s)? where !s.isEmpty: return s
                case .symbol(let s)? where !s.isEmpty: return s
                default: return nil
                }
            }
            return KeyEntry(type: field("type"), content: field(bodyField) ?? field(otherField), comment: field("comment"), login: field("login"))
        }
    }

    /// `--with-variables`: JSON text `[{"name": ..., "value": ...}, ...]`.
    static func userVariables(_ text: String?) throws(CartridgeDoFailure) -> [String: String] {
        guard let text, !text.isEmpty else { return [:] }
        guard let parsed = try? AgentValue.parse(json: text), case .array(let entries) = parsed else {
            throw CartridgeDoFailure(code: 2, message: "--with-variables must be JSON: [{\"name\": ..., \"value\": ...}]")
        }
        var variables: [String: String] = [:]
        for entry in entries {
            guard let name = entry["name"]?.string, let value = entry["value"]?.string else {
                throw CartridgeDoFailure(code: 2, message: "a variable needs a name and a value: \(entry)")
            }
            variables[name] = value
        }
        return variables
    }

    /// `[[path, "ip:port", {options}], ...]` as the broker sends `--with-path-target-options`.
    static func connections(_ value: AgentValue?) throws(CartridgeDoFailure) -> [Connection] {
        guard case .array(let rows)? = value else {
            throw CartridgeDoFailure(code: 2, message: "--with-path-target-options must be an Array of [path, target, options]")
        }
        var connections: [Connection] = []
        for row in rows {
            guard case .array(let fields) = row, fields.count >= 2, let path = fields[0].string, let target = fields[1].string else {
                throw CartridgeDoFailure(code: 2, message: "a connection must be [path, target, options], not \(row)")
            }
            var options = Connection.Options()
            for pair in (fields.count > 2 ? fields[2].pairs : nil) ?? [] {
                let name = pair.key.string ?? ""
                if name == "protocols" {
                    options.protocols = pair.value.array?.compactMap(\.string) ?? options.protocols
                } else {
                    options.set(name, pair.value.bool ?? (pair.value.string == "true"))
                }
            }
            connections.append(Connection(path: path, target: target, options: options))
        }
        return connections
    }

    static func options(_ options: Connection.Options) -> AgentValue {
        var pairs: [AgentValue.Pair] = Connection.Options.flagNames.filter(options.isSet).map { .init(.string($0), .bool(true)) }
        pairs.append(.init(.string("protocols"), .array(options.protocols.map(AgentValue.string))))
        return .hash(pairs)
    }
}
