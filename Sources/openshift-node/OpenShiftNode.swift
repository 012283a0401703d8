import Agent
import ArgumentParser
import Cartridges
import FoundationEssentials
import MCollective
import Frontend
import Gears
import Logging
import NodeCLI
import NodeConfig
import NodeDaemon
import ServiceLifecycle
import Synchronization

@main
struct OpenShiftNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "openshift-node",
        abstract: "The OpenShift node host daemon.",
        discussion: """
            `openshift-node run` rescans CARTRIDGE_BASE_PATH into the cartridge repository at start, \
            on SIGHUP, and by itself when the directory changes, and runs until SIGTERM or SIGINT.
            Sandbox mode (no root needed): openshift-node run --root /tmp/node --cartridge-base-path ./cartridges
            """,
        subcommands: [Run.self, Rescan.self, ConfigSample.self, ApacheConfig.self, SSHDConfig.self, DDL.self],
        defaultSubcommand: Run.self
    )
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon (the default).")

    @OptionGroup var node: NodeOptions

    @Flag(name: .customLong("no-watch"), help: "Do not watch CARTRIDGE_BASE_PATH (rescan at start and on SIGHUP only).")
    var noWatch = false

    @Flag(name: .customLong("no-wake"), help: "Do not serve FRONTEND_WAKE_PORT (idle gears then answer 503).")
    var noWake = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: Logger.Level = .info

    func run() async throws {
        // First, so that nothing the daemon starts inherits systemd's socket.
        let systemd = SystemdNotifier.fromEnvironment()
        NodeLogging.bootstrap(level: logLevel)
        let logger = Logger(label: "openshift.node")
        let layout: PathLayout
        do {
            layout = try node.layout()
        } catch let failure as CommandFailure {
            printError(failure.message)
            throw ExitCode(failure.exitCode)
        }
        // Before any service runs, so before anything can spawn a process that would inherit them.
        let marked = CloseOnExec.startEventLoops()
        logger.debug("descriptors marked close-on-exec at start", metadata: ["fds": "\(marked)"])
        let repository = CartridgeRepository.shared(for: layout, logger: Logger(label: "openshift.cartridges"))
        logger.notice("starting", metadata: [
            "mode": "\(layout.isSandbox ? "sandbox" : "node")",
            "repository": "\(repository.path)",
            "cartridge_base_path": "\(layout.cartridgeBasePath)",
        ])
        let wakePort = layout.configuration.integer("FRONTEND_WAKE_PORT")
        let transports = Set(layout.configuration.list("AGENT_TRANSPORTS"))
        let needsNode = (wakePort > 0 && !noWake) || !transports.isEmpty
        let node: NodeServices?
        do {
            node = needsNode ? try NodeServices(layout: layout) : nil
        } catch {
            logger.warning("gears, the frontend and the agent are off: \(error)")
            node = nil
        }
        if let frontend = node?.frontend { checkRoutes(frontend, logger: logger) }
        let wakes = node?.frontend != nil && wakePort > 0 && !noWake
        let listensLocally = node != nil && transports.contains("local")
        // Ready: the first rescan is done and every listener is bound (or given up on, and logged).
        let readiness = Readiness(parts: Set(["rescan"] + (wakes ? ["wake"] : []) + (listensLocally ? ["local-agent"] : [])))
        let status = DaemonStatus(gears: node?.gears)
        let (updates, updated) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let rescans = RescanService(repository: repository, logger: logger) { trigger, report in
            status.record(report, trigger: trigger)
            readiness.ready("rescan")
            updated.yield()
        }
        var services: [any Service] = [rescans, SignalService(rescans: rescans, logger: logger)]
        if layout.configuration.watchCartridgeBasePath && !noWatch {
            services.append(BasePathWatcher(
                basePath: layout.cartridgeBasePath,
                debounce: .milliseconds(layout.configuration.rescanDebounceMilliseconds),
                rescans: rescans, logger: logger))
        }
        if let node, wakes, let frontend = node.frontend {
            services.append(WakeService(port: UInt16(clamping: wakePort), gears: node.gears, frontend: frontend, logger: logger,
                                        settled: { readiness.ready("wake") }))
        }
        if let node, node.frontend != nil {
            services.append(LastAccessService(records: LastAccess(mapDirectory: layout.path("OPENSHIFT_HTTP_CONF_DIR"),
                                                                  directory: layout.path("LAST_ACCESS_DIR")), logger: logger))
        }
        if let node, !transports.isEmpty {
            services += try agentServices(node: node, layout: layout, transports: transports, logger: logger,
                                          localSettled: { readiness.ready("local-agent") })
        }
        // Last: the group stops services in reverse order, so STOPPING=1 goes out first.
        services.append(SystemdService(notifier: systemd, readiness: readiness, updates: updates, logger: logger,
                                       status: { status.text }))
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.notice("stopped")
    }
}

/// At start: the maps exist (a fresh Apache starts), every name a document holds is claimed, and
/// what the frontend serves is rebuilt from the documents wherever it drifted (a lost or emptied
/// map). A corrupt document is reported; its gear keeps what it is served now.
func checkRoutes(_ frontend: FrontendManager, logger: Logger) {
    do {
        let found = try frontend.reconcile(repair: true)
        for (uuid, error) in found.corrupt.sorted(by: { $0.key < $1.key }) {
            logger.error("the frontend document of gear \(uuid) cannot be read; its routes are left as served: \(error)")
        }
        for line in found.unclaimed { logger.notice("claimed the unclaimed name \(line)") }
        for line in found.conflicts { logger.error("\(line); not changed") }
        for line in found.drift { logger.warning("routes drifted from the documents: \(line)") }
    } catch {
        logger.error("the routes could not be checked against the documents: \(error)")
    }
}

/// The agent and its transports, as AGENT_TRANSPORTS and MCOLLECTIVE_CONFIG say.
func agentServices(node: NodeServices, layout: PathLayout, transports: Set<String>, logger: Logger,
                   localSettled: @escaping @Sendable () -> Void = {}) throws -> [any Service] {
    let configuration = layout.configuration
    var services: [any Service] = []
    var mcollective: ServerConfiguration?
    let serverConfig = layout.path("MCOLLECTIVE_CONFIG")
    if transports.contains("mcollective") {
        if let text = FileSystem.read(serverConfig) {
            do {
                mcollective = try ServerConfiguration.parse(text, file: serverConfig, environment: ProcessInfo.processInfo.environment,
                                                            defaultIdentity: NodeServices.hostName)
            } catch {
                printError("\(error)")
                throw ExitCode(2)
            }
        } else {
            logger.notice("mcollective transport off: \(serverConfig) does not exist")
        }
    }
    let identity = mcollective?.identity ?? NodeServices.hostName
    let pool = BlockingPool(size: configuration.integer("AGENT_MAX_CONCURRENT"))
    let agent = OpenShiftAgent(context: node.agentContext(identity: identity), pool: pool,
                               budgetSeconds: Double(configuration.integer("AGENT_ACTION_TIMEOUT")),
                               logger: Logger(label: "openshift.agent"))
    if transports.contains("local") {
        services.append(LocalAgentService(path: layout.path("AGENT_SOCKET"), handlers: [agent], logger: logger, settled: localSettled))
    }
    if let mcollective {
        let context = agent.context
        let processor = RequestProcessor(configuration: mcollective, agents: [agent], facts: {
            Dictionary(NodeFacts.compute(context).map { ($0.name, $0.value) }, uniquingKeysWith: { _, last in last })
        }, logger: Logger(label: "openshift.mcollective"))
        services.append(MCollectiveService(server: MCollectiveServer(processor: processor, maxInFlight: 64,
                                                                     logger: Logger(label: "openshift.mcollective"))))
    }
    return services
}

/// What the daemon tells systemd in `STATUS=`: the repository's entries and the node's gears,
/// as of the last rescan.
final class DaemonStatus: Sendable {
    private let gears: GearManager?
    private let current = Mutex("starting: first rescan")

    init(gears: GearManager?) { self.gears = gears }

    func record(_ report: RescanReport, trigger: RescanTrigger) {
        var text = "\(report.entryCount) cartridges in the repository"
        if let gears {
            let count = gears.allGears().count
            text += ", \(count) gear\(count == 1 ? "" : "s")"
        }
        text += "; last rescan (\(trigger.rawValue)): \(report.installed) installed, \(report.failed) failed"
        if report.basePathProblem != nil { text += ", base path unreadable" }
        current.withLock { $0 = text }
    }

    var text: String { current.withLock { $0 } }
}

/// Runs the MCollective connector as a service of the daemon.
struct MCollectiveService: Service {
    let server: MCollectiveServer
    func run() async throws {
        // The connector runs until cancelled; a graceful shutdown cancels it (it then
        // disconnects cleanly).
        await cancelWhenGracefulShutdown { await server.run() }
    }
}

struct DDL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ddl",
        abstract: "Print the openshift agent's DDL, the file mco clients need to call this node.",
        discussion: "With --install DIR, write DIR/mcollective/agent/openshift.ddl and the 'any' validator plugin that "
            + "MCollective 2.3+ clients need for the agent's :any inputs (DIR is a client's libdir).")

    @Option(help: "A client libdir to install the DDL and the any validator into.") var install: String?

    func run() throws {
        let ddl = DDLWriter.ddl(.openshift)
        guard let install else {
            print(ddl, terminator: "")
            return
        }
        let files = [
            "mcollective/agent/openshift.ddl": ddl,
            "mcollective/validator/any_validator.rb": DDLWriter.anyValidatorRuby,
            "mcollective/validator/any_validator.ddl": DDLWriter.anyValidatorDDL,
        ]
        for (relative, text) in files.sorted(by: { $0.key < $1.key }) {
            let path = install + "/" + relative
            try FileManager.default.createDirectory(atPath: String(path[..<path.lastIndex(of: "/")!]), withIntermediateDirectories: true)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            print(path)
        }
    }
}

struct Rescan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rescan CARTRIDGE_BASE_PATH into the repository once, print what happened, and exit.")

    @OptionGroup var node: NodeOptions

    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        try runReportingFailures {
            let repository = CartridgeRepository.shared(for: try node.layout())
            let report = repository.rescan()
            if json {
                printLine(Listing.json(RescanReportJSON(report)))
            } else {
                for line in RescanReportJSON(report).lines { printLine(line) }
            }
            if let problem = report.basePathProblem { throw CommandFailure(problem) }
            if report.failed > 0 { throw ExitCode(1) }
        }
    }
}

struct ConfigSample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config-sample", abstract: "Print node.conf.sample: every key the node reads, with its default.")

    func run() {
        print(NodeConfiguration.sampleText(), terminator: "")
    }
}

struct ApacheConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apache-config",
        abstract: "Print the Apache rules that route gears from the maps in OPENSHIFT_HTTP_CONF_DIR.",
        discussion: "Include the output in a VirtualHost of the system Apache (needs mod_rewrite, mod_proxy_http, mod_headers). "
            + "With --standalone PORT, print a whole configuration for a private Apache on 127.0.0.1:PORT.")

    @OptionGroup var node: NodeOptions
    @Option(help: "Print a complete configuration for a private Apache on this loopback port.") var standalone: Int?
    @Option(name: .customLong("ssl-port"), help: "With --standalone: also listen for HTTPS on this loopback port.") var sslPort: Int?
    @Option(name: .customLong("server-root"), help: "With --standalone: Apache's ServerRoot (pid, logs); default GEAR_BASE_DIR/.httpd.")
    var serverRoot: String?
    @Option(help: ArgumentHelp("Write the rules to this file (atomically, 0644) instead of printing them, and create the "
        + "map directory and any missing map (empty), so that Apache starts before the first gear exists.", valueName: "file"))
    var output: String?

    func run() throws {
        try runReportingFailures {
            let layout = try node.layout()
            let maps = layout.path("OPENSHIFT_HTTP_CONF_DIR")
            if let output {
                guard standalone == nil else { throw CommandFailure("--output writes the rules for the system Apache, not --standalone", exitCode: 2) }
                do {
                    try ApacheFrontend(directory: maps).prepareMaps()
                    try FileSystem.writeAtomically(absolute(output),
                                                   ApacheConfiguration.router(mapDirectory: maps, wakePort: layout.configuration.integer("FRONTEND_WAKE_PORT")))
                } catch {
                    throw CommandFailure("apache-config --output \(output): \(error)")
                }
            } else if let port = standalone {
                let root = serverRoot.map(absolute) ?? (layout.gearBaseDir + "/.httpd")
                do {
                    try ApacheFrontend(directory: maps).prepareMaps()
                    try FileSystem.makeDirectories(root)
                } catch {
                    throw CommandFailure("apache-config: \(error)")
                }
                print(ApacheConfiguration.standalone(serverRoot: root, listen: "127.0.0.1", port: port, mapDirectory: maps,
                                                     wakePort: layout.configuration.integer("FRONTEND_WAKE_PORT"), sslPort: sslPort,
                                                     user: getuid() == 0 ? "www-data" : nil), terminator: "")
            } else {
                print(ApacheConfiguration.router(mapDirectory: maps, wakePort: layout.configuration.integer("FRONTEND_WAKE_PORT")),
                      terminator: "")
            }
        }
    }
}

struct SSHDConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sshd-config",
        abstract: "Print the sshd settings that let users reach their gears (keys, Kerberos, the gear shell).",
        discussion: "Merge the output into /etc/ssh/sshd_config. With --standalone PORT --directory DIR, write a complete "
            + "private configuration and host key into DIR instead, for /usr/sbin/sshd -D -e -f DIR/sshd_config "
            + "(loopback only; the gear shell reads the node.conf in use, passed with SetEnv).")

    @OptionGroup var node: NodeOptions
    @Option(help: "Write a complete private configuration listening on 127.0.0.1 at this port.") var standalone: Int?
    @Option(help: "With --standalone: the directory to write sshd_config and the host key into.") var directory: String?

    func validate() throws {
        if standalone != nil && directory == nil { throw ValidationError("--standalone needs --directory DIR") }
        if standalone == nil && directory != nil { throw ValidationError("--directory is only for --standalone") }
    }

    func run() throws {
        try runReportingFailures {
            if let port = standalone, let directory {
                let file = try SSHDConfiguration.writeStandalone(port: port, directory: absolute(directory), nodeConf: node.configFile)
                printLine(file)
            } else {
                let layout = try node.layout()
                print(SSHDConfiguration.node(gearShell: layout.configuration.string("GEAR_SHELL")), terminator: "")
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
