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

/// `oo-admin-ctl-gears`: list, inspect, start and stop the gears of this node.
@main
struct AdminCtlGears: ParsableCommand {
    enum Command: String, ExpressibleByArgument, CaseIterable {
        case list, status, start, stop, restart, idle, unidle, unused, routes
        /// The original's bulk names (the boot unit uses them): every gear, stop locks respected.
        case startall, stopall, restartall
    }

    static let configuration = CommandConfiguration(
        commandName: "oo-admin-ctl-gears",
        abstract: "List, inspect, start, stop and restart the gears of this node.",
        discussion: """
            Without UUIDs, start/stop/restart act on every gear and skip the ones a user stopped (stop lock), as \
            the node does at boot; with UUIDs they act on those gears and count as the user's own request. \
            Each gear prints [ OK ] or [ FAILED ]; any failure exits 254. startall, stopall and restartall are \
            start, stop and restart of every gear (the boot unit openshift-gears.service runs them); \
            --processes gears are worked on at once.
            `unused --for SECONDS` prints the running gears nobody requested through the frontend for that long \
            (or ever): the candidates for `idle`.
            `routes` compares what the frontend serves (the Apache maps, the name claims) with the gears' frontend \
            documents and prints each drift and each unreadable document; it exits 1 when there is any. With \
            --repair it rebuilds the maps from the documents, atomically (the daemon does so at start).
            """)

    @Argument(help: "list, status, start, stop, restart, idle, unidle, unused, routes, startall, stopall or restartall.")
    var command: Command
    @Option(name: .customLong("for"), help: "With unused: seconds without a request (default one day).") var unusedFor = 86_400
    @Argument(help: "Gear uuids (default: all gears).") var uuids: [String] = []
    @Option(name: [.customShort("n"), .customLong("processes")],
            help: "Gears started, stopped or restarted at once (default: one per CPU).")
    var processes = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    @Flag(help: "Machine-readable output.") var json = false
    @Flag(help: "With routes: rebuild what drifted from the documents.") var repair = false

    func validate() throws {
        guard processes >= 1 && processes <= 256 else { throw ValidationError("--processes must be from 1 to 256") }
        if repair && command != .routes { throw ValidationError("--repair is only for routes") }
        if [.startall, .stopall, .restartall, .routes].contains(command) && !uuids.isEmpty {
            throw ValidationError("\(command.rawValue) acts on every gear and takes no uuids")
        }
    }
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
            case .routes:
                guard let frontend = services.frontend else { throw CommandFailure("no frontend is configured on this node (OPENSHIFT_FRONTEND_HTTP_PLUGINS)") }
                let found: FrontendManager.Reconciliation
                do { found = try frontend.reconcile(repair: repair) } catch { throw CommandFailure(error) }
                let lines = found.corrupt.sorted(by: { $0.key < $1.key }).map { "corrupt document of gear \($0.key): \($0.value)" }
                    + found.unclaimed.map { "unclaimed name \($0)" + (repair ? "; claimed" : "") }
                    + found.conflicts + found.drift
                if json {
                    printLine(Listing.json(["clean": found.clean ? "true" : "false", "findings": lines.joined(separator: "\n")]))
                } else {
                    lines.forEach { printLine($0) }
                    if found.clean { printLine("routes match the documents of \(frontend.allFrontends().count) gear(s)") }
                }
                if !found.clean && !repair { throw ExitCode(1) }
                if !found.corrupt.isEmpty || !found.conflicts.isEmpty { throw ExitCode(1) }
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
            case .start, .stop, .restart, .startall, .stopall, .restartall:
                let name = String(command.rawValue.replacing("all", with: ""))
                let action = GearManager.ControlAction(rawValue: name)!
                // Gears are independent (each has its own lock); lines are printed as gears finish.
                let results = Locked([[String: String]?](repeating: nil, count: gears.count))
                inParallel(gears.count, workers: processes) { index in
                    let gear = gears[index]
                    var result: [String: String]
                    do {
                        let output = try manager.control(gear.uuid, action, userInitiated: explicit)
                        result = ["uuid": gear.uuid, "result": "ok", "output": output.output]
                    } catch {
                        result = ["uuid": gear.uuid, "result": "failed", "error": "\(error)"]
                    }
                    results.withLock { all in
                        all[index] = result
                        if !json {
                            printLine(result["result"] == "ok" ? "[ OK ] \(name) \(gear.uuid)"
                                      : "[ FAILED ] \(name) \(gear.uuid): \(result["error"] ?? "")")
                        }
                    }
                }
                let all = results.withLock { $0.compactMap { $0 } }
                if json { printLine(Listing.json(all)) }
                if all.contains(where: { $0["result"] != "ok" }) { throw ExitCode(254) }
            }
        }
    }
}

/// Runs `body(0..<count)` on `workers` threads of their own, each taking the next index until
/// none is left; returns when all are done. Threads, not the CPU-wide dispatch pool: a worker
/// mostly waits for a gear's hooks.
func inParallel(_ count: Int, workers: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let next = Locked(0)
    let done = DispatchGroup()
    for _ in 0..<min(workers, count) {
        done.enter()
        Threads.detach(name: "ctl-gears") {
            defer { done.leave() }
            while case let index = next.withLock({ value -> Int in
                defer { value += 1 }
                return value
            }), index < count {
                body(index)
            }
        }
    }
    done.wait()
}

/// A value behind a lock, shareable between threads.
final class Locked<Value>: @unchecked Sendable {
    private var value: Value
    private let lock = DispatchSemaphore(value: 1)
    init(_ value: Value) { self.value = value }
    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.wait()
        defer { lock.signal() }
        return try body(&value)
    }
}
