import Agent
import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization

/// Request ids seen within their ttl, for replay detection. Entries expire in insertion order
/// (ttls are alike), so pruning is amortised O(1) per request.
struct ReplayCache {
    var expiries: [String: Int] = [:]
    var order: [(key: String, expiry: Int)] = []
    var head = 0

    mutating func insert(_ key: String, until expiry: Int, now: Int) -> Bool {
        while head < order.count, order[head].expiry < now {
            if expiries[order[head].key] == order[head].expiry { expiries[order[head].key] = nil }
            head += 1
        }
        if head > 4096 && head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
        if let known = expiries[key], known >= now { return false }
        expiries[key] = expiry
        order.append((key, expiry))
        return true
    }
}

/// The MCollective server pipeline for one incoming message, without the network: decode the
/// envelope, check the psk hash, caller id, age and replay, the filter, dispatch to the agent,
/// and build the signed reply envelope (reference/message-agent.md B.7).
///
/// Every message that is dropped is logged with the reason and counted: the original dropped
/// silently, so a wrong psk looked like a dead node.
public final class RequestProcessor: Sendable {
    public let configuration: ServerConfiguration
    let agents: [String: any AgentHandler]
    let facts: @Sendable () -> [String: String]
    let classes: [String]
    let logger: Logger
    let seen = Mutex(ReplayCache())
    public let counters = Mutex<[String: Int]>([:])
    /// When this processor (the daemon's agent) started, for rpcutil `daemon_stats`.
    let startTime = Int(Date().timeIntervalSince1970)

    /// Built-in agents every node answers for, besides the handlers.
    public static let builtinAgents = ["discovery", "rpcutil"]

    public init(configuration: ServerConfiguration, agents: [any AgentHandler], facts: @escaping @Sendable () -> [String: String],
                logger: Logger) {
        self.configuration = configuration
        self.agents = Dictionary(agents.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.facts = facts
        self.logger = logger
        if let file = configuration.classesFile, let text = try? String(contentsOfFile: file, encoding: .utf8) {
            classes = text.split(separator: "\n").map { $0.trimmed() }.filter { !$0.isEmpty }
        } else {
            classes = []
        }
    }

    public var agentNames: [String] { (Self.builtinAgents + agents.keys).sorted() }

    /// A reply to send: the destination (the request's reply-to) and the encoded envelope.
    public struct Reply: Sendable {
        public var destination: String
        public var body: [UInt8]
    }

    public enum Outcome: Sendable {
        case reply(Reply)
        /// Handled, nothing to send (`process_results` false, or no reply-to).
        case noReply
        case dropped(String)
    }

    func count(_ key: String) { counters.withLock { $0[key, default: 0] += 1 } }

    /// Processes one MESSAGE frame's body; `replyTo` is its `reply-to` header.
    public func process(body: [UInt8], replyTo: String?, now: Int = Int(Date().timeIntervalSince1970)) async -> Outcome {
        count("total")
        let outcome = await evaluate(body: body, replyTo: replyTo, now: now)
        switch outcome {
        case .dropped(let reason):
            count("dropped")
            logger.warning("request dropped", metadata: ["reason": "\(reason)"])
        case .reply:
            count("answered")
            count("replies")
        case .noReply:
            count("answered")
        }
        return outcome
    }

    func evaluate(body: [UInt8], replyTo: String?, now: Int) async -> Outcome {
        let envelope: RubyHash
        do {
            guard let table = try RubyMarshal.load(body, limits: .init(maxBytes: configuration.maxMessageBytes)).dictionary else {
                return .dropped("the message is not an MCollective envelope (not a Hash)")
            }
            envelope = table
        } catch {
            return .dropped("undecodable envelope: \(error)")
        }
        let requestID = envelope[symbol: "requestid"]?.stringValue ?? ""
        let sender = envelope[symbol: "senderid"]?.stringValue ?? "?"
        func drop(_ reason: String) -> Outcome { .dropped("\(reason) (requestid \(requestID), sender \(sender))") }

        guard let inner = envelope[symbol: "body"]?.bytes, let hash = envelope[symbol: "hash"]?.stringValue else {
            return drop("the envelope has no :body or :hash")
        }
        guard PSK.hash(body: inner, psk: configuration.psk) == hash else {
            count("unvalidated")
            return drop("psk hash mismatch: the sender uses another pre-shared key")
        }
        count("validated")
        let callerID = envelope[symbol: "callerid"]?.stringValue ?? ""
        guard Self.isValidCallerID(callerID) else {
            return drop("invalid caller id '\(callerID.prefix(64))'")
        }
        let ttl = envelope[symbol: "ttl"]?.intValue ?? 60
        let msgtime = envelope[symbol: "msgtime"]?.intValue ?? 0
        if now - msgtime > ttl {
            count("ttlexpired")
            return drop("expired: sent \(now - msgtime) s ago with a ttl of \(ttl) s")
        }
        if msgtime - now > ttl { return drop("sent \(msgtime - now) s in the future (clock skew beyond the ttl)") }
        guard requestID.utf8.count == 32, requestID.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            return drop("invalid request id")
        }

        guard let agent = envelope[symbol: "agent"]?.stringValue else { return drop("no :agent in the envelope") }
        let subject = FilterSubject(identity: configuration.identity, agents: agentNames, facts: facts, classes: classes)
        guard Filter.passes(envelope[symbol: "filter"], subject) else {
            count("filtered")
            logger.debug("request not for this node", metadata: ["requestid": "\(requestID)", "agent": "\(agent)"])
            return .noReply
        }
        count("passed")
        guard remember(requestID, agent: agent, until: msgtime + ttl, now: now) else {
            return drop("duplicate request id within its ttl (a replay?)")
        }

        let request: RubyValue
        do {
            request = try RubyMarshal.load(inner, limits: .init(maxBytes: configuration.maxMessageBytes))
        } catch {
            // An authenticated request for this node that cannot be read (a number wider than
            // 64 bits, nesting past the limit): answered with an error, as mcollectived answers
            // input it cannot use, so the caller is not left waiting for its timeout.
            logger.warning("undecodable request body", metadata: ["requestid": "\(requestID)", "agent": "\(agent)", "error": "\(error)"])
            guard let replyTo, !replyTo.isEmpty else { return .noReply }
            let failure = AgentReply.failure(4, "the request could not be decoded: \(error)")
            return .reply(Reply(destination: replyTo, body: replyEnvelope(requestID: requestID, agent: agent, body: failure.body.ruby, now: now)))
        }

        let replyBody: RubyValue
        switch agent {
        case "discovery":
            replyBody = request.stringValue == "ping" ? .str("pong") : .str("Unknown Request: \(request.stringValue ?? "?")")
        default:
            guard let table = request.dictionary else { return drop("the \(agent) request body is not a Hash") }
            let action = table[symbol: "action"]?.stringValue ?? ""
            let data = table[symbol: "data"] ?? .hash(RubyHash())
            let processResults = data.dictionary?[symbol: "process_results"]?.boolValue ?? true
            var inputs = AgentValue(ruby: data)
            if case .hash(let pairs) = inputs { inputs = .hash(pairs.filter { $0.key.string != "process_results" }) }
            let agentRequest = AgentRequest(agent: agent, action: action, data: inputs, caller: callerID, requestID: requestID, sender: sender)
            let reply: AgentReply
            if agent == "rpcutil" {
                reply = rpcutil(agentRequest)
            } else if let handler = agents[agent] {
                reply = await handler.handle(agentRequest)
            } else {
                return drop("unknown agent '\(agent)'")
            }
            guard processResults else { return .noReply }
            replyBody = reply.body.ruby
        }
        guard let replyTo, !replyTo.isEmpty else { return .noReply }
        return .reply(Reply(destination: replyTo, body: replyEnvelope(requestID: requestID, agent: agent, body: replyBody, now: now)))
    }

    /// `{:senderid, :requestid, :senderagent, :msgtime, :body, :hash}`, as mcollectived writes it.
    func replyEnvelope(requestID: String, agent: String, body: RubyValue, now: Int) -> [UInt8] {
        let inner = RubyMarshal.dump(body)
        let envelope = RubyHash([
            (key: .symbol("senderid"), value: .str(configuration.identity)),
            (key: .symbol("requestid"), value: .string(Array(requestID.utf8), .usASCII)),
            (key: .symbol("senderagent"), value: .str(agent)),
            (key: .symbol("msgtime"), value: .int(now)),
            (key: .symbol("body"), value: .string(inner, .binary)),
            (key: .symbol("hash"), value: .string(Array(PSK.hash(body: inner, psk: configuration.psk).utf8), .usASCII)),
        ])
        return RubyMarshal.dump(.hash(envelope))
    }

    /// Records a request id until its ttl ends; false if it was already seen.
    func remember(_ requestID: String, agent: String, until expiry: Int, now: Int) -> Bool {
        seen.withLock { $0.insert(agent + "/" + requestID, until: max(expiry, now + 1), now: now) }
    }

    /// mcollectived's caller id rule, `^\w+=[\w.\-]+$`, checked byte by byte (a regex per
    /// request was a tenth of an echo's cost).
    static func isValidCallerID(_ callerID: String) -> Bool {
        let bytes = Array(callerID.utf8)
        guard let eq = bytes.firstIndex(of: UInt8(ascii: "=")), eq > 0, eq < bytes.count - 1 else { return false }
        func word(_ b: UInt8) -> Bool { (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        return bytes[..<eq].allSatisfy(word) && bytes[(eq + 1)...].allSatisfy { word($0) || $0 == 46 || $0 == 45 }
    }

    // MARK: rpcutil

    /// The MCollective version this node answers as.
    static let version = "2.12.5 (openshift-node)"

    /// A server.cfg setting by the name of mcollectived's `Config` reader; nil when there is no
    /// such setting. Secrets (`plugin.*`: the psk, broker passwords) are never among them.
    func configItem(_ item: String) -> AgentValue? {
        switch item {
        case "identity": return .string(configuration.identity)
        case "main_collective": return .string(configuration.mainCollective)
        case "collectives": return .array(configuration.collectives.map(AgentValue.string))
        case "configfile": return .string(configuration.configFile)
        case "classesfile": return .string(configuration.classesFile ?? "/var/lib/puppet/state/classes.txt")
        case "registerinterval": return .int(configuration.registerInterval)
        case "direct_addressing": return .bool(configuration.directAddressing)
        case "securityprovider": return .string("psk")
        case "connector": return .string(configuration.settings["connector"] ?? "activemq")
        case "ttl": return .int(Int(configuration.settings["ttl"] ?? "") ?? 60)
        default:
            guard !item.hasPrefix("plugin."), !item.contains("psk"), !item.contains("password"),
                  let value = configuration.settings[item] else { return nil }
            return .string(value)
        }
    }

    /// Every `rpcutil` action: ping, get_fact, get_facts, inventory, agent_inventory,
    /// collective_info, daemon_stats, get_config_item, get_data.
    func rpcutil(_ request: AgentRequest) -> AgentReply {
        func ok(_ pairs: KeyValuePairs<String, AgentValue>) -> AgentReply { AgentReply(data: .symbols(pairs)) }
        switch request.action {
        case "ping":
            return ok(["pong": .int(Int(Date().timeIntervalSince1970))])
        case "get_fact":
            let name = request.data["fact"]?.string ?? ""
            return ok(["fact": .string(name), "value": facts()[name].map(AgentValue.string) ?? .null])
        case "get_facts":
            let names = (request.data["facts"]?.string ?? "").split(separator: ",").map { $0.trimmed() }
            let all = facts()
            return ok(["values": .hash(names.map { .init(.string($0), all[$0].map(AgentValue.string) ?? .null) })])
        case "inventory":
            return ok([
                "agents": .array(agentNames.map(AgentValue.string)),
                "facts": .strings(facts().mapValues(AgentValue.string)),
                "classes": .array(classes.map(AgentValue.string)),
                "version": .string(Self.version),
                "data_plugins": .array([]),
                "main_collective": .string(configuration.mainCollective),
                "collectives": .array(configuration.collectives.map(AgentValue.string)),
            ])
        case "agent_inventory":
            let rows: [AgentValue] = agentNames.map {
                .symbols(["agent": .string($0), "name": .string($0), "description": .string("\($0) agent"),
                          "version": .string("2.0"), "license": .string("ASL 2.0"), "author": .string("openshift-node"),
                          "timeout": .int(360), "url": .string("https://github.com/openshift/origin-server")])
            }
            return ok(["agents": .array(rows)])
        case "collective_info":
            return ok(["main_collective": .string(configuration.mainCollective),
                       "collectives": .array(configuration.collectives.map(AgentValue.string))])
        case "daemon_stats":
            // mcollectived's fields (rpcutil.rb with RunnerStats#to_hash), which `mco inventory` prints.
            let snapshot = counters.withLock { $0 }
            func seconds(_ time: timeval) -> AgentValue { .float(Double(time.tv_sec) + Double(time.tv_usec) / 1_000_000) }
            var own = rusage()
            var children = rusage()
            getrusage(RUSAGE_SELF.rawValue, &own)
            getrusage(RUSAGE_CHILDREN.rawValue, &children)
            return ok([
                "threads": .array([]), "agents": .array(agentNames.map(AgentValue.string)), "pid": .int(Int(getpid())),
                "times": .symbols(["utime": seconds(own.ru_utime), "stime": seconds(own.ru_stime),
                                   "cutime": seconds(children.ru_utime), "cstime": seconds(children.ru_stime)]),
                "configfile": .string(configuration.configFile), "version": .string(Self.version),
                "validated": .int(snapshot["validated"] ?? 0), "unvalidated": .int(snapshot["unvalidated"] ?? 0),
                "passed": .int(snapshot["passed"] ?? 0), "filtered": .int(snapshot["filtered"] ?? 0),
                "starttime": .int(startTime), "total": .int(snapshot["total"] ?? 0),
                "ttlexpired": .int(snapshot["ttlexpired"] ?? 0), "replies": .int(snapshot["replies"] ?? 0),
                "dropped": .int(snapshot["dropped"] ?? 0),
            ])
        case "get_config_item":
            let item = request.data["item"]?.string ?? ""
            guard let value = configItem(item) else { return .failure(1, "Unknown config property \(item)") }
            return ok(["item": .string(item), "value": value])
        case "get_data":
            // mcollectived answers from its data plugins; this node has none.
            let source = request.data["source"]?.string ?? ""
            return .failure(1, "Unknown data plugin '\(source)': this node has no data plugins")
        default:
            return .failure(2, "Unknown action '\(request.action)' for agent 'rpcutil'")
        }
    }
}
