/// One key the node reads from `node.conf`: its name, default, type and meaning.
///
/// The table in `NodeConfigKey.all` is the single source for parsing, defaults, type checks and
/// the shipped `node.conf.sample` (`openshift-node config-sample` prints it).
public struct NodeConfigKey: Sendable, Hashable {
    public enum ValueType: String, Sendable {
        case string, path, integer, boolean, number, list
    }

    /// The values an integer or number key accepts beyond its type, and what such a value is.
    public enum Limit: Sendable, Hashable {
        case integer(ClosedRange<Int>, String)
        case number(ClosedRange<Double>, String)

        /// Never 0 (root), never 4294967295 (`(uid_t)-1`, "no change" to setresuid and chown).
        public static let uid = Limit.integer(1...4_294_967_294, "a uid")
        /// An offset added to or subtracted from uids.
        public static let uidOffset = Limit.integer(0...4_294_967_294, "a uid offset")
        public static let port = Limit.integer(1...65_535, "a port")
        public static let portOrOff = Limit.integer(0...65_535, "a port, 0 for off")
        public static let count = Limit.integer(0...Int.max, "a count")
        public static let positiveCount = Limit.integer(1...Int.max, "a count")

        /// The sentence fragment a wrong value is told it must be.
        var expected: String {
            switch self {
            case let .integer(range, meaning):
                range.upperBound == Int.max
                    ? "an integer of at least \(range.lowerBound) (\(meaning))"
                    : "an integer from \(range.lowerBound) to \(range.upperBound) (\(meaning))"
            case let .number(range, meaning):
                "a number from \(format(range.lowerBound)) to \(format(range.upperBound)) (\(meaning))"
            }
        }

        /// The bounds alone, for `node.conf.sample`.
        var bounds: String {
            switch self {
            case let .integer(range, _):
                range.upperBound == Int.max ? "at least \(range.lowerBound)" : "\(range.lowerBound) to \(range.upperBound)"
            case let .number(range, _):
                "\(format(range.lowerBound)) to \(format(range.upperBound))"
            }
        }

        private func format(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
        }
    }

    public var name: String
    public var defaultValue: String
    public var type: ValueType
    public var help: String
    /// For `.integer` and `.number` keys: the values that make sense. Nil: any value of the type.
    public var limit: Limit?

    public init(_ name: String, _ defaultValue: String, _ type: ValueType, _ help: String, _ limit: Limit? = nil) {
        self.name = name
        self.defaultValue = defaultValue
        self.type = type
        self.help = help
        self.limit = limit
    }

    /// Checks `value` against the key's type and limit; returns the sentence fragment of what was
    /// expected, nil when the value is acceptable.
    ///
    /// Every value is text without control characters; a path is absolute and never climbs
    /// with `..`, because every module joins it with others and some run as root.
    func problem(_ value: String) -> String? {
        switch type {
        case .string, .list:
            return value.unicodeScalars.contains(where: isControl) ? "text without control characters" : nil
        case .path:
            if !value.hasPrefix("/") { return "an absolute path (starting with /)" }
            if value.unicodeScalars.contains(where: isControl) { return "a path without control characters" }
            if value.split(separator: "/").contains("..") { return "a path without '..' components" }
            return nil
        case .integer:
            guard let number = Int(value) else { return limit?.expected ?? "an integer" }
            if case let .integer(range, _) = limit, !range.contains(number) { return limit?.expected }
            return nil
        case .number:
            guard let number = Double(value), number.isFinite else { return limit?.expected ?? "a number" }
            if case let .number(range, _) = limit, !range.contains(number) { return limit?.expected }
            return nil
        case .boolean:
            return NodeConfiguration.parseBool(value) == nil ? "a boolean (true/false, yes/no, 1/0)" : nil
        }
    }
}

/// C0 controls and DEL: never part of a name, a path or a host, and they rewrite terminals.
func isControl(_ scalar: Unicode.Scalar) -> Bool { scalar.value < 0x20 || scalar.value == 0x7f }

extension NodeConfigKey {
    public static let all: [NodeConfigKey] = [
        .init("PUBLIC_HOSTNAME", "localhost", .string, "Public DNS name of this node, reported in facts."),
        .init("PUBLIC_IP", "127.0.0.1", .string, "Public IP address of this node, reported in endpoint notifications."),
        .init("BROKER_HOST", "localhost", .string, "Broker host for REST calls (unidle, deployments)."),
        .init("CLOUD_DOMAIN", "example.com", .string, "DNS suffix of application host names."),
        .init("EXTERNAL_ETH_DEV", "eth0", .string, "Public network interface (port proxy, traffic control)."),
        .init("INTERNAL_ETH_DEV", "", .string, "Internal network interface, if any."),
        .init("GEAR_BASE_DIR", "/var/lib/openshift", .path, "Parent directory of gear homes."),
        .init("GEAR_SKEL_DIR", "/etc/openshift/skel", .path, "Skeleton copied into new gear homes."),
        .init("GEAR_SHELL", "/usr/bin/oo-trap-user", .path, "Login shell of gear users."),
        .init("GEAR_TOOL", "", .string,
              "The in-gear gear command that git hooks and the broker's deploys run as the gear (empty: gear beside the node's programs)."),
        .init("KRB5_CONFIG_FILE", "/etc/krb5.conf", .path,
              "MIT Kerberos configuration; k5login_directory in its [libdefaults] puts gears' k5login files there (else ~/.k5login)."),
        .init("SYSLOG_GEAR_LOGIN", "true", .boolean,
              "oo-trap-user logs each SSH login to a gear (login, source address, gear, command) to syslog."),
        .init("GEAR_GECOS", "OpenShift guest", .string, "GECOS field that marks gear accounts."),
        .init("GEAR_SUPPLEMENTARY_GROUPS", "", .list, "Extra groups for gear users, comma separated."),
        .init("GEAR_MIN_UID", "1000", .integer, "Lowest uid of a gear when the broker sends none.", .uid),
        .init("GEAR_MAX_UID", "6999", .integer, "Highest uid of a gear when the broker sends none.", .uid),
        .init("CARTRIDGE_BASE_PATH", "/usr/libexec/openshift/cartridges", .path,
              "Cartridges installed by packages; rescanned into the repository."),
        .init("CARTRIDGE_REPO_DIR", "/var/lib/openshift/.cartridge_repository", .path,
              "The node's cartridge repository."),
        .init("CARTRIDGE_WATCH", "true", .boolean,
              "Watch CARTRIDGE_BASE_PATH with inotify and rescan when it changes."),
        .init("CARTRIDGE_RESCAN_DEBOUNCE_MS", "500", .integer,
              "Quiet time after the last change before a watched rescan starts.",
              .integer(0...3_600_000, "milliseconds")),
        .init("PORTS_PER_USER", "5", .integer, "Public proxy ports per gear uid.", .integer(1...65_535, "a port count")),
        .init("PORT_BEGIN", "35531", .integer, "First public proxy port.", .port),
        .init("UID_BEGIN", "500", .integer, "Uid mapped to the first proxy port slot.", .uidOffset),
        .init("WRAPAROUND_UID", "65536", .integer, "Uid modulus for loopback IP blocks.",
              .integer(1...131_072, "a uid modulus")),
        .init("IP_ADDRESS_WRAPAROUND_OFFSET", "1", .integer, "Block offset for uids at or above WRAPAROUND_UID.",
              .integer(0...999, "a block offset")),
        .init("LAST_ACCESS_DIR", "/var/lib/openshift/.last_access", .path, "Per-gear last access records."),
        .init("APACHE_ACCESS_LOG", "/var/log/apache2/openshift_log", .path, "Frontend access log."),
        .init("OPENSHIFT_HTTP_CONF_DIR", "/etc/apache2/conf.d/openshift", .path, "Frontend configuration directory."),
        .init("OPENSHIFT_FRONTEND_HTTP_PLUGINS", "apache", .list, "Frontend plugins, in order, comma separated."),
        .init("OPENSHIFT_HTTPS_LISTEN", "*:443", .string, "Address:port of the HTTPS virtual hosts of aliases with certificates."),
        .init("OPENSHIFT_HTTP_RELOAD", "/usr/sbin/apache2ctl graceful", .string,
              "Command (split on spaces, no shell) that gracefully reloads Apache after a certificate change, or when a gear backend appears or goes (workers.conf)."),
        .init("FRONTEND_WAKE_PORT", "8079", .integer, "Loopback port where the daemon wakes idle gears on their first request (0: off).", .portOrOff),
        .init("CONTAINERIZATION_PLUGIN", "selinux", .string, "Container plugin: selinux (node mode) or sandbox."),
        .init("CREATE_APP_SYMLINKS", "false", .boolean, "Create name-to-uuid debug symlinks in GEAR_BASE_DIR."),
        .init("DISABLE_PASSWORD_AGING", "true", .boolean, "Disable password aging on gear accounts."),
        .init("USER_VARIABLE_MAX_COUNT", "50", .integer, "Most user environment variables per gear.", .count),
        .init("QUOTA_WARNING_PERCENT", "90.0", .number, "Disk quota warning watermark.", .number(0...100, "a percentage")),
        .init("TRAFFIC_CONTROL_ENABLED", "false", .boolean, "Per-gear traffic control classes."),
        .init("SELINUX_MCS_SET_SIZE", "1024", .integer, "Number of MCS categories.",
              .integer(1...65_536, "a category count")),
        .init("SELINUX_MCS_GROUP_SIZE", "2", .integer, "Categories per gear label.",
              .integer(1...16, "a category count")),
        .init("SELINUX_MCS_UID_OFFSET", "0", .integer, "Uid offset of the MCS formula.", .uidOffset),
        .init("SELINUX_MLS_NUM", "0", .integer, "MLS sensitivity of gear labels.",
              .integer(0...1023, "a sensitivity")),
        .init("OPENSHIFT_CGROUP_ROOT", "/openshift", .string, "Parent cgroup of gear cgroups."),
        .init("PLATFORM_LOG_FILE", "/var/log/openshift/node/platform.log", .path, "Node log file."),
        .init("PLATFORM_LOG_LEVEL", "info", .string, "Node log level: trace, debug, info, notice, warning, error."),
        .init("MCOLLECTIVE_CONFIG", "/etc/mcollective/server.cfg", .path,
              "MCollective server.cfg (identity, collectives, plugin.psk, broker pool) for the mcollective transport."),
        .init("AGENT_TRANSPORTS", "mcollective,local", .list,
              "Transports of the agent: mcollective (when MCOLLECTIVE_CONFIG exists) and local (the Unix socket)."),
        .init("AGENT_SOCKET", "/var/run/openshift/node-agent.sock", .path,
              "Unix socket of the local transport (JSON lines); admin commands use it when the daemon runs."),
        .init("AGENT_MAX_CONCURRENT", "8", .integer, "Agent actions that run at once; more wait in order.",
              .integer(1...1024, "a count")),
        .init("AGENT_GEAR_QUEUE", "8", .integer,
              "Agent requests one gear may have running or waiting; more are refused at once (one gear cannot take the node's threads).",
              .integer(1...1024, "a count")),
        .init("AGENT_ACTION_TIMEOUT", "234", .integer,
              "Seconds before an action's requester is told it timed out (65% of the DDL's 360 s, as the original).",
              .integer(1...86_400, "seconds")),
    ]

    public static let byName: [String: NodeConfigKey] = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })
}
