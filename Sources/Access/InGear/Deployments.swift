import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// One deployment's `metadata.json`: the original's keys, in its order.
public struct DeploymentMetadata: Sendable, Equatable {
    public var gitRef = "master"
    public var gitSHA1: String?
    public var id: String?
    public var hotDeploy: Bool?
    public var forceCleanBuild: Bool?
    public var activations: [Double] = []
    public var checksum: String?

    public init() {}

    /// Parses the file's text; anything unreadable gives the defaults for its fields.
    public init(json text: String) {
        guard let fields = try? JSONDecoder().decode(Fields.self, from: Data(text.utf8)) else { return }
        gitRef = fields.gitRef ?? "master"
        gitSHA1 = fields.gitSHA1
        id = fields.id
        hotDeploy = fields.hotDeploy
        forceCleanBuild = fields.forceCleanBuild
        activations = fields.activations
        checksum = fields.checksum
    }

    /// The file's object, each field read on its own: a field of the wrong type is absent, and
    /// an activation that is not a number is skipped.
    private struct Fields: Decodable {
        var gitRef, gitSHA1, id, checksum: String?
        var hotDeploy, forceCleanBuild: Bool?
        var activations: [Double] = []

        enum Key: String, CodingKey {
            case gitRef = "git_ref", gitSHA1 = "git_sha1", id, checksum
            case hotDeploy = "hot_deploy", forceCleanBuild = "force_clean_build", activations
        }

        /// Decodes any JSON value and keeps nothing: how an unreadable item is stepped over.
        struct Skipped: Decodable { init(from decoder: any Decoder) {} }

        init(from decoder: any Decoder) throws {
            let object = try decoder.container(keyedBy: Key.self)
            gitRef = try? object.decodeIfPresent(String.self, forKey: .gitRef)
            gitSHA1 = try? object.decodeIfPresent(String.self, forKey: .gitSHA1)
            id = try? object.decodeIfPresent(String.self, forKey: .id)
            checksum = try? object.decodeIfPresent(String.self, forKey: .checksum)
            hotDeploy = try? object.decodeIfPresent(Bool.self, forKey: .hotDeploy)
            forceCleanBuild = try? object.decodeIfPresent(Bool.self, forKey: .forceCleanBuild)
            if var list = try? object.nestedUnkeyedContainer(forKey: .activations) {
                while !list.isAtEnd {
                    if let time = try? list.decode(Double.self) {
                        activations.append(time)
                    } else if (try? list.decode(Skipped.self)) == nil {
                        break
                    }
                }
            }
        }
    }

    public var json: String {
        func text(_ value: String?) -> String { value.map(Self.quoted) ?? "null" }
        func flag(_ value: Bool?) -> String { value.map { $0 ? "true" : "false" } ?? "null" }
        let times = activations.map { CFormat.string("%.7f", $0) }.joined(separator: ",")
        return #"{"git_ref":\#(Self.quoted(gitRef)),"git_sha1":\#(text(gitSHA1)),"id":\#(text(id)),"hot_deploy":\#(flag(hotDeploy)),"#
            + #""force_clean_build":\#(flag(forceCleanBuild)),"activations":[\#(times)],"checksum":\#(text(checksum))}"#
    }

    static func quoted(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out += scalar.value < 0x20 ? CFormat.string("\\u%04x", scalar.value) : String(scalar)
            }
        }
        return out + "\""
    }
}

/// A deployment directory of `app-deployments/`.
public struct Deployment: Sendable, Equatable {
    /// `YYYY-MM-DD_HH-MM-SS.mmm`, the directory's name.
    public var datetime: String
    public var metadata: DeploymentMetadata
    public var lastActivation: Double? { metadata.activations.max() }
}

/// The gear's `app-deployments/` as the gear itself keeps it (reference layout):
///
///     app-deployments/<datetime>/{repo,dependencies,build-dependencies,metadata.json}
///     app-deployments/by-id/<id> -> ../<datetime>
///     app-deployments/current -> <datetime>
///
/// and `app-root/runtime/{repo,dependencies,build-dependencies}` as links through `current`, so
/// that switching deployments is one `rename` of the `current` link. Everything here runs as the
/// gear's user.
public struct DeploymentStore {
    public let home: String
    public var root: String { home + "/app-deployments" }
    public static let parts = ["repo", "dependencies", "build-dependencies"]

    public init(home: String) { self.home = home }

    public func path(_ datetime: String) -> String { root + "/" + datetime }

    /// Whether `name` is a deployment directory's name (never a path: checked before use).
    public static func isDatetime(_ name: String) -> Bool {
        // 0000-00-00_00-00-00.000: digits, with these separators at these places.
        name.utf8.count == 23 && zip(name.utf8, "0000-00-00_00-00-00.000".utf8).allSatisfy { byte, shape in
            shape == UInt8(ascii: "0") ? ASCII.isDigit(byte) : byte == shape
        }
    }

    public static func isID(_ id: String) -> Bool {
        id.utf8.count == 8 && id.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    /// Every deployment directory, oldest name first.
    public func all() -> [Deployment] {
        (FileSystem.entries(root) ?? []).filter(Self.isDatetime).sorted().map { Deployment(datetime: $0, metadata: metadata($0)) }
    }

    public func metadata(_ datetime: String) -> DeploymentMetadata {
        guard let text = FileSystem.read(path(datetime) + "/metadata.json", limit: 1 << 20) else { return DeploymentMetadata() }
        return DeploymentMetadata(json: text)
    }

    public func save(_ metadata: DeploymentMetadata, _ datetime: String) throws(InGearError) {
        do throws(SystemError) {
            try FileSystem.writeAtomically(path(datetime) + "/metadata.json", Array((metadata.json + "\n").utf8), mode: 0o640)
        } catch {
            throw .system(error)
        }
    }

    /// The datetime `current` names, when it names an existing deployment.
    public var current: String? {
        guard let target = Self.readLink(root + "/current"), Self.isDatetime(target), access(path(target), F_OK) == 0 else { return nil }
        return target
    }

    public func datetime(ofID id: String) -> String? {
        guard Self.isID(id), let target = Self.readLink(root + "/by-id/" + id), target.hasPrefix("../") else { return nil }
        let name = String(target.dropFirst(3))
        return Self.isDatetime(name) && access(path(name), F_OK) == 0 ? name : nil
    }

    static func readLink(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink(path, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A new, empty deployment directory with its three parts (0750) and a fresh id linked from
    /// `by-id/`, named by the current time in milliseconds (unique: the next millisecond is taken
    /// when the name exists).
    public func create(_ metadata: DeploymentMetadata) throws(InGearError) -> (datetime: String, id: String) {
        try makeDirectory(root, mode: 0o750)
        try makeDirectory(root + "/by-id", mode: 0o750)
        var datetime = Self.now()
        while mkdir(path(datetime), 0o750) != 0 {
            guard errno == EEXIST else { throw .system(SystemError(step: "mkdir", path: path(datetime), errno: errno)) }
            usleep(1000)
            datetime = Self.now()
        }
        for part in Self.parts { try makeDirectory(path(datetime) + "/" + part, mode: 0o750) }
        var id = ""
        repeat {
            id = (0..<4).map { _ in CFormat.string("%02x", UInt8.random(in: 0...255)) }.joined()
        } while Glibc.symlink("../" + datetime, root + "/by-id/" + id) != 0 && errno == EEXIST
        var saved = metadata
        saved.id = id
        try save(saved, datetime)
        return (datetime, id)
    }

    func makeDirectory(_ path: String, mode: mode_t) throws(InGearError) {
        guard mkdir(path, mode) == 0 || errno == EEXIST else { throw .system(SystemError(step: "mkdir", path: path, errno: errno)) }
    }

    /// Local time `YYYY-MM-DD_HH-MM-SS.mmm`, as the original named deployments.
    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        var seconds = spec.tv_sec
        var parts = tm()
        localtime_r(&seconds, &parts)
        return CFormat.string("%04d-%02d-%02d_%02d-%02d-%02d.%03d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
                      parts.tm_hour, parts.tm_min, parts.tm_sec, Int(spec.tv_nsec / 1_000_000))
    }

    /// Points `current` at `datetime` in one rename, and makes sure the runtime's
    /// `repo`, `dependencies` and `build-dependencies` are the links through it (a gear created
    /// with directories there gets the links at its first activation).
    public func switchCurrent(to datetime: String) throws(InGearError) {
        let temporary = root + "/.current.\(getpid())"
        unlink(temporary)
        guard symlink(datetime, temporary) == 0 else { throw .system(SystemError(step: "symlink", path: temporary, errno: errno)) }
        guard rename(temporary, root + "/current") == 0 else {
            let code = errno
            unlink(temporary)
            throw .system(SystemError(step: "rename", path: root + "/current", errno: code))
        }
        try linkRuntime()
    }

    /// `app-root/runtime/<part>` -> `../../app-deployments/current/<part>`.
    func linkRuntime() throws(InGearError) {
        for part in Self.parts {
            let runtime = home + "/app-root/runtime/" + part
            let target = "../../app-deployments/current/" + part
            if Self.readLink(runtime) == target { continue }
            var st = stat()
            let aside = runtime + ".replaced.\(getpid())"
            if lstat(runtime, &st) == 0 {
                guard rename(runtime, aside) == 0 else { throw .system(SystemError(step: "rename", path: runtime, errno: errno)) }
            }
            guard symlink(target, runtime) == 0 else { throw .system(SystemError(step: "symlink", path: runtime, errno: errno)) }
            FileSystem.removeTree(aside)
        }
    }

    /// Appends the time of an activation to the deployment's metadata.
    public func recordActivation(_ datetime: String) throws(InGearError) {
        var metadata = self.metadata(datetime)
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        metadata.activations.append(Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9)
        try save(metadata, datetime)
    }

    /// Takes back the activation just recorded (an activation that failed and was switched back).
    public func dropLastActivation(_ datetime: String) throws(InGearError) {
        var metadata = self.metadata(datetime)
        guard !metadata.activations.isEmpty else { return }
        metadata.activations.removeLast()
        try save(metadata, datetime)
    }

    /// Removes the oldest deployments (by last activation; never activated ones by their
    /// creation) until at most `keep` remain; the current one and those in `sparing` (the one
    /// just built, kept for inspection when it failed) always stay. Returns the removed names.
    @discardableResult
    public func prune(keep: Int, sparing: Set<String> = []) -> [String] {
        let current = self.current
        var deployments = all()
        var removed: [String] = []
        func age(_ d: Deployment) -> Double { d.lastActivation ?? Self.creationTime(d.datetime) }
        let candidates = deployments.filter { $0.datetime != current && !sparing.contains($0.datetime) }.sorted { age($0) < age($1) }
        for candidate in candidates where deployments.count > max(keep, 1) {
            remove(candidate)
            removed.append(candidate.datetime)
            deployments.removeAll { $0.datetime == candidate.datetime }
        }
        return removed
    }

    /// Removes a deployment: its `by-id` link first, then its directory.
    public func remove(_ deployment: Deployment) {
        if let id = deployment.metadata.id, Self.isID(id), datetime(ofID: id) == deployment.datetime { unlink(root + "/by-id/" + id) }
        FileSystem.removeTree(path(deployment.datetime))
    }

    /// Seconds since the epoch of a deployment name (local time).
    static func creationTime(_ datetime: String) -> Double {
        let digits = datetime.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        guard digits.count == 7 else { return 0 }
        var parts = tm()
        parts.tm_year = Int32(digits[0] - 1900)
        parts.tm_mon = Int32(digits[1] - 1)
        parts.tm_mday = Int32(digits[2])
        parts.tm_hour = Int32(digits[3])
        parts.tm_min = Int32(digits[4])
        parts.tm_sec = Int32(digits[5])
        parts.tm_isdst = -1
        return Double(mktime(&parts)) + Double(digits[6]) / 1000
    }

    /// `gear deployments`: the original's listing, newest activation first, never-activated ones
    /// on top, `- ACTIVE` on the current one.
    public func listing() -> String {
        let current = self.current
        let ordered = all().sorted { ($0.lastActivation ?? .greatestFiniteMagnitude, $0.datetime) > ($1.lastActivation ?? .greatestFiniteMagnitude, $1.datetime) }
        var text = "Activation time - Deployment ID - Git Ref - Git SHA1\n"
        for deployment in ordered {
            let when = deployment.lastActivation.map(Self.displayTime) ?? "NEVER"
            text += "\(when) - \(deployment.metadata.id ?? "none") - \(deployment.metadata.gitRef) - \(deployment.metadata.gitSHA1 ?? "none")"
            text += deployment.datetime == current ? " - ACTIVE\n" : "\n"
        }
        return text
    }

    /// What the broker stores (`calculate_deployments`), as JSON: one object per deployment.
    public func brokerJSON() -> String {
        let items = all().map { deployment -> String in
            let m = deployment.metadata
            let times = m.activations.map { CFormat.string("%.7f", $0) }.joined(separator: ",")
            return #"{"id":\#(m.id.map(DeploymentMetadata.quoted) ?? "null"),"ref":\#(DeploymentMetadata.quoted(m.gitRef)),"#
                + #""sha1":\#(m.gitSHA1.map(DeploymentMetadata.quoted) ?? "null"),"force_clean_build":\#(m.forceCleanBuild == true),"#
                + #""hot_deploy":\#(m.hotDeploy == true),"created_at":\#(CFormat.string("%.3f", Self.creationTime(deployment.datetime))),"#
                + #""activations":[\#(times)],"active":\#(deployment.datetime == current)}"#
        }
        return "[" + items.joined(separator: ",") + "]"
    }

    static func displayTime(_ seconds: Double) -> String {
        var whole = time_t(seconds)
        var parts = tm()
        localtime_r(&whole, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%d %H:%M:%S %z", &parts)
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
