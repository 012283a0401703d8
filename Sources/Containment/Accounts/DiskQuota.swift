import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Per-gear disk quotas, where the file system holding the gears has user quotas on.
///
/// `setquota` (from the `quota` package) sets hard block and inode limits for the gear's user on
/// that file system; removal sets them back to zero. On a file system without user quotas the
/// node says so (`supported` is false, with the reason) instead of pretending.
public struct DiskQuota: Sendable, Equatable {
    public let mountPoint: String
    public let supported: Bool
    public let reason: String

    /// Reads the mount table for the file system holding `path`.
    public init(path: String, mounts: String? = nil, setquota: String = "/usr/sbin/setquota") {
        let table = mounts ?? ((try? String(readingFile: "/proc/self/mounts")) ?? "")
        var best: (point: String, options: [Substring])?
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            let point = String(fields[1])
            let covers = point == "/" || path == point || path.hasPrefix(point + "/")
            if covers && point.count >= (best?.point.count ?? -1) { best = (point, fields[3].split(separator: ",")) }
        }
        mountPoint = best?.point ?? "/"
        let options = best?.options ?? []
        let hasUserQuota = options.contains { $0 == "usrquota" || $0 == "quota" || $0.hasPrefix("usrjquota=") }
        if !hasUserQuota {
            supported = false
            reason = "user quotas are not enabled on \(mountPoint)"
        } else if access(setquota, X_OK) != 0 {
            supported = false
            reason = "\(setquota) is missing (install the quota package)"
        } else {
            supported = true
            reason = "user quotas on \(mountPoint)"
        }
    }

    public func set(user: String, blocks: Int, inodes: Int) throws(ContainmentError) {
        guard supported else { return }
        try run(["/usr/sbin/setquota", "-u", user, "0", "\(blocks)", "0", "\(inodes)", mountPoint])
    }

    public func clear(uid: UInt32) throws(ContainmentError) {
        guard supported else { return }
        try run(["/usr/sbin/setquota", "-u", "#\(uid)", "0", "0", "0", "0", mountPoint])
    }

    private func run(_ argv: [String]) throws(ContainmentError) {
        let result: Spawner.Result
        do { result = try Spawner.run(argv, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], timeoutSeconds: 30) } catch {
            throw ContainmentError(error)
        }
        guard result.status == 0 else {
            throw .toolFailed(step: "setquota", arguments: argv.dropFirst().joined(separator: " "), status: result.status,
                              output: (result.stderr + result.stdout).split(separator: "\n").first.map(String.init) ?? "")
        }
    }
}
