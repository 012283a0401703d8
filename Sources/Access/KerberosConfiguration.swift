import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// What the node needs from the MIT Kerberos configuration (`KRB5_CONFIG_FILE`, default
/// `/etc/krb5.conf`): where `krb5_kuserok` looks for a user's k5login file.
///
/// The profile format is read minimally and within limits: `[section]` headers, `key = value`
/// relations, `{ ... }` subsections skipped (nested at most 16 deep), `#` and `;` comments.
/// `k5login_directory` counts only in `[libdefaults]`, as MIT reads it.
public struct KerberosConfiguration: Sendable, Equatable {
    /// The directory of per-user k5login files, if the configuration names one.
    public var k5loginDirectory: String?

    public static let sizeLimit = 1 << 20
    public static let depthLimit = 16

    public init(k5loginDirectory: String? = nil) {
        self.k5loginDirectory = k5loginDirectory
    }

    /// Reads `path`; a missing file is the empty configuration (k5login files in the homes).
    public static func load(_ path: String) throws(AccessError) -> KerberosConfiguration {
        let bytes: [UInt8]
        do {
            bytes = try FileSystem.readBytes(path, limit: sizeLimit + 1)
        } catch {
            if error.errno == ENOENT { return KerberosConfiguration() }
            throw .kerberosConfiguration(path: path, line: 0, reason: "cannot be read: \(error)")
        }
        guard bytes.count <= sizeLimit else {
            throw .kerberosConfiguration(path: path, line: 0, reason: "larger than \(sizeLimit) bytes")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), path: path)
    }

    public static func parse(_ text: String, path: String) throws(AccessError) -> KerberosConfiguration {
        var section = ""
        var depth = 0
        var result = KerberosConfiguration()
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingASCIIWhitespace()
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if depth > 0 {
                if line.hasPrefix("}") { depth -= 1 } else if line.hasSuffix("{") { depth += 1 }
                if depth > depthLimit { throw .kerberosConfiguration(path: path, line: index + 1, reason: "subsections nested deeper than \(depthLimit)") }
                continue
            }
            if line.hasPrefix("[") {
                guard let close = line.firstIndex(of: "]") else {
                    throw .kerberosConfiguration(path: path, line: index + 1, reason: "a section header without ]")
                }
                section = String(line[line.index(after: line.startIndex)..<close])
                continue
            }
            // include/includedir/module directives: the node needs nothing from other files.
            if line.hasPrefix("include") || line.hasPrefix("module") { continue }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingASCIIWhitespace()
            var value = line[line.index(after: equals)...].trimmingASCIIWhitespace()
            if value.hasPrefix("{") { depth = 1; continue }
            guard section == "libdefaults", key == "k5login_directory" else { continue }
            if value.hasSuffix("*") { value = String(value.dropLast()).trimmingASCIIWhitespace() }
            if value.hasPrefix("\"") && value.hasSuffix("\"") && value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            guard value.hasPrefix("/"), !value.split(separator: "/").contains(".."),
                  !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
                throw .kerberosConfiguration(path: path, line: index + 1, reason: "k5login_directory '\(shown(value))' must be an absolute path without ..")
            }
            // MIT keeps the first value of a relation.
            if result.k5loginDirectory == nil { result.k5loginDirectory = value.count > 1 && value.hasSuffix("/") ? String(value.dropLast()) : value }
        }
        return result
    }
}
