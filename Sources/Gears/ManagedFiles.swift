import Cartridges
import Containment
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// `metadata/managed_files.yml`: the files a cartridge keeps out of the gear user's hands
/// (`locked_files`) except while its own hooks run. An anti-foot-gun, not a security boundary.
///
/// Entries starting with `~/` are relative to the home, others to the cartridge directory;
/// `..` is resolved; anything outside the home is dropped; `*` in the last component matches
/// existing entries; a trailing `/` names a directory. As in the original, a locked entry must be
/// under `app-root/`, under the cartridge, or a top-level dot entry, and never under `.ssh`,
/// `.sandbox`, `.tmp` or `.env`.
struct ManagedFiles {
    /// Home-relative paths, with whether each names a directory.
    var locked: [(path: String, directory: Bool)] = []
    var rejected: [String] = []

    init(cartridge: GearCartridge, home: String) {
        guard let text = readSmallFile(cartridge.directory + "/metadata/managed_files.yml"),
              let value = try? ManifestValue.parse(yaml: text), let map = value.map,
              let entries = (map["locked_files"] ?? map[":locked_files"])?.stringList else { return }
        let cartRelative = String(cartridge.directory.dropFirst(home.count + 1))
        for raw in entries {
            let entry = raw.trimmingWhitespace
            guard !entry.isEmpty else { continue }
            let directory = entry.hasSuffix("/")
            let anchored = entry.hasPrefix("~/") ? String(entry.dropFirst(2)) : cartRelative + "/" + entry
            guard let normal = Self.normalize(anchored) else {
                rejected.append(entry)
                continue
            }
            let first = normal.split(separator: "/").first.map(String.init) ?? ""
            let allowed = normal.hasPrefix("app-root/") || normal.hasPrefix(cartRelative + "/") || normal == cartRelative
                || (first.hasPrefix(".") && !normal.contains("/"))
            let forbidden = [".ssh", ".sandbox", ".tmp", ".env"].contains { first == $0 || first.hasPrefix($0) }
            guard allowed && !forbidden else {
                rejected.append(entry)
                continue
            }
            if normal.split(separator: "/").last?.contains("*") == true {
                for match in Self.glob(home, normal) { locked.append((match, false)) }
            } else {
                locked.append((normal, directory))
            }
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

    /// Existing entries matching a pattern whose last component has `*` (dot entries included).
    static func glob(_ home: String, _ pattern: String) -> [String] {
        let parent = pattern.contains("/") ? String(pattern[..<pattern.lastIndex(of: "/")!]) : ""
        let last = String(pattern.split(separator: "/").last!)
        return (FileSystem.entries(home + "/" + parent) ?? []).filter { fnmatch(last, $0, 0) == 0 }
            .map { parent.isEmpty ? $0 : parent + "/" + $0 }
    }
}

extension GearManager {
    /// Hands the cartridge's locked files and the home to the gear while its hooks run.
    func unlock(_ gear: Gear, _ cartridge: GearCartridge) throws(GearsError) {
        for entry in ManagedFiles(cartridge: cartridge, home: gear.home).locked {
            let path = gear.home + "/" + entry.path
            if access(path, F_OK) != 0 {
                if entry.directory { mkdir(path, 0o755) } else { close(open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)) }
            }
            try containing { () throws(ContainmentError) in try plugin.own(path, by: gear.identity, writable: true) }
        }
        try containing { () throws(ContainmentError) in try plugin.own(gear.home, by: gear.identity, writable: true) }
    }

    /// Gives them back to root (the gear's group may read them).
    func lock(_ gear: Gear, _ cartridge: GearCartridge) throws(GearsError) {
        for entry in ManagedFiles(cartridge: cartridge, home: gear.home).locked where access(gear.home + "/" + entry.path, F_OK) == 0 {
            try containing { () throws(ContainmentError) in try plugin.own(gear.home + "/" + entry.path, by: gear.identity, writable: false) }
        }
        try containing { () throws(ContainmentError) in try plugin.own(gear.home, by: gear.identity, writable: false) }
    }

    /// Non-hidden top-level entries of the home.
    func topLevelEntries(_ gear: Gear) -> Set<String> {
        Set((FileSystem.entries(gear.home) ?? []).filter { !$0.hasPrefix(".") })
    }
}
