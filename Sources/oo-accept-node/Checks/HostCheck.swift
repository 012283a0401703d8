import Containment
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// SELinux, cgroups, quotas and traffic control: what the host provides is reported; only what
/// contradicts the node's configuration fails (limits configured that the kernel cannot apply,
/// a container plugin the node does not have).
struct HostCheck: NodeCheck {
    let name = "selinux, cgroups and quotas"

    func run(_ node: NodeUnderTest) -> [Finding] {
        if node.isSandbox {
            return [.note("sandbox mode: gears are directories of the invoking user, without accounts, SELinux labels, cgroups or quotas")]
        }
        let configured = node.configuration.string("CONTAINERIZATION_PLUGIN")
        guard ["selinux", "sandbox"].contains(configured) else {
            return [.fail("CONTAINERIZATION_PLUGIN '\(configured)' in node.conf is no container plugin of this node: every gear command fails",
                          fix: "set CONTAINERIZATION_PLUGIN=selinux (or sandbox)")]
        }
        guard configured == "selinux" else {
            return [.note("CONTAINERIZATION_PLUGIN=sandbox: gears are directories of whoever creates them, without accounts, labels, cgroups or quotas")]
        }
        var findings: [Finding] = []
        findings.append(.note(SELinux.isEnabled
            ? "SELinux is enabled: gear files and processes get their MCS labels"
            : "SELinux is disabled: gears' MCS labels are computed and reported, not applied"))
        findings += cgroupFindings(node)
        let quota = DiskQuota(path: node.gearBaseDir)
        findings.append(.note(quota.supported ? "disk quotas: \(quota.reason)" : "disk quotas are off (\(quota.reason)): gears' disk use is not limited"))
        if node.configuration.boolean("TRAFFIC_CONTROL_ENABLED") {
            findings.append(.warn("TRAFFIC_CONTROL_ENABLED=true in node.conf, but this node does not shape gears' network traffic",
                                  fix: "set TRAFFIC_CONTROL_ENABLED=false, or shape the traffic outside the node"))
        }
        return findings
    }

    /// The controllers the configured limits need, against what the kernel has mounted. (The
    /// process limit needs none: `oo-gear-exec` also sets it as an rlimit.)
    func cgroupFindings(_ node: NodeUnderTest) -> [Finding] {
        let file = node.layout.resolve("/etc/openshift/resource_limits.conf")
        let limits = (FileSystem.read(file).flatMap { try? ResourceLimits(parsing: $0, file: file) } ?? ResourceLimits()).cgroupLimits
        var wanted: [(controller: String, limit: String)] = []
        if limits.memoryBytes != nil { wanted.append(("memory", "memory_limit_in_bytes")) }
        if limits.cpuShares != nil || limits.cpuQuotaMicroseconds != nil { wanted.append(("cpu", "cpu_shares/cpu_cfs_quota_us")) }
        let parent = node.configuration.string("OPENSHIFT_CGROUP_ROOT")
        let available: Set<String>
        let location: String
        switch CgroupHierarchy.detect() {
        case nil:
            guard !wanted.isEmpty else { return [.note("no cgroup hierarchy is mounted and no cgroup limit is configured")] }
            return [.fail("no cgroup hierarchy is mounted, but \(file) limits gears with \(wanted.map(\.limit).joined(separator: ", "))",
                          fix: "mount cgroup2 on /sys/fs/cgroup (or the v1 controllers memory, cpu and pids), or remove those limits")]
        case .v2(let root):
            available = Set((FileSystem.read(root + "/cgroup.controllers") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
            location = "cgroup v2 at \(root)"
        case .v1(let controllers):
            available = Set(controllers.keys)
            location = "cgroup v1 (\(controllers.keys.sorted().joined(separator: ", ")))"
        }
        let missing = wanted.filter { !available.contains($0.controller) }
        var findings: [Finding] = [.note("cgroups: \(location); gears' cgroups are under \(parent)")]
        if !missing.isEmpty {
            findings.append(.fail("\(location) lacks the \(missing.map(\.controller).joined(separator: ", ")) controller(s) that \(file) needs for "
                                  + missing.map(\.limit).joined(separator: ", "),
                                  fix: "make the controllers available to the node (kernel configuration, or delegation to its cgroup), or remove those limits"))
        }
        return findings
    }
}
