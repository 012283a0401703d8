import Agent
import ArgumentParser
import Dispatch
import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif
import Frontend
import Gears
import NodeCLI

/// `oo-devel-node`: run the broker's gear actions locally, with the broker's argument names.
@main
struct DevelNode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "oo-devel-node",
        abstract: "Run gear actions on this node as the broker would.",
        discussion: """
            Examples (sandbox):
              oo-devel-node app-create --with-container-uuid g1 --root /tmp/node
              oo-devel-node configure --with-container-uuid g1 --cart-name python-3.11 --root /tmp/node
              oo-devel-node start --with-container-uuid g1 --root /tmp/node
              oo-devel-node app-destroy --with-container-uuid g1 --root /tmp/node
            """,
        subcommands: [AppCreate.self, AppDestroy.self, Configure.self, PostConfigure.self, Deconfigure.self,
                      DeployCommand.self, ActivateCommand.self, DeploymentsCommand.self,
                      StartCommand.self, StopCommand.self, RestartCommand.self, StatusCommand.self, TidyCommand.self,
                      ForceStop.self,
                      FrontendConnect.self, FrontendDisconnect.self, FrontendConnections.self, AddAlias.self, RemoveAlias.self,
                      FrontendIdle.self, FrontendUnidle.self, FrontendCheckIdle.self, SSLCertAdd.self, SSLCertRemove.self,
                      FrontendBackup.self, FrontendRestore.self, AuthorizedSSHKeyAdd.self, AuthorizedSSHKeyRemove.self,
                      AuthorizedSSHKeyBatchAdd.self, AuthorizedSSHKeyBatchRemove.self, AuthorizedSSHKeysReplace.self, AgentCall.self])
}

struct GearOptions: ParsableArguments {
    @Option(name: .customLong("with-container-uuid"), help: "The gear's uuid (its login name).")
    var uuid: String

    @OptionGroup var node: NodeOptions

    /// The uuid is checked before the command runs: nothing of the node (its directories, a lock,
    /// a record) is touched for a name that can never be a gear's.
    func validate() throws {
        try runReportingFailures {
            do { try GearManager.validate(uuid: uuid) } catch { throw CommandFailure(error) }
        }
    }
}

/// Prints the action's output; failures exit with the kind's code (hook failures: 157, as the
/// original's configure did for hook exit codes below 100).
func perform(_ options: GearOptions, _ body: (GearManager) throws -> String) throws {
    try runReportingFailures {
        let services = try NodeServices(layout: try options.node.layout())
        do {
            let output = try body(services.gears)
            if !output.isEmpty { printText(output.hasSuffix("\n") ? output : output + "\n") }
        } catch let error as GearsError {
            if case let .hookFailed(_, _, status, output) = error {
                printText(output.hasSuffix("\n") || output.isEmpty ? output : output + "\n")
                throw CommandFailure(error.description, exitCode: status < 100 ? 157 : status)
            }
            throw CommandFailure(error)
        }
    }
}

struct AppCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "app-create", abstract: "Create a gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-uid"), help: "The uid (default: the lowest free in GEAR_MIN_UID...GEAR_MAX_UID).") var uid: UInt32?
    @Option(name: .customLong("with-app-uuid")) var appUUID: String?
    @Option(name: .customLong("with-app-name")) var appName = "app"
    @Option(name: .customLong("with-container-name")) var gearName: String?
    @Option(name: .customLong("with-namespace")) var namespace = "ns"

    func run() throws {
        try perform(gear) { manager in
            let created = try manager.create(GearCreateRequest(uuid: gear.uuid, uid: uid, appUUID: appUUID, appName: appName,
                                                               gearName: gearName, namespace: namespace))
            return "CLIENT_RESULT: created gear \(created.uuid) with uid \(created.identity.uid)"
        }
    }
}

struct AppDestroy: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "app-destroy", abstract: "Destroy a gear and everything in it.")
    @OptionGroup var gear: GearOptions
    @Flag(name: .customLong("skip-hooks"), help: "Do not run the cartridges' teardown hooks.") var skipHooks = false

    func run() throws {
        try perform(gear) { manager in try manager.destroy(gear.uuid, skipHooks: skipHooks) }
        // What the gear had outside its home (a k5login in KRB5_CONFIG_FILE's k5login_directory).
        try performKeys(gear) { keys in try keys.forget(gear.uuid) }
    }
}

struct Configure: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Add a cartridge (name or name-version) to a gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("cart-name"), help: "e.g. python-3.11 or mock") var cartridge: String
    @Option(name: .customLong("with-template-git-url"), help: "The application's first code: a git URL (#ref), an absolute path, or 'empty'.")
    var templateURL: String?

    func run() throws {
        try perform(gear) { manager in try manager.configure(gear.uuid, cartridge: cartridge, templateURL: templateURL).output }
    }
}

/// Runs a deploy action as the gear; its output is printed and its failure is the exit status.
func performDeploy(_ options: GearOptions, _ body: (GearManager) throws -> HookOutput) throws {
    try perform(options) { manager in
        let result = try body(manager)
        if result.status != 0 { throw GearsError.hookFailed(gear: options.uuid, hook: "gear", status: result.status, output: result.output) }
        return result.output
    }
}

struct DeployCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deploy",
        abstract: "Build a ref (default: the deployment branch) in a new deployment and activate it, as the gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-ref")) var ref: String?
    @Flag(name: .customLong("with-hot-deploy")) var hotDeploy = false
    @Flag(name: .customLong("with-force-clean-build")) var forceCleanBuild = false

    func run() throws {
        try performDeploy(gear) { manager in try manager.deploy(gear.uuid, ref: ref, hotDeploy: hotDeploy, forceCleanBuild: forceCleanBuild) }
    }
}

struct ActivateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "activate", abstract: "Activate a kept deployment by id (a rollback), as the gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-deployment-id")) var id: String

    func run() throws {
        try performDeploy(gear) { manager in try manager.activate(gear.uuid, deploymentID: id) }
    }
}

struct DeploymentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deployments", abstract: "Print the gear's deployments as JSON (what the broker stores).")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try perform(gear) { manager in try manager.deploymentsJSON(gear.uuid) }
    }
}

struct PostConfigure: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "post-configure", abstract: "Run a configured cartridge's post_install hook.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("cart-name")) var cartridge: String

    func run() throws {
        try perform(gear) { manager in try manager.postConfigure(gear.uuid, cartridge: cartridge).output }
    }
}

struct Deconfigure: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove a cartridge from a gear (teardown, then delete).")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("cart-name")) var cartridge: String

    func run() throws {
        try perform(gear) { manager in try manager.deconfigure(gear.uuid, cartridge: cartridge).output }
    }
}

struct StartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a gear's cartridges.")
    @OptionGroup var control: ControlArguments
    func run() throws { try control.run(.start) }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Stop a gear's cartridges (and set the stop lock).")
    @OptionGroup var control: ControlArguments
    func run() throws { try control.run(.stop) }
}

struct RestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restart", abstract: "Restart a gear's cartridges.")
    @OptionGroup var control: ControlArguments
    func run() throws { try control.run(.restart) }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Report a gear's cartridges' status.")
    @OptionGroup var control: ControlArguments
    func run() throws { try control.run(.status) }
}

struct TidyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tidy", abstract: "Tidy a gear's cartridges.")
    @OptionGroup var control: ControlArguments
    func run() throws { try control.run(.tidy) }
}

struct ForceStop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "force-stop",
        abstract: "Kill every process of a gear at once (and set the stop lock).")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try perform(gear) { manager in
            try manager.forceStop(gear.uuid)
            return ""
        }
    }
}

struct ControlArguments: ParsableArguments {
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("cart-name"), help: "Accepted for compatibility; the action applies to the gear.") var cartridge: String?

    func run(_ action: GearManager.ControlAction) throws {
        try perform(gear) { manager in try manager.control(gear.uuid, action).output }
    }
}

// MARK: Frontend sub-actions

/// Runs a frontend action for the gear; the node must have a frontend configured.
func withFrontend(_ options: GearOptions, _ body: (FrontendManager, Gear) throws -> String) throws {
    try runReportingFailures {
        let services = try NodeServices(layout: try options.node.layout())
        guard let frontend = services.frontend else {
            throw CommandFailure("no frontend is configured (OPENSHIFT_FRONTEND_HTTP_PLUGINS is empty)", exitCode: 5)
        }
        do {
            let gear = try services.gears.gear(options.uuid)
            let output = try body(frontend, gear)
            if !output.isEmpty { printLine(output) }
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure(error)
        }
    }
}

struct FrontendConnect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-connect", abstract: "Route a path of the gear's host name to a target.")
    @OptionGroup var gear: GearOptions
    @Option(help: "\"\" for the root, or /segment...") var path = ""
    @Option(help: "ip:port[/path] in the gear's own range (or a path/URL with --option redirect|file).") var target: String
    @Option(name: .customLong("option"), help: "websocket, gone, forbidden, noproxy, health, redirect, file, tohttps, ssl_to_gear") var options: [String] = []

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            var flags = Connection.Options()
            for option in options where !flags.set(option) {
                throw CommandFailure("unknown option '\(option)'", exitCode: 2)
            }
            let allowed = GearAddress.block(uid: gear.identity.uid)
            try frontend.connect(uuid: gear.uuid, [Connection(path: path, target: target, options: flags)], allowedIPs: allowed)
            return ""
        }
    }
}

struct FrontendDisconnect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-disconnect", abstract: "Remove routes of the gear by path.")
    @OptionGroup var gear: GearOptions
    @Option(help: "A path to disconnect (repeat for several; \"\" is the root).") var path: [String] = [""]

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            try frontend.disconnect(uuid: gear.uuid, paths: path)
            return ""
        }
    }
}

struct FrontendConnections: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-connections", abstract: "Print the gear's routes as JSON.")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try withFrontend(gear) { frontend, gear in Listing.json(try frontend.frontend(gear.uuid)) }
    }
}

struct AddAlias: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-alias", abstract: "Serve the gear under another host name too.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-alias-name")) var alias: String

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            try frontend.addAlias(uuid: gear.uuid, alias)
            return ""
        }
    }
}

struct RemoveAlias: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remove-alias", abstract: "Stop serving the gear under an alias.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-alias-name")) var alias: String

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            try frontend.removeAlias(uuid: gear.uuid, alias)
            return ""
        }
    }
}

struct FrontendIdle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-idle", abstract: "Stop the gear and mark its routes idle.")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try perform(gear) { manager in
            try manager.idle(gear.uuid)
            return ""
        }
    }
}

struct FrontendUnidle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-unidle", abstract: "Start an idle gear and route to it again.")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try perform(gear) { manager in try manager.unidle(gear.uuid).output }
    }
}

struct FrontendCheckIdle: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-check-idle", abstract: "Print true when the gear is idle.")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try withFrontend(gear) { frontend, gear in "\(try frontend.isIdle(uuid: gear.uuid))" }
    }
}

struct SSLCertAdd: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ssl-cert-add", abstract: "Serve an alias over HTTPS with this certificate.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-alias-name")) var alias: String
    @Option(name: .customLong("with-ssl-cert"), help: "PEM file: the certificate, then its chain.") var certificate: String
    @Option(name: .customLong("with-priv-key"), help: "PEM file: the private key.") var key: String
    @Option(name: .customLong("with-passphrase-file"), help: "File holding the key's passphrase, if any.") var passphrase: String?

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            func read(_ path: String) throws -> String {
                guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
                    throw CommandFailure("cannot read \(path)", exitCode: 2)
                }
                return text
            }
            let pass = try passphrase.map(read)?.trimmed(while: \.isNewline) ?? ""
            try frontend.addSSLCert(uuid: gear.uuid, chain: try read(certificate), key: try read(key), alias: alias, passphrase: pass)
            return ""
        }
    }
}

struct SSLCertRemove: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ssl-cert-remove", abstract: "Stop serving an alias over HTTPS.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-alias-name")) var alias: String

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            try frontend.removeSSLCert(uuid: gear.uuid, alias: alias)
            return ""
        }
    }
}

struct FrontendBackup: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-backup", abstract: "Print the gear's routes as one JSON document.")
    @OptionGroup var gear: GearOptions

    func run() throws {
        try withFrontend(gear) { frontend, gear in try frontend.backup(uuid: gear.uuid) }
    }
}

struct FrontendRestore: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "frontend-restore", abstract: "Restore the gear's routes from a frontend-backup document.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-backup"), help: "The JSON document frontend-backup printed.") var document: String

    func run() throws {
        try withFrontend(gear) { frontend, gear in
            let allowed = GearAddress.block(uid: gear.identity.uid)
            try frontend.restore(uuid: gear.uuid, appUUID: gear.appUUID, gearName: gear.gearName, namespace: gear.namespace,
                                 document: document, allowedIPs: allowed)
            return ""
        }
    }
}

// MARK: Any agent action

struct AgentCall: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agent",
        abstract: "Call any action of the openshift agent, as the broker would (mco rpc style).",
        discussion: """
            Goes through the running daemon's local socket (AGENT_SOCKET) when it listens, otherwise runs \
            the action in this process. Prints the reply as JSON; exits 0 when statuscode is 0, else 1.
            Examples:
              oo-devel-node agent echo msg=hello --root /tmp/node
              oo-devel-node agent cartridge_repository action=list --root /tmp/node
              oo-devel-node agent cartridge_do action=app-create cartridge=mock 'args={"--with-container-uuid":"g1"}' --root /tmp/node
            """)

    @Argument(help: "The action, e.g. echo, cartridge_do, get_facts.") var action: String
    @Argument(help: "Inputs as key=value; :any inputs (args, facts) take JSON.") var inputs: [String] = []
    @Flag(name: .customLong("in-process"), help: "Do not use the daemon's socket even if it listens.") var inProcess = false
    @OptionGroup var node: NodeOptions

    func run() throws {
        try runReportingFailures {
            let layout = try node.layout()
            let data = try AgentClient.inputs(inputs, action: action)
            var reply: AgentReply?
            var route = AgentClient.Route.daemon
            if !inProcess { reply = AgentClient.viaSocket(layout.path("AGENT_SOCKET"), action: action, data: data) }
            if reply == nil {
                route = .inProcess
                let services = try NodeServices(layout: layout)
                let agent = OpenShiftAgent(context: services.agentContext(identity: NodeServices.hostName),
                                           pool: BlockingPool(size: 2),
                                           budgetSeconds: Double(layout.configuration.integer("AGENT_ACTION_TIMEOUT")))
                let request = AgentRequest(action: action, data: data)
                let box = ReplyBox()
                let done = DispatchSemaphore(value: 0)
                Task {
                    box.reply = await agent.handle(request)
                    done.signal()
                }
                done.wait()
                reply = box.reply
            }
            guard let reply else { throw CommandFailure("no reply", exitCode: 5) }
            printLine(AgentValue.symbols(["statuscode": .int(reply.statuscode), "statusmsg": .string(reply.statusmsg),
                                          "data": reply.data, "route": .string(route.rawValue)]).jsonText())
            if reply.statuscode != 0 { throw ExitCode(1) }
        }
    }
}

final class ReplyBox: @unchecked Sendable {
    var reply: AgentReply?
}
