import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Unix users and groups for gears, through the system's own tools (`groupadd`, `useradd`,
/// `userdel`, `groupdel`) run from argv arrays, and lookups through NSS (`getpwnam`,
/// `getgrgid`), which sees every account source, not only the `/etc/passwd` text.
public enum UnixAccounts {
    public struct Account: Sendable, Equatable {
        public var name: String
        public var uid: UInt32
        public var gid: UInt32
        public var home: String
        public var gecos: String
    }

    public static func user(named name: String) -> Account? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return Account(name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid,
                       home: String(cString: entry.pw_dir), gecos: String(cString: entry.pw_gecos))
    }

    public static func uidExists(_ uid: UInt32) -> Bool {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16384)
        return getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0 && result != nil
    }

    public static func gidExists(_ gid: UInt32) -> Bool {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        return getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0 && result != nil
    }

    public static func groupID(named name: String) -> UInt32? {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        guard getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return entry.gr_gid
    }

    public static func groupExists(named name: String) -> Bool {
        var entry = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 65536)
        return getgrnam_r(name, &entry, &buffer, buffer.count, &result) == 0 && result != nil
    }

    /// The lowest id in `range` used neither as a uid nor as a gid. One pass over the account
    /// databases (NSS enumeration), then direct lookups to confirm: linear in the number of
    /// accounts, not in the number of accounts times the number of ids tried.
    public static func lowestFreeID(in range: ClosedRange<UInt32>, excluding taken: Set<UInt32> = []) -> UInt32? {
        var used = taken
        setpwent()
        while let entry = getpwent() { if range.contains(entry.pointee.pw_uid) { used.insert(entry.pointee.pw_uid) } }
        endpwent()
        setgrent()
        while let entry = getgrent() { if range.contains(entry.pointee.gr_gid) { used.insert(entry.pointee.gr_gid) } }
        endgrent()
        // Sources that do not enumerate (some directory services) are still asked directly.
        return range.lazy.filter { !used.contains($0) }.first { !uidExists($0) && !gidExists($0) }
    }

    static let tools = ["/usr/sbin/groupadd", "/usr/sbin/useradd", "/usr/sbin/userdel", "/usr/sbin/groupdel"]
    static let environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"]

    public static func addGroup(name: String, gid: UInt32) throws(ContainmentError) {
        try tool(["/usr/sbin/groupadd", "-g", "\(gid)", name], step: "groupadd")
    }

    /// `useradd` without copying a skeleton (the node builds the home itself).
    public static func addUser(name: String, uid: UInt32, gid: UInt32, home: String, shell: String, gecos: String,
                               supplementaryGroups: [String], disablePasswordAging: Bool) throws(ContainmentError) {
        var argv = ["/usr/sbin/useradd", "-u", "\(uid)", "-g", "\(gid)", "-d", home, "-s", shell, "-c", gecos, "-M", "-N"]
        if disablePasswordAging { argv += ["-K", "PASS_MAX_DAYS=-1", "-K", "PASS_MIN_DAYS=-1", "-K", "PASS_WARN_AGE=-1"] }
        if !supplementaryGroups.isEmpty { argv += ["-G", supplementaryGroups.joined(separator: ",")] }
        try tool(argv + [name], step: "useradd")
    }

    /// Removes the user (not its home: the caller removes that); a missing user is fine.
    public static func deleteUser(name: String) throws(ContainmentError) {
        guard user(named: name) != nil else { return }
        try tool(["/usr/sbin/userdel", "-f", name], step: "userdel")
    }

    public static func deleteGroup(name: String) throws(ContainmentError) {
        guard groupExists(named: name) else { return }
        try tool(["/usr/sbin/groupdel", name], step: "groupdel")
    }

    /// Waits (at most 30 s) until no account tool runs for `name`: a `useradd` whose caller was
    /// killed goes on to the end on its own, and must not add the account after a cleanup.
    public static func waitForAccountTools(of name: String) {
        let deadline = monotonicSeconds() + 30
        while monotonicSeconds() < deadline {
            let running = processes { info in
                guard info.uid == 0, let cmdline = info.procFile("cmdline") else { return false }
                let argv = cmdline.split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
                return tools.contains(argv.first ?? "") && argv.contains(name)
            }
            if running.isEmpty { return }
            usleep(10_000)
        }
    }

    private static func tool(_ argv: [String], step: String) throws(ContainmentError) {
        let result: Spawner.Result
        do { result = try Spawner.run(argv, environment: environment, timeoutSeconds: 60) } catch { throw ContainmentError(error) }
        guard result.status == 0 else {
            let detail = (result.stderr + result.stdout).split(separator: "\n").first.map(String.init) ?? "exit \(result.status)"
            throw .toolFailed(step: step, arguments: argv.dropFirst().joined(separator: " "), status: result.status, output: detail)
        }
    }
}
