import Foundation
import Logging

/// The `openshift` agent: validates each request against the catalogue, runs the action on the
/// blocking pool within a time budget, and answers in the original's reply shapes.
///
/// Requests for different gears run concurrently (up to the pool's size); requests for one gear
/// are serialised by that gear's lock inside `GearManager`. No process-wide state (such as the
/// working directory) is changed by any action.
public final class OpenShiftAgent: AgentHandler {
    public let name = "openshift"
    public let catalogue: AgentCatalogue
    public let context: NodeContext
    let validator: RequestValidator
    public let pool: BlockingPool
    /// Seconds an action may take before the requester is told it timed out (the original's
    /// hourglass: 65% of the DDL timeout).
    public let budgetSeconds: Double
    let logger: Logger

    public init(context: NodeContext, pool: BlockingPool, budgetSeconds: Double? = nil,
                logger: Logger = Logger(label: "openshift.agent")) {
        catalogue = .openshift
        validator = RequestValidator(catalogue: catalogue)
        self.context = context
        self.pool = pool
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
        } else {
            let budget = budgetSeconds
            reply = await withDeadline(seconds: budget, { [self] in
                await pool.run { self.perform(action, Inputs(inputs)) }
            }, onTimeout: {
                .failure(1, "\(action) did not finish within \(Int(budget)) s; it goes on in the background and its result is logged")
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
