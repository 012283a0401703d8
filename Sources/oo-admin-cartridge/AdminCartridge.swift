import Agent
import ArgumentParser
import Cartridges
import Gears
import NodeCLI
import NodeConfig

/// `oo-admin-cartridge`: install, erase, list and rescan the node's cartridge repository.
@main
struct AdminCartridge: NodeTool {
    enum Action: String, ExpressibleByArgument, CaseIterable {
        case install, erase, list, rescan
    }

    static let configuration = CommandConfiguration(
        commandName: "oo-admin-cartridge",
        abstract: "Install, erase and list cartridges in the node's cartridge repository.",
        discussion: """
            Examples:
              oo-admin-cartridge --action install --recursive --source /usr/libexec/openshift/cartridges
              oo-admin-cartridge --action erase --name php --version 5.4 --cartridge_version 0.0.28
              oo-admin-cartridge --list
            Erasing a cartridge version erases every software version it provides. It is refused while a \
            gear uses it or CARTRIDGE_BASE_PATH ships it, unless --force is given.
            """)

    @Option(name: [.customShort("a"), .long], help: "install, erase, list or rescan.")
    var action: Action?

    @Flag(name: [.customShort("l"), .long], help: "List the repository (same as --action list).")
    var list = false

    @Option(name: [.customShort("s"), .long], help: ArgumentHelp("Cartridge source directory to install.", valueName: "dir"))
    var source: String?

    @Flag(name: [.customShort("R"), .long], help: "--source is a directory of cartridge directories.")
    var recursive = false

    @Option(name: [.customShort("o"), .customLong("cartridge_vendor"), .customLong("cartridge-vendor")],
            help: "Vendor of the cartridge to erase.")
    var cartridgeVendor = "redhat"

    @Option(name: [.customShort("n"), .long], help: "Name of the cartridge to erase.")
    var name: String?

    @Option(name: [.customShort("v"), .long], help: "Software version of the cartridge to erase (e.g. 5.4).")
    var version: String?

    @Option(name: [.customShort("c"), .customLong("cartridge_version"), .customLong("cartridge-version")],
            help: "Cartridge version to erase (e.g. 0.0.28).")
    var cartridgeVersion: String?

    @Flag(name: [.customShort("f"), .long], help: "Erase even if a gear uses it or CARTRIDGE_BASE_PATH ships it.")
    var force = false

    @Flag(help: "Machine-readable output.")
    var json = false

    @Flag(name: [.customShort("d"), .long], help: "Also report each cartridge installed.")
    var debug = false

    @Flag(help: .hidden) var offline = false

    @Flag(help: "Go through the running daemon's agent (its local socket, AGENT_SOCKET), as the original's --mco did.")
    var mco = false

    @OptionGroup var node: NodeOptions

    var effectiveAction: Action? { action ?? (list ? .list : nil) }

    func validate() throws {
        guard let action = effectiveAction else { throw ValidationError("--action is required (install, erase, list or rescan)") }
        switch action {
        case .install where source == nil:
            throw ValidationError("Missing arguments: --source")
        case .erase:
            let missing = [("--name", name), ("--version", version), ("--cartridge_version", cartridgeVersion)]
                .filter { $0.1 == nil }.map(\.0)
            if !missing.isEmpty { throw ValidationError("Missing arguments: \(missing.joined(separator: ", "))") }
        default:
            break
        }
    }

    func run() throws {
        try runReportingFailures {
            if mco { return try throughAgent(try node.layout()) }
            let layout = try node.layout()
            // The process's shared instance lives until exit: nothing is torn down after the output.
            let repository = CartridgeRepository.shared(for: layout)
            switch effectiveAction! {
            case .install: try install(repository)
            case .erase: try erase(repository, usage: RecordedCartridgeUsage(gearBaseDir: layout.gearBaseDir))
            case .list: try listRepository(repository)
            case .rescan: try rescan(repository)
            }
        }
    }

    private func install(_ repository: CartridgeRepository) throws {
        let root = absolute(source!)
        var directories = [root]
        if recursive {
            let entries = (try? FileSystemListing.directories(in: root)) ?? []
            directories = entries
            if entries.isEmpty {
                printError("Installation failed: Invalid or empty path to cartridge source: '\(root)'")
                throw CommandFailure("Operation failed: no cartridges were found.", exitCode: 1)
            }
        }
        var results: [RescanReportJSONItem] = []
        for directory in directories {
            do {
                let result = try repository.install(from: directory)
                let tuples = result.tuples
                results.append(.init(source: directory, status: result.changed ? "installed" : "unchanged", tuples: tuples))
                if debug && !json {
                    printLine("\(result.changed ? "Installed" : "Unchanged") \(tuples.joined(separator: " ")) from \(directory)")
                }
            } catch {
                results.append(.init(source: directory, status: "failed", error: "\(error)"))
                if !json { printError("Installation failed for \(directory): \(error)") }
            }
        }
        let failed = results.contains { $0.status == "failed" }
        if json {
            printLine(Listing.json(results))
        } else if !failed {
            printLine("Succeeded")
        }
        if failed { throw CommandFailure(json ? "" : "\nOperation failed: some cartridges cannot be installed\n", exitCode: 1) }
    }

    private func erase(_ repository: CartridgeRepository, usage: any CartridgeUsage) throws {
        let result = Result { () throws(CartridgesError) in
            try repository.erase(vendor: cartridgeVendor, name: name!, version: version!,
                                 cartridgeVersion: cartridgeVersion!, force: force, usage: usage)
        }
        switch result {
        case .success(let manifest):
            printLine(json ? Listing.json(["erased": manifest.tuple]) : "Succeeded")
        case .failure(let error):
            if case .notFound = error {
                throw CommandFailure("Requested cartridge does not exist: (\(error))", exitCode: error.kind.exitCode)
            }
            throw CommandFailure("Couldn't erase cartridge: (\(error))", exitCode: error.kind.exitCode)
        }
    }

    private func listRepository(_ repository: CartridgeRepository) throws {
        try AdminListing.print(repository, json: json)
    }

    private func rescan(_ repository: CartridgeRepository) throws {
        let report = repository.rescan()
        let rendered = RescanReportJSON(report)
        if json { printLine(Listing.json(rendered)) } else { rendered.lines.forEach(printLine) }
        if let problem = report.basePathProblem { throw CommandFailure(problem) }
        if report.failed > 0 { throw ExitCode(1) }
    }
}

extension AdminCartridge {
    /// The action as a `cartridge_repository` request to the daemon's agent.
    func throughAgent(_ layout: PathLayout) throws {
        let socket = layout.path("AGENT_SOCKET")
        var requests: [[String: String]] = []
        let action = effectiveAction!
        switch action {
        case .install:
            let root = absolute(source!)
            let directories = recursive ? ((try? FileSystemListing.directories(in: root)) ?? []) : [root]
            if directories.isEmpty { throw CommandFailure("Operation failed: no cartridges were found.", exitCode: 1) }
            requests = directories.map { ["action": "install", "path": $0] }
        case .erase:
            requests = [["action": "erase", "cartridge_vendor": cartridgeVendor, "name": name!, "version": version!,
                         "cartridge_version": cartridgeVersion!, "force": String(force)]]
        case .list, .rescan:
            requests = [["action": action.rawValue]]
        }
        var failed = false
        for request in requests {
            let data = AgentValue.hash(request.sorted { $0.key < $1.key }.map { .init(.symbol($0.key), .string($0.value)) })
            guard let reply = AgentClient.viaSocket(socket, action: "cartridge_repository", data: data) else {
                throw CommandFailure("--mco: no openshift-node daemon answers on \(socket)", exitCode: 5)
            }
            if reply.statuscode != 0 {
                failed = true
                printError(reply.statusmsg)
            }
            if let output = reply.data["output"]?.string, !output.isEmpty, action == .list || action == .rescan || debug {
                printText(output.hasSuffix("\n") ? output : output + "\n")
            }
        }
        if failed { throw ExitCode(1) }
        if action == .install || action == .erase { printLine("Succeeded") }
    }
}

struct RescanReportJSONItem: Encodable {
    var source: String
    var status: String
    var tuples: [String]?
    var error: String?
}
