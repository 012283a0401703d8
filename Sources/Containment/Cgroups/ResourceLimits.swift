import NodeConfig

/// `resource_limits.conf`: the node profile's per-gear limits.
///
/// Shell-style `key=value` lines at the top, then optional `[section]` blocks (cgroup templates
/// such as `[cg_template_throttled]`). Values are read with the `node.conf` parser, so a bad line
/// is reported with its file and line.
public struct ResourceLimits: Sendable, Equatable {
    public var values: [String: String]
    public var sections: [String: [String: String]]

    /// The shipped "small" profile's values.
    public static let defaults: [String: String] = [
        "node_profile": "small", "max_active_gears": "60", "quota_files": "80000", "quota_blocks": "1048576",
        "memory_limit_in_bytes": "536870912", "memory_memsw_limit_in_bytes": "641728512", "cpu_shares": "128",
        "cpu_cfs_quota_us": "200000", "limits_nproc": "250",
    ]

    public init(values: [String: String] = ResourceLimits.defaults, sections: [String: [String: String]] = [:]) {
        self.values = values
        self.sections = sections
    }

    public init(parsing text: String, file: String) throws(NodeConfigError) {
        var values = Self.defaults
        var sections: [String: [String: String]] = [:]
        var section: String?
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.drop(while: { $0 == " " || $0 == "\t" })
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw .malformedLine(file: file, line: lineNumber, text: String(raw), reason: "expected [section]")
                }
                section = String(line.dropFirst().dropLast())
                sections[section!, default: [:]] = [:]
                continue
            }
            // One line through the node.conf parser, keeping the real line number.
            let entries = try NodeConfParser.parse(String(repeating: "\n", count: lineNumber - 1) + line, file: file)
            for entry in entries {
                let key = entry.key == "max_active_apps" ? "max_active_gears" : entry.key
                if let section { sections[section]![key] = entry.value } else { values[key] = entry.value }
            }
        }
        self.values = values
        self.sections = sections
    }

    public func integer(_ key: String) -> Int? { values[key].flatMap { Int($0) } }

    /// The cgroup limits of a gear under this profile.
    public var cgroupLimits: CgroupLimits {
        CgroupLimits(memoryBytes: integer("memory_limit_in_bytes"), memoryAndSwapBytes: integer("memory_memsw_limit_in_bytes"),
                     cpuShares: integer("cpu_shares"), cpuQuotaMicroseconds: integer("cpu_cfs_quota_us"),
                     processes: integer("limits_nproc"))
    }
}

/// The limits a gear's cgroup enforces; nil means "not limited".
public struct CgroupLimits: Sendable, Equatable {
    public var memoryBytes: Int?
    public var memoryAndSwapBytes: Int?
    public var cpuShares: Int?
    public var cpuQuotaMicroseconds: Int?
    public var cpuPeriodMicroseconds = 100_000
    public var processes: Int?

    public init(memoryBytes: Int? = nil, memoryAndSwapBytes: Int? = nil, cpuShares: Int? = nil,
                cpuQuotaMicroseconds: Int? = nil, processes: Int? = nil) {
        self.memoryBytes = memoryBytes
        self.memoryAndSwapBytes = memoryAndSwapBytes
        self.cpuShares = cpuShares
        self.cpuQuotaMicroseconds = cpuQuotaMicroseconds
        self.processes = processes
    }
}
