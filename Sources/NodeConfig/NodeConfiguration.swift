#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's settings: defaults from `NodeConfigKey.all`, overlaid by a `node.conf` file.
///
/// A value type; it never reads the environment. Unknown keys are kept (the original system
/// tolerated extra keys, and plugins read their own). Known keys are type-checked when read,
/// and a wrong value is reported with its file and line.
public struct NodeConfiguration: Sendable, Equatable {
    /// Raw values by key, defaults included.
    public private(set) var values: [String: String]
    /// Where each value came from (`file:line`), for keys set by a file.
    public private(set) var origins: [String: String]

    public init() {
        values = Dictionary(uniqueKeysWithValues: NodeConfigKey.all.map { ($0.name, $0.defaultValue) })
        origins = [:]
    }

    /// Parses `text` as read from `file` over the defaults.
    public init(parsing text: String, file: String) throws(NodeConfigError) {
        self.init()
        for entry in try NodeConfParser.parse(text, file: file) {
            if let key = NodeConfigKey.byName[entry.key], let expected = key.typeMismatch(entry.value) {
                throw .invalidValue(file: file, line: entry.line, key: entry.key, value: entry.value, expected: expected)
            }
            values[entry.key] = entry.value
            origins[entry.key] = "\(file):\(entry.line)"
        }
    }

    /// Reads `file`; a missing file gives the defaults only when `missingIsDefault` is set.
    public static func load(file: String, missingIsDefault: Bool) throws(NodeConfigError) -> NodeConfiguration {
        let text: String
        switch readTextFile(file) {
        case .success(let contents): text = contents
        case .failure(let error):
            if error.code == ENOENT && missingIsDefault { return NodeConfiguration() }
            throw .unreadable(file: file, errno: error.code)
        }
        return try NodeConfiguration(parsing: text, file: file)
    }

    public subscript(key: String) -> String? {
        get { values[key] }
        set { values[key] = newValue }
    }

    public func string(_ key: String) -> String { values[key] ?? NodeConfigKey.byName[key]?.defaultValue ?? "" }

    public func integer(_ key: String) -> Int {
        Int(string(key)) ?? Int(NodeConfigKey.byName[key]?.defaultValue ?? "") ?? 0
    }

    public func boolean(_ key: String) -> Bool {
        Self.parseBool(string(key)) ?? Self.parseBool(NodeConfigKey.byName[key]?.defaultValue ?? "") ?? false
    }

    public func list(_ key: String) -> [String] {
        string(key).split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    }

    /// The original accepted `true|t|yes|y|1` as true; we also name the false spellings so a
    /// typo is an error instead of a silent false.
    public static func parseBool(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "true", "t", "yes", "y", "1", "on": return true
        case "false", "f", "no", "n", "0", "off", "": return false
        default: return nil
        }
    }

    // Typed accessors for the keys the node uses most.
    public var gearBaseDir: String { string("GEAR_BASE_DIR") }
    public var cartridgeBasePath: String { string("CARTRIDGE_BASE_PATH") }
    public var cartridgeRepoDir: String { string("CARTRIDGE_REPO_DIR") }
    public var watchCartridgeBasePath: Bool { boolean("CARTRIDGE_WATCH") }
    public var rescanDebounceMilliseconds: Int { max(0, integer("CARTRIDGE_RESCAN_DEBOUNCE_MS")) }

    /// The text of `node.conf.sample`: every key with its meaning and default.
    public static func sampleText() -> String {
        var out = """
        # node.conf: settings of the openshift-node host.
        #
        # Shell-style KEY=value lines; quote values with spaces. Nothing is expanded.
        # Every key the node reads is listed here with its default. Generated from the key table
        # in Sources/NodeConfig/NodeConfigKey.swift (`openshift-node config-sample`).

        """
        for key in NodeConfigKey.all {
            out += "\n# \(key.help) (\(key.type.rawValue))\n"
            out += "\(key.name)=\"\(key.defaultValue)\"\n"
        }
        return out
    }
}

extension Substring {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

struct Errno: Error { var code: Int32 }

/// Reads a whole file as UTF-8, or the errno of the failure.
func readTextFile(_ path: String) -> Result<String, Errno> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return .failure(Errno(code: errno)) }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(Errno(code: errno))
        }
        if n == 0 { break }
        bytes.append(contentsOf: buffer[0..<n])
    }
    return .success(String(decoding: bytes, as: UTF8.self))
}
