import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// `gear snapshot`: the reference's snapshot (section 5.1) without the scaled-application broker
/// calls. The gear is stopped (an idle or stopped gear is left as it is), each cartridge's
/// `control pre-snapshot` runs, `/bin/tar` writes a gzip tar of the home straight to stdout
/// (members `./<uuid>/...`, cwd the parent of the home), `control post-snapshot` runs, and the
/// gear is started again if it was started, whatever failed in between.
///
/// The original's exclusions, every cartridge's `snapshot_exclusions`, and what the original
/// leaked (weakness 6): the broker auth token (`.auth/`), the gear's private keys (everything in
/// `.openshift_ssh/` but `*.pub`, `known_hosts` and `config`), and `app-root/data/.bash_history`
/// (the original's pattern never matched).
public struct GearSnapshot {
    public let gear: InGear
    let say: (String) -> Void

    public init(gear: InGear, say: @escaping (String) -> Void) {
        self.gear = gear
        self.say = say
    }

    /// The tar command line: `-C` the parent of the home, members `./<uuid>/...`.
    public var tarArguments: [String] {
        let parent = String(gear.home[..<(gear.home.lastIndex(of: "/") ?? gear.home.startIndex)])
        let top = "./" + gear.uuid
        var excluded = [".tmp", ".ssh", ".sandbox", "*/conf.d/openshift.conf", "*/run/httpd.pid", "haproxy*/run/stats",
                        "app-root/runtime/.state", "app-root/runtime/.preupgrade_state", "app-root/runtime/.upgrade_itinerary",
                        "app-root/runtime/.upgrade_complete*", "app-root/runtime/repo", "app-root/runtime/dependencies",
                        "app-root/runtime/build-dependencies", "app-root/runtime/.deploy.lock", "app-root/data/.bash_history", ".auth"]
        excluded += privateKeyFiles.map { ".openshift_ssh/" + Self.escapedPattern($0) }
        for (cartridge, rules) in gear.snapshotRules {
            for entry in rules.exclusions {
                if let pattern = Self.sanitizedExclusion(entry) {
                    excluded.append(pattern)
                } else {
                    say("Ignoring snapshot exclusion \(InGearError.quoted(entry)) of cartridge \(cartridge): not a path inside the gear")
                }
            }
        }
        return ["/bin/tar", "--create", "--gzip", "--file=-", "--ignore-failed-read", "--format=gnu", "--directory=" + (parent.isEmpty ? "/" : parent)]
            + excluded.map { "--exclude=\(top)/\($0)" } + ["--", top]
    }

    /// Files of `.openshift_ssh` that may hold a private key: all but public keys, `known_hosts`
    /// and `config`.
    var privateKeyFiles: [String] {
        (FileSystem.entries(gear.home + "/.openshift_ssh") ?? []).filter {
            !$0.hasSuffix(".pub") && $0 != "known_hosts" && $0 != "config"
        }
    }

    /// A name as a tar pattern that matches only itself.
    static func escapedPattern(_ name: String) -> String {
        var out = ""
        for character in name {
            if "*?[]\\".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }

    /// A cartridge's exclusion as a home-relative pattern (`~/` dropped, trailing `/` dropped), or
    /// nil when it is absolute or climbs out with `..`.
    static func sanitizedExclusion(_ entry: String) -> String? {
        var value = entry.hasPrefix("~/") ? String(entry.dropFirst(2)) : entry
        while value.hasSuffix("/") { value.removeLast() }
        guard !value.isEmpty, !value.hasPrefix("/"), !value.split(separator: "/").contains("..") else { return nil }
        return value
    }

    /// Streams the archive to `output` (stdout by default).
    public func run(output: Int32 = 1) throws(InGearError) {
        let controller = GearController(gear: gear)
        try controller.whileStopped(say: say) { () throws(InGearError) in
            say(try controller.hook("pre-snapshot"))
            say("Creating and sending tar.gz")
            try writeArchive(output: output)
            say(try controller.hook("post-snapshot"))
        }
    }

    func writeArchive(output: Int32) throws(InGearError) {
        let (status, messages) = try ChildProcess.run(tarArguments, output: output)
        switch status {
        case 0:
            if !messages.isEmpty { say(messages) }
        case 1:
            // GNU tar: some files changed or vanished while read; the archive is complete.
            say(messages + "tar: some files changed while they were read; the archive is complete")
        default:
            throw .toolFailed(program: "/bin/tar", status: status, output: messages)
        }
    }
}
