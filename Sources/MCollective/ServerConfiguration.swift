import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The parts of an MCollective `server.cfg` a node needs, read the way mcollectived reads them
/// (`key = value` lines, `#` comments). Both the `activemq` pool keys and the older `stomp`
/// connector keys are understood.
public struct ServerConfiguration: Sendable, Equatable {
    public var identity: String
    public var collectives: [String]
    public var mainCollective: String
    public var psk: String
    public var hosts: [Host]
    /// `plugin.activemq.heartbeat_interval`, seconds; nil: STOMP 1.0 without heart-beats.
    public var heartbeatInterval: Int?
    /// Also subscribe to `/queue/<collective>.nodes` with this node's identity selector.
    public var directAddressing: Bool
    /// Seconds between registration broadcasts (0: off).
    public var registerInterval: Int
    /// Lines are the node's classes, for `cf_class` filters.
    public var classesFile: String?
    /// Largest STOMP frame accepted.
    public var maxMessageBytes: Int
    /// How the connector moves between the pool's brokers, from the `plugin.activemq.*` keys
    /// mcollectived reads (its defaults when absent).
    public var reconnect = Reconnect()

    public struct Reconnect: Sendable, Equatable {
        /// `initial_reconnect_delay`, seconds.
        public var initialDelay = 0.01
        /// `max_reconnect_delay`, seconds.
        public var maxDelay = 30.0
        /// `use_exponential_back_off` and `back_off_multiplier`.
        public var exponential = true
        public var multiplier = 2
        /// `randomize`: the pool is tried in a random order rather than as written.
        public var randomize = false
        /// `connect_timeout`, seconds.
        public var connectTimeout = 30.0

        public init() {}
    }

    /// The file this was read from (rpcutil `daemon_stats` and `get_config_item configfile`).
    public var configFile = ""
    /// The file's top-level `key = value` settings as written (never the `plugin.*` ones, which
    /// hold the psk and broker passwords): what rpcutil `get_config_item` may answer.
    public var settings: [String: String] = [:]

    public struct Host: Sendable, Equatable {
        public var host: String
        public var port: Int
        public var user: String
        public var password: String
    }

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var file: String
        public var line: Int
        public var reason: String
        public var description: String { "\(file):\(line): \(reason)" }
    }

    public init(identity: String, collectives: [String] = ["mcollective"], psk: String, hosts: [Host],
                heartbeatInterval: Int? = nil, directAddressing: Bool = true, registerInterval: Int = 0) {
        self.identity = identity
        self.collectives = collectives
        self.mainCollective = collectives.first ?? "mcollective"
        self.psk = psk
        self.hosts = hosts
        self.heartbeatInterval = heartbeatInterval
        self.directAddressing = directAddressing
        self.registerInterval = registerInterval
        self.classesFile = nil
        self.maxMessageBytes = 16 << 20
    }

    /// Parses `text` (the contents of `file`). `environment` supplies the overrides mcollectived
    /// honours: `MCOLLECTIVE_PSK`, `STOMP_USER`, `STOMP_PASSWORD`.
    public static func parse(_ text: String, file: String, environment: [String: String] = [:],
                             defaultIdentity: String) throws(ParseError) -> ServerConfiguration {
        var values: [String: String] = [:]
        var lineNumbers: [String: Int] = [:]
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmed()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let eq = line.firstIndex(of: "=") else {
                throw ParseError(file: file, line: index + 1, reason: "expected 'key = value', found '\(line.prefix(60))'")
            }
            let key = line[..<eq].trimmed()
            values[key] = line[line.index(after: eq)...].trimmed()
            lineNumbers[key] = index + 1
        }
        func fail(_ key: String, _ reason: String) -> ParseError {
            ParseError(file: file, line: lineNumbers[key] ?? 0, reason: reason)
        }
        func integer(_ key: String) throws(ParseError) -> Int? {
            guard let text = values[key] else { return nil }
            guard let value = Int(text), value >= 0 else { throw fail(key, "\(key) must be a non-negative integer, not '\(text)'") }
            return value
        }

        if let provider = values["securityprovider"], provider != "psk" {
            throw fail("securityprovider", "securityprovider '\(provider)' is not supported: this node speaks psk")
        }
        let identity = values["identity"] ?? defaultIdentity
        // Ruby's \w is ASCII: letters, digits and _.
        func isName(_ text: String) -> Bool {
            !text.isEmpty && text.utf8.allSatisfy { ASCII.isAlphanumeric($0) || "_.-".utf8.contains($0) }
        }
        guard isName(identity) else {
            throw fail("identity", "identity '\(identity)' must match ^[\\w\\.\\-]+$")
        }
        let collectives = (values["collectives"] ?? "mcollective").split(separator: ",").map { $0.trimmed() }
        guard !collectives.isEmpty, collectives.allSatisfy(isName) else {
            throw fail("collectives", "collectives must be a comma separated list of names")
        }
        guard let psk = environment["MCOLLECTIVE_PSK"] ?? values["plugin.psk"], !psk.isEmpty else {
            throw ParseError(file: file, line: 0, reason: "plugin.psk is not set (or set MCOLLECTIVE_PSK)")
        }

        var hosts: [Host] = []
        let connector = values["connector"] ?? "activemq"
        guard ["activemq", "stomp"].contains(connector) else {
            throw fail("connector", "connector '\(connector)' is not supported: use activemq (or stomp)")
        }
        let user = environment["STOMP_USER"]
        let password = environment["STOMP_PASSWORD"]
        if let size = try integer("plugin.activemq.pool.size"), size > 0 {
            for n in 1...size {
                let prefix = "plugin.activemq.pool.\(n)."
                guard let host = values[prefix + "host"] else { throw fail("plugin.activemq.pool.size", "\(prefix)host is missing") }
                hosts.append(Host(host: host, port: try integer(prefix + "port") ?? 61613,
                                  user: user ?? values[prefix + "user"] ?? "", password: password ?? values[prefix + "password"] ?? ""))
            }
        } else if let host = values["plugin.stomp.host"] {
            hosts.append(Host(host: host, port: try integer("plugin.stomp.port") ?? 61613,
                              user: user ?? values["plugin.stomp.user"] ?? "", password: password ?? values["plugin.stomp.password"] ?? ""))
        } else {
            throw ParseError(file: file, line: 0, reason: "no broker: set plugin.activemq.pool.1.host (with pool.size) or plugin.stomp.host")
        }

        var configuration = ServerConfiguration(
            identity: identity, collectives: collectives, psk: psk, hosts: hosts,
            heartbeatInterval: try integer("plugin.activemq.heartbeat_interval").map { max($0, 30) },
            directAddressing: (values["direct_addressing"] ?? "1") != "0",
            registerInterval: try integer("registerinterval") ?? 0)
        configuration.mainCollective = values["main_collective"] ?? collectives[0]
        configuration.classesFile = values["classesfile"]
        configuration.configFile = file
        func number(_ key: String, _ fallback: Double) throws(ParseError) -> Double {
            guard let text = values["plugin.activemq." + key] else { return fallback }
            guard let value = Double(text), value >= 0, value.isFinite else {
                throw fail("plugin.activemq." + key, "plugin.activemq.\(key) must be a non-negative number of seconds, not '\(text)'")
            }
            return value
        }
        func flag(_ key: String, _ fallback: Bool) throws(ParseError) -> Bool {
            guard let text = values["plugin.activemq." + key]?.lowercased() else { return fallback }
            switch text {
            case "1", "true", "yes", "y": return true
            case "0", "false", "no", "n": return false
            default: throw fail("plugin.activemq." + key, "plugin.activemq.\(key) must be true or false, not '\(text)'")
            }
        }
        configuration.reconnect.initialDelay = try number("initial_reconnect_delay", 0.01)
        configuration.reconnect.maxDelay = max(try number("max_reconnect_delay", 30), configuration.reconnect.initialDelay)
        configuration.reconnect.exponential = try flag("use_exponential_back_off", true)
        configuration.reconnect.multiplier = max(try integer("plugin.activemq.back_off_multiplier") ?? 2, 1)
        configuration.reconnect.randomize = try flag("randomize", false)
        configuration.reconnect.connectTimeout = try number("connect_timeout", 30)
        configuration.settings = values.filter { !$0.key.hasPrefix("plugin.") }
        return configuration
    }
}
