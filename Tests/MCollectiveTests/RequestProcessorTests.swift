import Agent
import Foundation
import Logging
import Testing
@testable import MCollective

/// An in-memory agent: echoes, as the test bed's one-action agent does.
struct EchoAgent: AgentHandler {
    let name = "openshift"
    func handle(_ request: AgentRequest) async -> AgentReply {
        guard request.action == "echo" else { return .failure(4, "Attempted to call action \(request.action) for openshift but it's not declared in the DDL") }
        return AgentReply(data: .symbols(["msg": request.data["msg"] ?? .null, "time": .null]))
    }
}

/// Captured requests of the test bed (psk `testbed-psk-secret`), by scenario and size.
enum Captured {
    static let psk = "testbed-psk-secret"

    static func frames() throws -> [(scenario: String, command: String, headers: [String: String], body: [UInt8])] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/mcollective-capture-psk-marshal.jsonl")
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { line in
            let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            var headers: [String: String] = [:]
            for pair in json["headers"] as? [[String]] ?? [] where pair.count == 2 { headers[pair[0]] = pair[1] }
            return (json["scenario"] as? String ?? "", json["command"] as? String ?? "", headers,
                    Array(Data(base64Encoded: json["body_b64"] as? String ?? "") ?? Data()))
        }
    }

    /// Scenario A's direct `echo msg=foo` request to node1.test, as the broker delivered it.
    static func echoRequest() throws -> (body: [UInt8], replyTo: String, msgtime: Int) {
        let frame = try #require(try frames().first { $0.command == "MESSAGE" && $0.scenario.hasPrefix("A") && $0.body.count == 433 })
        let envelope = try #require(try RubyMarshal.load(frame.body).dictionary)
        return (frame.body, frame.headers["reply-to"] ?? "", envelope[symbol: "msgtime"]?.intValue ?? 0)
    }

    /// Scenario A's discovery ping.
    static func ping() throws -> (body: [UInt8], replyTo: String, msgtime: Int) {
        let frame = try #require(try frames().first { frame in
            guard frame.command == "MESSAGE", frame.scenario.hasPrefix("A"),
                  let envelope = try? RubyMarshal.load(frame.body).dictionary else { return false }
            return envelope[symbol: "agent"]?.stringValue == "discovery"
        })
        let envelope = try #require(try RubyMarshal.load(frame.body).dictionary)
        return (frame.body, frame.headers["reply-to"] ?? "", envelope[symbol: "msgtime"]?.intValue ?? 0)
    }
}

@Suite("the MCollective request pipeline: psk, ttl, replay, filters, replies")
struct RequestProcessorTests {
    func processor(identity: String = "node1.test", psk: String = Captured.psk, facts: [String: String] = [:]) -> RequestProcessor {
        RequestProcessor(configuration: ServerConfiguration(identity: identity, psk: psk, hosts: []), agents: [EchoAgent()],
                         facts: { facts }, logger: Logger(label: "test"))
    }

    @Test("a captured mco request is answered with a signed reply envelope to its reply-to")
    func answersCapturedRequest() async throws {
        let request = try Captured.echoRequest()
        let outcome = await processor().process(body: request.body, replyTo: request.replyTo, now: request.msgtime + 1)
        guard case .reply(let reply) = outcome else { Issue.record("expected a reply, got \(outcome)"); return }
        #expect(reply.destination == request.replyTo)
        let envelope = try #require(try RubyMarshal.load(reply.body).dictionary)
        #expect(envelope.pairs.map { $0.key } == ["senderid", "requestid", "senderagent", "msgtime", "body", "hash"].map(RubyValue.symbol))
        #expect(envelope[symbol: "senderid"]?.stringValue == "node1.test")
        #expect(envelope[symbol: "senderagent"]?.stringValue == "openshift")
        let inner = try #require(envelope[symbol: "body"]?.bytes)
        #expect(envelope[symbol: "hash"]?.stringValue == PSK.hash(body: inner, psk: Captured.psk))
        let body = try #require(try RubyMarshal.load(inner).dictionary)
        #expect(body[symbol: "statuscode"]?.intValue == 0)
        #expect(body[symbol: "data"]?.dictionary?[symbol: "msg"]?.stringValue == "foo")
    }

    @Test("the discovery agent answers ping with pong, as the capture shows")
    func discovery() async throws {
        let ping = try Captured.ping()
        guard case .reply(let reply) = await processor().process(body: ping.body, replyTo: ping.replyTo, now: ping.msgtime) else {
            Issue.record("no pong")
            return
        }
        let envelope = try #require(try RubyMarshal.load(reply.body).dictionary)
        #expect(envelope[symbol: "body"]?.bytes == [0x04, 0x08, 0x49, 0x22, 0x09, 0x70, 0x6f, 0x6e, 0x67, 0x06, 0x3a, 0x06, 0x45, 0x54])
        #expect(envelope[symbol: "hash"]?.stringValue == "2dfd399671ed6f5649c4d4e557107af5", "the test bed's pong vector")
    }

    @Test("dropped, with the reason: another psk, an expired ttl, a replayed request id")
    func drops() async throws {
        let request = try Captured.echoRequest()
        guard case .dropped(let psk) = await processor(psk: "other").process(body: request.body, replyTo: request.replyTo, now: request.msgtime) else {
            Issue.record("a request with another psk was answered")
            return
        }
        #expect(psk.hasPrefix("psk hash mismatch"))
        guard case .dropped(let expired) = await processor().process(body: request.body, replyTo: request.replyTo, now: request.msgtime + 61) else {
            Issue.record("an expired request was answered")
            return
        }
        #expect(expired.hasPrefix("expired: sent 61 s ago with a ttl of 60 s"))
        let node = processor()
        _ = await node.process(body: request.body, replyTo: request.replyTo, now: request.msgtime)
        guard case .dropped(let replay) = await node.process(body: request.body, replyTo: request.replyTo, now: request.msgtime + 5) else {
            Issue.record("a replayed request was answered twice")
            return
        }
        #expect(replay.hasPrefix("duplicate request id"))
        #expect(node.counters.withLock { $0["dropped"] } == 1)
        guard case .dropped = await processor().process(body: [4, 8, 0x6f, 0], replyTo: "x", now: 0) else {
            Issue.record("an object in the envelope was accepted")
            return
        }
    }

    @Test("an authenticated request whose body cannot be decoded is answered with statuscode 4, not left to time out",
          arguments: [
            // A Bignum of 80 bits (Ruby reads it; this node does not).
            ("bignum", [UInt8]([0x04, 0x08, 0x6c, 0x2b, 0x0a]) + [UInt8](repeating: 0xff, count: 10)),
            // Arrays nested 100 deep.
            ("nesting", [0x04, 0x08] + [UInt8](repeating: 0, count: 100).flatMap { _ in [UInt8(0x5b), 0x06] } + [0x30]),
          ] as [(String, [UInt8])])
    func undecodableBody(name: String, inner: [UInt8]) async throws {
        let request = try Captured.echoRequest()
        var envelope = try #require(try RubyMarshal.load(request.body).dictionary)
        func set(_ key: String, _ value: RubyValue) {
            envelope = RubyHash(envelope.pairs.map { $0.key == .symbol(key) ? (key: $0.key, value: value) : $0 })
        }
        set("body", .string(inner, .binary))
        set("hash", .str(PSK.hash(body: inner, psk: Captured.psk)))
        let body = RubyMarshal.dump(.hash(envelope))
        guard case .reply(let reply) = await processor().process(body: body, replyTo: request.replyTo, now: request.msgtime) else {
            Issue.record("\(name): no reply")
            return
        }
        let replyBody = try #require(try RubyMarshal.load(reply.body).dictionary?[symbol: "body"]?.bytes)
        let answer = try #require(try RubyMarshal.load(replyBody).dictionary)
        #expect(answer[symbol: "statuscode"]?.intValue == 4)
        #expect(answer[symbol: "statusmsg"]?.stringValue?.hasPrefix("the request could not be decoded") == true, "\(answer)")
        // The same body under another psk is still dropped unanswered.
        guard case .dropped = await processor(psk: "other").process(body: body, replyTo: request.replyTo, now: request.msgtime) else {
            Issue.record("\(name): answered without the psk")
            return
        }
    }

    @Test("a request for another identity is not answered")
    func filteredOut() async throws {
        let request = try Captured.echoRequest()
        // Scenario A's direct request carries only an agent filter; a node without the agent does not answer it.
        let other = RequestProcessor(configuration: ServerConfiguration(identity: "node1.test", psk: Captured.psk, hosts: []), agents: [],
                                     facts: { [:] }, logger: Logger(label: "test"))
        guard case .noReply = await other.process(body: request.body, replyTo: request.replyTo, now: request.msgtime) else {
            Issue.record("a node without the openshift agent answered")
            return
        }
    }
}

@Suite("MCollective filters")
struct FilterTests {
    let subject = FilterSubject(identity: "node1.example.com", agents: ["discovery", "openshift", "rpcutil"],
                                facts: { ["active_capacity": "12.5", "kernel": "Linux", "district_uuid": "NONE", "gears_total_count": "9"] },
                                classes: ["openshift::node"])

    func filter(_ pairs: [(String, RubyValue)]) -> RubyValue {
        .hash(RubyHash(pairs.map { (key: RubyValue.str($0.0), value: $0.1) }))
    }

    func fact(_ name: String, _ op: String, _ value: String) -> RubyValue {
        .hash(RubyHash([(key: .symbol("fact"), value: .str(name)), (key: .symbol("value"), value: .str(value)),
                        (key: .symbol("operator"), value: .str(op))]))
    }

    @Test("empty filters pass; agents and identities (strings, /regex/, Regexp) as mcollectived checks them")
    func identityAndAgents() {
        let empty = filter(["fact", "cf_class", "agent", "identity", "compound"].map { ($0, RubyValue.array([])) })
        #expect(Filter.passes(empty, subject))
        #expect(Filter.passes(filter([("agent", .array([.str("openshift")]))]), subject))
        #expect(!Filter.passes(filter([("agent", .array([.str("puppet")]))]), subject))
        #expect(Filter.passes(filter([("identity", .array([.str("node1.example.com")]))]), subject))
        #expect(!Filter.passes(filter([("identity", .array([.str("node2.example.com")]))]), subject))
        #expect(Filter.passes(filter([("identity", .array([.regexp(source: "^(node1.example.com)$", options: 0)]))]), subject))
        #expect(Filter.passes(filter([("identity", .array([.str("/node1/")]))]), subject))
        #expect(!Filter.passes(filter([("identity", .array([.str("node1.example.com"), .str("/node1/")]))]), subject),
                "exactly one identity entry must match")
    }

    @Test("fact comparisons: integers, floats, strings, regexes, as the broker's placement filters use them")
    func facts() {
        #expect(Filter.passes(filter([("fact", .array([fact("active_capacity", "<", "100")]))]), subject))
        #expect(Filter.passes(filter([("fact", .array([fact("gears_total_count", "<", "10")]))]), subject), "9 < 10 as integers")
        #expect(!Filter.passes(filter([("fact", .array([fact("gears_total_count", ">", "10")]))]), subject))
        #expect(Filter.passes(filter([("fact", .array([fact("kernel", "=~", "(?i:linux)")]))]), subject))
        #expect(Filter.passes(filter([("fact", .array([fact("district_uuid", "==", "NONE")]))]), subject))
        #expect(!Filter.passes(filter([("fact", .array([fact("missing", "==", "x")]))]), subject))
        #expect(!Filter.compare("NaN", "<", "100"), "strings compare lexically")
        #expect(Filter.passes(filter([("compound", .array([.array([
            .hash(RubyHash([(key: .str("statement"), value: .str("kernel=Linux"))])),
            .hash(RubyHash([(key: .str("and"), value: .str("and"))])),
            .hash(RubyHash([(key: .str("not"), value: .str("not"))])),
            .hash(RubyHash([(key: .str("statement"), value: .str("active_capacity>50"))])),
        ])]))]), subject))
    }
}

@Suite("server.cfg")
struct ServerConfigurationTests {
    @Test("the activemq pool, the psk and its environment override; a bad line names file and line")
    func parse() throws {
        let text = """
            # a node
            identity = node1.example.com
            collectives = mcollective,other
            securityprovider = psk
            plugin.psk = secret
            connector = activemq
            plugin.activemq.pool.size = 1
            plugin.activemq.pool.1.host = broker.example.com
            plugin.activemq.pool.1.port = 61614
            plugin.activemq.pool.1.user = mcollective
            plugin.activemq.pool.1.password = marionette
            plugin.activemq.heartbeat_interval = 30
            direct_addressing = 0
            """
        let configuration = try ServerConfiguration.parse(text, file: "server.cfg", defaultIdentity: "host")
        #expect(configuration.identity == "node1.example.com")
        #expect(configuration.collectives == ["mcollective", "other"])
        #expect(configuration.hosts == [.init(host: "broker.example.com", port: 61614, user: "mcollective", password: "marionette")])
        #expect(configuration.heartbeatInterval == 30 && !configuration.directAddressing)
        #expect(try ServerConfiguration.parse(text, file: "server.cfg", environment: ["MCOLLECTIVE_PSK": "env"], defaultIdentity: "h").psk == "env")
        #expect(throws: ServerConfiguration.ParseError(file: "server.cfg", line: 2, reason: "expected 'key = value', found 'oops'")) {
            try ServerConfiguration.parse("plugin.psk = x\noops\n", file: "server.cfg", defaultIdentity: "h")
        }
        #expect(throws: ServerConfiguration.ParseError(file: "s.cfg", line: 1, reason: "securityprovider 'ssl' is not supported: this node speaks psk")) {
            try ServerConfiguration.parse("securityprovider = ssl\n", file: "s.cfg", defaultIdentity: "h")
        }
    }

    @Test("the pool's reconnect keys as mcollectived reads them, its defaults when absent; a bad value names file and line")
    func reconnectKeys() throws {
        let pool = """
            plugin.psk = secret
            plugin.activemq.pool.size = 2
            plugin.activemq.pool.1.host = a.example.com
            plugin.activemq.pool.1.user = one
            plugin.activemq.pool.1.password = first
            plugin.activemq.pool.2.host = b.example.com
            plugin.activemq.pool.2.port = 61614
            plugin.activemq.pool.2.user = two
            plugin.activemq.pool.2.password = second

            """
        let defaults = try ServerConfiguration.parse(pool, file: "server.cfg", defaultIdentity: "h")
        #expect(defaults.reconnect == ServerConfiguration.Reconnect())
        #expect(defaults.reconnect.initialDelay == 0.01 && defaults.reconnect.maxDelay == 30 && defaults.reconnect.multiplier == 2)
        #expect(defaults.hosts.map(\.user) == ["one", "two"] && defaults.hosts.map(\.port) == [61613, 61614], "each broker its own account")
        let tuned = try ServerConfiguration.parse(pool + """
            plugin.activemq.initial_reconnect_delay = 0.5
            plugin.activemq.max_reconnect_delay = 8
            plugin.activemq.back_off_multiplier = 3
            plugin.activemq.use_exponential_back_off = false
            plugin.activemq.randomize = true
            plugin.activemq.connect_timeout = 5
            """, file: "server.cfg", defaultIdentity: "h")
        #expect(tuned.reconnect.initialDelay == 0.5 && tuned.reconnect.maxDelay == 8 && tuned.reconnect.multiplier == 3)
        #expect(!tuned.reconnect.exponential && tuned.reconnect.randomize && tuned.reconnect.connectTimeout == 5)
        #expect(throws: ServerConfiguration.ParseError(file: "server.cfg", line: 11,
                                                       reason: "plugin.activemq.max_reconnect_delay must be a non-negative number of seconds, not 'soon'")) {
            try ServerConfiguration.parse(pool + "\nplugin.activemq.max_reconnect_delay = soon\n", file: "server.cfg", defaultIdentity: "h")
        }
        #expect(throws: ServerConfiguration.ParseError.self) {
            try ServerConfiguration.parse(pool + "plugin.activemq.randomize = maybe\n", file: "server.cfg", defaultIdentity: "h")
        }
    }
}

@Suite("small pieces of the pipeline")
struct PipelinePieceTests {
    @Test("caller ids as mcollectived checks them (^\\w+=[\\w.-]+$)")
    func callerIDs() {
        for good in ["uid=0", "user=root", "identity=node1.example.com", "cert=client-1"] { #expect(RequestProcessor.isValidCallerID(good)) }
        for bad in ["", "uid=", "=0", "uid=0 ", "uid=0\nx", "u id=0", "uid=a/b", "uid=0;rm"] { #expect(!RequestProcessor.isValidCallerID(bad), "\(bad)") }
    }

    @Test("the replay cache forgets request ids once their ttl is over, and only then")
    func replayCache() {
        var cache = ReplayCache()
        let first = cache.insert("a", until: 100, now: 40)
        let replay = cache.insert("a", until: 100, now: 99)
        #expect(first && !replay, "a replay within the ttl is refused")
        for n in 0..<10_000 { _ = cache.insert("k\(n)", until: 150, now: 90) }
        let again = cache.insert("a", until: 200, now: 101)
        #expect(again, "expired: accepted again")
        _ = cache.insert("b", until: 300, now: 160)
        #expect(cache.expiries.count == 2, "the 10 000 expired ids are gone")
    }
}
