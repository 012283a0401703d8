import Cartridges
import Containment
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// `metadata/managed_files.yml`: the files a cartridge keeps out of the gear user's hands
/// (`locked_files`) except while its own hooks run. An anti-foot-gun, not a security boundary.
///
/// Read from the repository's copy of the cartridge (root's), never from the gear's. Entries
/// starting with `~/` are relative to the home, others to the cartridge directory; `..` is
/// resolved; anything outside the home is dropped; `*` in the last component matches existing
/// entries; a trailing `/` names a directory. As in the original, a locked entry must be under
/// `app-root/`, under the cartridge, or a top-level dot entry, and never under `.ssh`, `.sandbox`,
/// `.tmp` or `.env`. The home itself stays root's: unlocking hands over the entries only.
struct ManagedFiles {
    /// Home-relative patterns, with whether each names a directory.
    var locked: [(path: String, directory: Bool)] = []
    var rejected: [String] = []

    init(source: String, cartridgeDirectory: String) {
        guard let text = FileSystem.read(source + "/metadata/managed_files.yml", limit: 1 << 20),
              let value = try? ManifestValue.parse(yaml: text), let map = value.map,
              let entries = (map["locked_files"] ?? map[":locked_files"])?.stringList else { return }
        for raw in entries {
            let entry = raw.trimmingWhitespace
            guard !entry.isEmpty else { continue }
            let directory = entry.hasSuffix("/")
            let anchored = entry.hasPrefix("~/") ? String(entry.dropFirst(2)) : cartridgeDirectory + "/" + entry
            guard let normal = Self.normalize(anchored) else {
                rejected.append(entry)
                continue
            }
            let first = normal.split(separator: "/").first.map(String.init) ?? ""
            let allowed = normal.hasPrefix("app-root/") || normal.hasPrefix(cartridgeDirectory + "/") || normal == cartridgeDirectory
                || (first.hasPrefix(".") && !normal.contains("/"))
            let forbidden = [".ssh", ".sandbox", ".tmp", ".env"].contains { first == $0 || first.hasPrefix($0) }
            guard allowed && !forbidden else {
                rejected.append(entry)
                continue
            }
            locked.append((normal, directory))
        }
    }

    /// `a/./b/../c` -> `a/c`; nil when it climbs out of the home.
    static func normalize(_ path: String) -> String? {
        var parts: [Substring] = []
        for part in path.split(separator: "/") {
            switch part {
            case ".": continue
            case "..": if parts.popLast() == nil { return nil }
            default: parts.append(part)
            }
        }
        return parts.isEmpty ? nil : parts.joined(separator: "/")
    }

    /// The existing entries of the home a pattern names (a `*` in its last component matches).
    func matches(_ pattern: String, in home: GearHome) -> [String] {
        guard pattern.split(separator: "/").last?.contains("*") == true else { return [pattern] }
        let parent = pattern.contains("/") ? String(pattern[..<pattern.lastIndex(of: "/")!]) : ""
        let last = String(pattern.split(separator: "/").last!)
        return (home.entries(parent) ?? []).filter { fnmatch(last, $0, 0) == 0 }.map { parent.isEmpty ? $0 : parent + "/" + $0 }
    }
}

extension GearManager {
    /// Hands the cartridge's locked files to the gear while its hooks run (creating missing ones).
    /// An entry reached through a link the gear planted is skipped, never followed.
    func unlock(_ managed: ManagedFiles, in home: GearHome) throws(GearsError) {
        for entry in managed.locked {
            for path in managed.matches(entry.path, in: home) {
                do throws(ContainmentError) {
                    if !home.exists(path) {
                        if entry.directory {
                            try home.makeDirectory(path, mode: 0o755, owner: .gear)
                        } else {
                            try home.createFile(path, mode: 0o644, owner: .gear)
                        }
                    } else {
                        try home.setOwner(path, .gear)
                    }
                } catch {
                    logger.info("locked file skipped", metadata: ["gear.home": "\(home.path)", "path": "\(path)", "error": "\(error)"])
                }
            }
        }
    }

    /// Gives them back to root (the gear's group may read them).
    func lock(_ managed: ManagedFiles, in home: GearHome) throws(GearsError) {
        for entry in managed.locked {
            for path in managed.matches(entry.path, in: home) where home.exists(path) {
                do throws(ContainmentError) {
                    try home.setOwner(path, .root)
                } catch {
                    logger.info("locked file skipped", metadata: ["gear.home": "\(home.path)", "path": "\(path)", "error": "\(error)"])
                }
            }
        }
    }
}

/// What a cartridge's `managed_files.yml` says about snapshots: `snapshot_exclusions` (home-relative
/// tar patterns) and `restore_transforms` (sed `s` expressions for member names). Both are returned
/// unprocessed, as the original did; the in-gear `gear` command sanitises and applies them.
public struct SnapshotRules: Sendable, Equatable {
    public var exclusions: [String] = []
    public var transforms: [String] = []

    public init(exclusions: [String] = [], transforms: [String] = []) {
        self.exclusions = exclusions
        self.transforms = transforms
    }

    /// The rules in a `managed_files.yml` text (symbol keys such as `:snapshot_exclusions` too);
    /// empty when the text is not a YAML mapping.
    public init(managedFilesYAML text: String) {
        guard let value = try? ManifestValue.parse(yaml: text), let map = value.map else { return }
        func strings(_ key: String) -> [String] {
            ((map[key] ?? map[":" + key])?.stringList ?? []).map(\.trimmingWhitespace).filter { !$0.isEmpty }
        }
        exclusions = strings("snapshot_exclusions")
        transforms = strings("restore_transforms")
    }
}
