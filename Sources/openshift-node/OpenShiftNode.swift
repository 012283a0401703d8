import ArgumentParser
import Cartridges
import Frontend
import Logging
import NodeCLI
import NodeConfig
import NodeDaemon
import ServiceLifecycle

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
        subcommands: [Run.self, Rescan.self, ConfigSample.self, ApacheConfig.self],
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
        NodeLogging.bootstrap(level: logLevel)
        let logger = Logger(label: "openshift.node")
        let layout: PathLayout
        do {
            layout = try node.layout()
        } catch let failure as CommandFailure {
            printError(failure.message)
            throw ExitCode(failure.exitCode)
        }
        let repository = CartridgeRepository.shared(for: layout, logger: Logger(label: "openshift.cartridges"))
        logger.notice("starting", metadata: [
            "mode": "\(layout.isSandbox ? "sandbox" : "node")",
            "repository": "\(repository.path)",
            "cartridge_base_path": "\(layout.cartridgeBasePath)",
        ])
        let rescans = RescanService(repository: repository, logger: logger)
        var services: [any Service] = [rescans, SignalService(rescans: rescans, logger: logger)]
        if layout.configuration.watchCartridgeBasePath && !noWatch {
            services.append(BasePathWatcher(
                basePath: layout.cartridgeBasePath,
                debounce: .milliseconds(layout.configuration.rescanDebounceMilliseconds),
                rescans: rescans, logger: logger))
        }
        let wakePort = layout.configuration.integer("FRONTEND_WAKE_PORT")
        if wakePort > 0 && !noWake {
            do {
                let node = try NodeServices(layout: layout)
                if let frontend = node.frontend {
                    services.append(WakeService(port: UInt16(clamping: wakePort), gears: node.gears, frontend: frontend, logger: logger))
                }
            } catch {
                logger.warning("idle gears will not be woken: \(error)")
            }
        }
        let group = ServiceGroup(configuration: .init(
            services: services.map { .init(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.notice("stopped")
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
            let repository = CartridgeRepository(configuration: .init(layout: try node.layout()))
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

    func run() throws {
        try runReportingFailures {
            let layout = try node.layout()
            let maps = layout.path("OPENSHIFT_HTTP_CONF_DIR")
            if let port = standalone {
                let root = layout.resolve("/var/lib/openshift/.httpd")
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

#if canImport(Glibc)
import Glibc
#endif
