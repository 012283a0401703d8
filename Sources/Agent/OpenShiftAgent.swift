import Containment
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Logging
import NodeConfig

/// The `openshift` agent: validates each request against the catalogue, runs the action within a
/// time budget, and answers in the original's reply shapes.
///
/// Where work runs, so that no gear can starve the node:
/// - read-only queries (facts, gear listings) on their own small pool, never behind a hook;
/// - actions on the action pool (`AGENT_MAX_CONCURRENT` threads); an action for a gear first
///   waits its turn in that gear's line (`GearLines`: one at a time per gear, at most
///   `AGENT_GEAR_QUEUE` admitted, the excess refused at once), holding no thread while it waits;
/// - when the budget runs out the requester is answered and the action is cancelled: its hook's
///   process group is killed and a wait for a lock gives up, so it releases its thread and the
///   gear's lock within moments instead of running on for minutes.
/// No process-wide state (such as the working directory) is changed by any action.
public final class OpenShiftAgent: AgentHandler {
    public let name = "openshift"
    public let catalogue: AgentCatalogue
    public let context: NodeContext
    let validator: RequestValidator
    /// Threads for actions (hooks, account tools, file trees).
    public let pool: BlockingPool
    /// Threads for read-only queries.
    public let queries: BlockingPool
    let lines: GearLines
    /// Seconds an action may take before the requester is told it timed out (the original's
    /// hourglass: 65% of the DDL timeout).
    public let budgetSeconds: Double
    let logger: Logger

    public init(context: NodeContext, pool: BlockingPool, queries: BlockingPool? = nil, gearQueueLimit: Int? = nil,
                budgetSeconds: Double? = nil, logger: Logger = Logger(label: "openshift.agent")) {
        catalogue = .openshift
        validator = RequestValidator(catalogue: catalogue)
        self.context = context
        self.pool = pool
        self.queries = queries ?? BlockingPool(size: 2, name: "query")
        lines = GearLines(limit: gearQueueLimit ?? context.configuration.integer("AGENT_GEAR_QUEUE"))
        self.budgetSeconds = budgetSeconds ?? (Double(catalogue.timeout) * 0.65).rounded(.up)
        self.logger = logger
    }

    public func handle(_ request: AgentRequest) async -> AgentReply {
        let inputs: [String: AgentValue]
        switch validator.validate(action: request.action, data: request.data) {
        case .failure(let failure):
            logger.info("request refused", metadata: ["action": "\(request.action)", "requestid": "\(request.requestID)",
                                                      "sender": "\(request.sender)", "reason": "\(failure.message)"])
            return .failure(4, failure.message)
        case .success(let valid):
            inputs = valid
        }
        let action = request.action
        // Changes are logged at info; queries (brokers poll them) at debug.
        let level: Logger.Level = Self.mutatingActions.contains(action) ? .info : .debug
        logger.log(level: level, "request start", metadata: ["action": "\(action)", "requestid": "\(request.requestID)",
                                                             "sender": "\(request.sender)"])
        let started = ContinuousClock.now
        var reply: AgentReply
        if action == "execute_parallel" {
            reply = await executeParallel(request.data)
        } else if Self.inlineActions.contains(action) {
            reply = perform(action, Inputs(inputs))
        } else if Self.queryActions.contains(action) || (action == "cartridge_repository" && inputs["action"]?.string == "list") {
            let budget = budgetSeconds
            reply = await withDeadline(seconds: budget, { [self] in
                await queries.run { self.perform(action, Inputs(inputs)) }
            }, onTimeout: { .failure(1, "\(action) did not finish within \(Int(budget)) s") })
        } else {
            let gear = action == "cartridge_do" ? Self.gearName(inputs["args"]) : nil
            reply = await runAction(gear: gear, { self.perform(action, Inputs(inputs)) }, refused: { admitted in
                AgentReply(statuscode: 1, statusmsg: "gear \(gear ?? "") already has \(admitted) requests running or waiting; try again later",
                           data: .symbols(["output": .string("too many requests for gear \(gear ?? "")"), "exitcode": .int(1)]))
            }, timedOut: { [budgetSeconds] in
                .failure(1, "\(action) did not finish within \(Int(budgetSeconds)) s: it was stopped, and its processes killed")
            })
        }
        reply.data = Self.prefilled(catalogue.action(action)?.outputs ?? [], reply.data)
        logger.log(level: level, "request end", metadata: ["action": "\(action)", "requestid": "\(request.requestID)",
                                              "statuscode": "\(reply.statuscode)",
                                              "ms": "\(Self.milliseconds(ContinuousClock.now - started))"])
        return reply
    }

    static func milliseconds(_ duration: Duration) -> Int64 {
        duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
    }

    /// Actions that change the node: logged at info.
    static let mutatingActions: Set = ["cartridge_do", "cartridge_repository", "set_district", "set_district_uid_limits",
                                       "execute_parallel", "upgrade"]
    /// Actions that only compute or look at one path: run on the caller's task, without a pool
    /// thread or a timer (most of an echo's cost was the hand-offs).
    static let inlineActions: Set = ["echo", "has_gear", "get_gear_uid", "has_uid_or_gid", "has_embedded_app"]
    /// Read-only actions that read many files: on the query pool, never behind a hook.
    static let queryActions: Set = ["get_facts", "get_all_gears", "get_all_active_gears", "get_all_gears_endpoints",
                                    "get_all_gears_sshkeys", "has_app_cartridge", "get_gear_envs"]

    /// The gear a `cartridge_do` names (its `--with-container-uuid`), when it is a valid name.
    static func gearName(_ args: AgentValue?) -> String? {
        guard let uuid = (try? CartridgeArgs(args))?.string("--with-container-uuid"),
              (try? GearIdentity.validate(uuid: uuid)) != nil else { return nil }
        return uuid
    }

    /// Runs `work` on the action pool within the budget, behind the gear's earlier requests when
    /// it names a gear. When the budget runs out, `timedOut` answers at once and the work is
    /// cancelled (its processes killed); the gear's turn passes on when the work has really ended.
    func runAction<T: Sendable>(gear: String?, _ work: @escaping @Sendable () -> T, refused: (Int) -> T,
                                timedOut: @escaping @Sendable () -> T) async -> T {
        if let gear, !lines.admit(gear) { return refused(lines.admitted(gear)) }
        let cancellation = Cancellation()
        return await withDeadline(seconds: budgetSeconds, { [self] in
            if let gear { await lines.waitTurn(gear) }
            defer { if let gear { lines.finish(gear) } }
            if cancellation.isCancelled { return timedOut() }
            return await pool.run { Cancellation.$current.withValue(cancellation) { work() } }
        }, onTimeout: {
            cancellation.cancel()
            return timedOut()
        })
    }

    /// Every declared output key first (nil), then what the action set, as MCollective's RPC
    /// layer does.
    static func prefilled(_ outputs: [OutputSpec], _ data: AgentValue) -> AgentValue {
        var pairs = outputs.map { AgentValue.Pair(.symbol($0.name), .null) }
        for pair in data.pairs ?? [] {
            if let index = pairs.firstIndex(where: { $0.key == pair.key }) { pairs[index].value = pair.value } else { pairs.append(pair) }
        }
        return .hash(pairs)
    }

    /// Runs one validated action; called on the blocking pool.
    func perform(_ action: String, _ inputs: Inputs) -> AgentReply {
        switch action {
        case "echo":
            return AgentReply(data: .symbols(["msg": inputs["msg"] ?? .null]))
        case "cartridge_do":
            return cartridgeDo(inputs)
        case "cartridge_repository":
            return cartridgeRepository(inputs)
        case "get_facts":
            return getFacts(inputs)
        case "get_all_gears":
            return getAllGears(inputs)
        case "get_all_active_gears":
            return getAllActiveGears()
        case "get_all_gears_endpoints":
            return getAllGearsEndpoints()
        case "get_all_gears_sshkeys":
            return getAllGearsSSHKeys()
        case "has_gear":
            return output(.bool(gearExists(inputs.string("uuid"))))
        case "has_embedded_app":
            return hasEmbeddedApp(inputs)
        case "has_app_cartridge":
            return hasAppCartridge(inputs)
        case "get_gear_envs":
            return getGearEnvs(inputs)
        case "get_gear_uid":
            return getGearUID(inputs)
        case "has_uid_or_gid":
            return hasUIDOrGID(inputs)
        case "set_district":
            return setDistrict(inputs)
        case "set_district_uid_limits":
            return setDistrictUIDLimits(inputs)
        case "upgrade":
            return AgentReply(statuscode: 1, statusmsg: "upgrade is not supported by this node",
                              data: .symbols(["output": .string("upgrade is not supported by this node yet"), "exitcode": .int(127)]))
        default:
            return .failure(2, "Unknown action '\(action)' for agent 'openshift'")
        }
    }

    /// `{output: value, exitcode: 0}`, the shape of the query actions.
    func output(_ value: AgentValue) -> AgentReply {
        AgentReply(data: .symbols(["output": value, "exitcode": .int(0)]))
    }
}

/// Validated inputs by name, with typed accessors.
struct Inputs: Sendable {
    let values: [String: AgentValue]
    init(_ values: [String: AgentValue]) { self.values = values }
    subscript(name: String) -> AgentValue? { values[name] }
    func string(_ name: String) -> String { values[name]?.string ?? "" }
}
