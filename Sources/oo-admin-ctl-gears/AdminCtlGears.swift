import ArgumentParser
import Foundation
import Frontend
import Gears
import NodeCLI

/// `oo-admin-ctl-gears`: list, inspect, start and stop the gears of this node.
@main
struct AdminCtlGears: ParsableCommand {
    enum Command: String, ExpressibleByArgument, CaseIterable {
        case list, status, start, stop, restart, idle, unidle, unused
    }

    static let configuration = CommandConfiguration(
        commandName: "oo-admin-ctl-gears",
        abstract: "List, inspect, start, stop and restart the gears of this node.",
        discussion: """
            Without UUIDs, start/stop/restart act on every gear and skip the ones a user stopped (stop lock), as \
            the node does at boot; with UUIDs they act on those gears and count as the user's own request. \
            Each gear prints [ OK ] or [ FAILED ]; any failure exits 254.
            `unused --for SECONDS` prints the running gears nobody requested through the frontend for that long \
            (or ever): the candidates for `idle`.
            """)

    @Argument(help: "list, status, start, stop, restart, idle, unidle or unused.") var command: Command
    @Option(name: .customLong("for"), help: "With unused: seconds without a request (default one day).") var unusedFor = 86_400
    @Argument(help: "Gear uuids (default: all gears).") var uuids: [String] = []
    @Flag(help: "Machine-readable output.") var json = false
    @OptionGroup var node: NodeOptions

    func run() throws {
        try runReportingFailures {
            let services = try NodeServices(layout: try node.layout())
            let manager = services.gears
            let explicit = !uuids.isEmpty
            let gears: [Gear]
            if explicit {
                gears = try uuids.map { uuid in
                    do { return try manager.gear(uuid) } catch { throw CommandFailure(error) }
                }
            } else {
                gears = manager.allGears()
            }
            switch command {
            case .list:
                if json { printLine(Listing.json(gears.map(\.uuid))) } else { gears.forEach { printLine($0.uuid) } }
            case .status:
                let statuses = gears.map(manager.status)
                if json {
                    printLine(Listing.json(statuses))
                } else {
                    for status in statuses {
                        printLine("\(status.uuid) uid=\(status.uid) state=\(status.state.rawValue)\(status.stopLock ? " stop_lock" : "") "
                            + "selinux=\(status.selinux) mcs=\(status.mcsLabel ?? "-") cartridges=\(status.cartridges.joined(separator: ","))")
                    }
                }
            case .unused:
                let records = LastAccess(mapDirectory: services.layout.path("OPENSHIFT_HTTP_CONF_DIR"),
                                         directory: services.layout.path("LAST_ACCESS_DIR"))
                do { try records.update() } catch { throw CommandFailure(error) }
                let cutoff = Int(Date().timeIntervalSince1970) - unusedFor
                let running = gears.filter { ![.idle, .stopped].contains(manager.state($0)) }
                let unused = running.filter { (records.lastAccess($0.uuid) ?? 0) < cutoff }
                if json {
                    printLine(Listing.json(unused.map { ["uuid": $0.uuid, "last_access": records.lastAccess($0.uuid).map(String.init) ?? "never"] }))
                } else {
                    for gear in unused { printLine("\(gear.uuid) last_access=\(records.lastAccess(gear.uuid).map(String.init) ?? "never")") }
                }
            case .idle, .unidle:
                guard explicit else { throw CommandFailure("\(command.rawValue) needs the gears' uuids", exitCode: 2) }
                var failed = false
                for gear in gears {
                    do {
                        if command == .idle { try manager.idle(gear.uuid) } else { _ = try manager.unidle(gear.uuid) }
                        printLine("[ OK ] \(command.rawValue) \(gear.uuid)")
                    } catch {
                        failed = true
                        printLine("[ FAILED ] \(command.rawValue) \(gear.uuid): \(error)")
                    }
                }
                if failed { throw ExitCode(254) }
            case .start, .stop, .restart:
                let action = GearManager.ControlAction(rawValue: command.rawValue)!
                var failed = false
                var results: [[String: String]] = []
                for gear in gears {
                    do {
                        let output = try manager.control(gear.uuid, action, userInitiated: explicit)
                        results.append(["uuid": gear.uuid, "result": "ok", "output": output.output])
                        if !json { printLine("[ OK ] \(command.rawValue) \(gear.uuid)") }
                    } catch {
                        failed = true
                        results.append(["uuid": gear.uuid, "result": "failed", "error": "\(error)"])
                        if !json { printLine("[ FAILED ] \(command.rawValue) \(gear.uuid): \(error)") }
                    }
                }
                if json { printLine(Listing.json(results)) }
                if failed { throw ExitCode(254) }
            }
        }
    }
}
