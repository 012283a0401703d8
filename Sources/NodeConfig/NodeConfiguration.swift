#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's settings: defaults from `NodeConfigKey.all`, overlaid by a `node.conf` file.
///
/// A value type; it never reads the environment. Unknown keys are kept (the original system
/// tolerated extra keys, and plugins read their own). Every value is checked when the file is
/// parsed (see `init(parsing:file:)`), so the typed accessors never see a value out of its
/// key's limits unless one is assigned through the subscript.
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
    ///
    /// Every assignment is checked, not only the last one of a key: a value must be text without
    /// NUL, and a known key's value must fit the key's type and limit (`NodeConfigKey.all`). Then
    /// the rules between keys (`NodeConfigRule.all`) are checked. The first problem is thrown
    /// with its file and line; nothing bad is ever kept.
    public init(parsing text: String, file: String) throws(NodeConfigError) {
        try self.init(entries: try NodeConfParser.parse(text, file: file), file: file)
    }

    /// Parses the bytes of `file`: as `init(parsing:file:)`, and a value that is not valid UTF-8
    /// is an error at its line instead of being read with replacement characters. Invalid bytes
    /// in a comment are tolerated, as a comment is never read.
    public init(parsing bytes: [UInt8], file: String) throws(NodeConfigError) {
        var text = ""
        var undecodable: Set<Int> = []
        for (index, line) in bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if index > 0 { text += "\n" }
            if let decoded = String(validating: line, as: UTF8.self) {
                text += decoded
            } else {
                undecodable.insert(index + 1)
                text += String(decoding: line, as: UTF8.self)
            }
        }
        let entries: [NodeConfParser.Entry]
        do {
            entries = try NodeConfParser.parse(text, file: file)
        } catch {
            if case let .malformedLine(_, line, _, _) = error, undecodable.contains(line) {
                throw .invalidText(file: file, line: line, key: nil, reason: "is not valid UTF-8")
            }
            throw error
        }
        for entry in entries where undecodable.contains(entry.line) && entry.value.unicodeScalars.contains("\u{FFFD}") {
            throw .invalidText(file: file, line: entry.line, key: entry.key, reason: "is not valid UTF-8")
        }
        try self.init(entries: entries, file: file)
    }

    private init(entries: [NodeConfParser.Entry], file: String) throws(NodeConfigError) {
        self.init()
        var lines: [String: Int] = [:]
        for entry in entries {
            if entry.value.utf8.contains(0) {
                throw .invalidText(file: file, line: entry.line, key: entry.key, reason: "contains a NUL byte")
            }
            if let key = NodeConfigKey.byName[entry.key], let expected = key.problem(entry.value) {
                throw .invalidValue(file: file, line: entry.line, key: entry.key, value: entry.value, expected: expected)
            }
            values[entry.key] = entry.value
            origins[entry.key] = "\(file):\(entry.line)"
            lines[entry.key] = entry.line
        }
        for rule in NodeConfigRule.all {
            let numbers = Dictionary(uniqueKeysWithValues: rule.keys.map { ($0, integer($0)) })
            guard let problem = rule.problem(numbers) else { continue }
            let last = rule.keys.compactMap { key in lines[key].map { (key, $0) } }.max { $0.1 < $1.1 }
            throw .conflictingValues(file: file, line: last?.1 ?? 0, key: last?.0 ?? rule.keys[0], reason: problem)
        }
    }

    /// Reads `file`; a missing file gives the defaults only when `missingIsDefault` is set.
    public static func load(file: String, missingIsDefault: Bool) throws(NodeConfigError) -> NodeConfiguration {
        let bytes: [UInt8]
        switch readFile(file) {
        case .success(let contents): bytes = contents
        case .failure(let error):
            if error.code == ENOENT && missingIsDefault { return NodeConfiguration() }
            throw .unreadable(file: file, errno: error.code)
        }
        return try NodeConfiguration(parsing: bytes, file: file)
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

    /// `GEAR_MIN_UID...GEAR_MAX_UID`, or nil when the two do not make a range of uids (possible
    /// only for values assigned through the subscript: a parsed file is checked).
    public var gearUIDs: ClosedRange<UInt32>? {
        guard let low = UInt32(exactly: integer("GEAR_MIN_UID")), let high = UInt32(exactly: integer("GEAR_MAX_UID")),
              low >= 1, low <= high, high < UInt32.max else { return nil }
        return low...high
    }

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
            out += "\n# \(key.help) (\(key.type.rawValue)\(key.limit.map { ", " + $0.bounds } ?? ""))\n"
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

/// Reads a whole file as UTF-8 (invalid bytes replaced), or the errno of the failure.
func readTextFile(_ path: String) -> Result<String, Errno> {
    readFile(path).map { String(decoding: $0, as: UTF8.self) }
}

/// Reads a whole file, or the errno of the failure.
func readFile(_ path: String) -> Result<[UInt8], Errno> {
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
    return .success(bytes)
}
