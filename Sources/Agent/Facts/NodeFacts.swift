import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Gears
import NodeConfig

/// The facts a node publishes (reference/message-agent.md C.2), computed when asked from the
/// live repository, gears and configuration: never from a file a cron job wrote a minute ago.
///
/// Values are Strings, as MCollective's fact store holds them, so filters compare as they did.
/// Differences from the original, on purpose: every fact has a value (district facts default
/// to NONE/false/1000/6999 without a district), usage percentages are "100.0" rather than
/// Infinity/NaN when `max_active_gears` is 0 (the node is full either way), `host_ip` is read
/// with getifaddrs, and the dead `git_repos` is gone.
public enum NodeFacts {
    public static func compute(_ context: NodeContext) -> [(name: String, value: String)] {
        let configuration = context.configuration
        let limits = context.resourceLimits
        var facts: [(String, String)] = []

        let district = District.read(gearBaseDir: context.layout.gearBaseDir)
        facts.append(("district_uuid", district?.uuid ?? "NONE"))
        facts.append(("district_active", String(district?.active ?? false)))
        facts.append(("district_first_uid", String(district?.firstUID ?? 1000)))
        facts.append(("district_max_uid", String(district?.maxUID ?? 6999)))

        facts.append(("public_ip", configuration.string("PUBLIC_IP")))
        facts.append(("public_hostname", configuration.string("PUBLIC_HOSTNAME")))
        let hostIP = ipv4Address(of: configuration.string("EXTERNAL_ETH_DEV"))
        facts.append(("host_ip", hostIP ?? ""))

        let maxActive = Int(limits["max_active_gears"] ?? limits["max_active_apps"] ?? "") ?? 0
        facts.append(("node_profile", limits["node_profile"] ?? "small"))
        facts.append(("max_active_gears", String(maxActive)))
        facts.append(("no_overcommit_active", String(NodeConfiguration.parseBool(limits["no_overcommit_active"] ?? "") ?? false)))
        facts.append(("quota_blocks", limits["quota_blocks"] ?? "1048576"))
        facts.append(("quota_files", limits["quota_files"] ?? "80000"))

        var disk = statvfs()
        if statvfs(context.layout.gearBaseDir, &disk) == 0 {
            let unit = UInt64(disk.f_frsize) / 1024
            facts.append(("node_disk_free", String(UInt64(disk.f_bavail) * unit)))
            facts.append(("node_total_size", String(UInt64(disk.f_blocks) * unit)))
        } else {
            facts.append(("node_disk_free", "0"))
            facts.append(("node_total_size", "0"))
        }

        var counts: [GearState: Int] = [:]
        let gears = context.gears.allGears()
        for gear in gears { counts[context.gears.state(gear), default: 0] += 1 }
        let total = gears.count
        let idle = counts[.idle] ?? 0
        let stopped = counts[.stopped] ?? 0
        let active = total - idle - stopped
        facts.append(("gears_total_count", String(total)))
        facts.append(("gears_idle_count", String(idle)))
        facts.append(("gears_stopped_count", String(stopped)))
        facts.append(("gears_started_count", String(counts[.started] ?? 0)))
        facts.append(("gears_deploying_count", String((counts[.new] ?? 0) + (counts[.building] ?? 0) + (counts[.deploying] ?? 0))))
        facts.append(("gears_unknown_count", String(counts[.unknown] ?? 0)))
        facts.append(("gears_active_count", String(active)))
        let usage = percent(total, of: maxActive)
        let activeUsage = percent(active, of: maxActive)
        facts.append(("gears_usage_pct", usage))
        facts.append(("gears_active_usage_pct", activeUsage))
        facts.append(("capacity", usage))
        facts.append(("active_capacity", activeUsage))

        let cartridges = context.repository.snapshot.latestVersions().map { "\($0.name)-\($0.version)" }
        facts.append(("cart_list", Array(Set(cartridges)).sorted().joined(separator: "|")))

        var name = utsname()
        uname(&name)
        facts.append(("kernel", field(name.sysname)))
        facts.append(("hostname", field(name.nodename).split(separator: ".").first.map(String.init) ?? ""))
        facts.append(("fqdn", field(name.nodename)))
        facts.append(("architecture", field(name.machine)))
        facts.append(("ipaddress", hostIP ?? configuration.string("PUBLIC_IP")))
        return facts
    }

    public static func value(_ name: String, in facts: [(name: String, value: String)]) -> String? {
        facts.first { $0.name == name }?.value
    }

    /// Ruby's `Float#to_s` of count × 100 / max, or "100.0" when there is no capacity at all.
    static func percent(_ count: Int, of max: Int) -> String {
        guard max > 0 else { return "100.0" }
        return rubyFloat(Double(count) * 100.0 / Double(max))
    }

    /// Formats like Ruby's `Float#to_s` for the values facts hold (`12.5`, `0.0`, `33.333333333333336`).
    static func rubyFloat(_ value: Double) -> String {
        var text = "\(value)"
        if !text.contains(".") && !text.contains("e") && value.isFinite { text += ".0" }
        return text
    }

    static func ipv4Address(of interface: String) -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let address = entry.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET),
                  String(cString: entry.pointee.ifa_name) == interface else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(address, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 {
                return String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        return nil
    }

    static func field<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

extension OpenShiftAgent {
    /// `get_facts`: Symbol(fact) → value, nil for a fact this node does not know.
    func getFacts(_ inputs: Inputs) -> AgentReply {
        let names: [String]
        switch inputs["facts"] {
        case .array(let items)?: names = items.compactMap(\.string)
        case .string(let text)? where text.hasPrefix("["):
            // `mco rpc openshift get_facts 'facts=["a","b"]'` sends the list as its JSON text.
            guard let list = try? JSONDecoder().decode([String].self, from: Data(text.utf8)) else {
                return .failure(4, "facts: expected a list of fact names, found '\(text.prefix(80))'")
            }
            names = list
        case .string(let text)?: names = text.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        default: names = []
        }
        let facts = NodeFacts.compute(context)
        let pairs = names.map { AgentValue.Pair(.symbol($0), NodeFacts.value($0, in: facts).map(AgentValue.string) ?? .null) }
        return AgentReply(data: .symbols(["output": .hash(pairs)]))
    }
}
