import ArgumentParser
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import NodeCLI

/// `oo-accept-node`: the node's self-check, for admins and monitoring. Prints `PASS`, or one
/// `FAIL: <what is wrong>: <what to do>` line per problem; changes nothing.
@main
struct AcceptNode: NodeTool {
    static let configuration = CommandConfiguration(
        commandName: "oo-accept-node",
        abstract: "Check that this node is fit to run gears: configuration, directories, gears, accounts, routes, cartridges, Apache, MCollective.",
        discussion: """
            Prints PASS and exits 0 when every check passes; otherwise one line per problem, \
            FAIL: <what is wrong>: <what to do>, and exits 1. WARN: lines do not fail. Nothing is changed.
            """)

    @Flag(name: .shortAndLong, help: "Print each check's name as it runs, and what it found (INFO: lines).") var verbose = false
    @Flag(help: "Print one JSON object for monitoring: {\"status\", \"failures\", \"warnings\", \"notes\"}.") var json = false
    @Option(name: .customLong("httpd-config"), help: ArgumentHelp(
        "The Apache configuration to test.",
        discussion: "Default: the system Apache's (/etc/apache2/apache2.conf); <root>/httpd.conf in sandbox mode.",
        valueName: "file"))
    var httpdConfig: String?
    @Option(name: [.customShort("t"), .long], help: "Seconds to wait for an MCollective broker to accept a connection.") var timeout: Double = 5
    @OptionGroup var node: NodeOptions

    func validate() throws {
        guard timeout > 0, timeout <= 600 else { throw ValidationError("--timeout must be from 0 to 600 seconds, not \(timeout)") }
    }

    func run() throws {
        NodeLogging.bootstrap(level: .warning)
        var report = AcceptanceReport()
        let progress = { (check: String, finding: Finding?) in
            guard !json else { return }
            guard let finding else {
                if verbose { printLine("INFO: checking \(check)") }
                return
            }
            if finding.severity != .note || verbose { printLine(AcceptanceReport.line(finding)) }
        }
        progress(ConfigurationCheck.name, nil)
        let (findings, layout) = ConfigurationCheck.run(node)
        for finding in findings {
            report.entries.append(.init(check: ConfigurationCheck.name, finding: finding))
            progress(ConfigurationCheck.name, finding)
        }
        if let layout {
            let options = [("--root", node.root), ("--config", node.config), ("--cartridge-base-path", node.cartridgeBasePath)]
                .compactMap { name, value in value.map { [name, absolute($0)] } }.flatMap { $0 }
            let under = NodeUnderTest(layout: layout, commandOptions: options, httpdConfig: httpdConfig.map(absolute),
                                      brokerTimeout: timeout)
            Acceptance.run(under, into: &report, progress: progress)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let data = (try? encoder.encode(report.json)) ?? Data("{\"status\":\"FAIL\"}".utf8)
            printLine(String(decoding: data, as: UTF8.self))
        } else if report.passed {
            printLine("PASS")
        }
        if !report.passed { throw ExitCode(1) }
    }
}
