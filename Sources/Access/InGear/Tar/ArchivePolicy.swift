/// What a restore takes from an archive: the members under `app-root/data`, `app-deployments`
/// and, with the git repository, `git/<name>.git` (its `hooks` excepted). Home-relative paths.
public struct RestoreScope: Sendable, Equatable {
    public var roots: [[UInt8]]
    public var excluded: [[UInt8]]

    public init(gitRepository: String?) {
        roots = [Array("app-root/data".utf8), Array("app-deployments".utf8)]
        excluded = []
        if let gitRepository {
            roots.append(Array(gitRepository.utf8))
            excluded.append(Array((gitRepository + "/hooks").utf8))
        }
    }

    /// Whether `path` is restored: strictly under a root (a root itself is kept, not replaced),
    /// and not under an excluded directory.
    public func contains(_ path: [UInt8]) -> Bool {
        roots.contains { Self.isUnder(path, $0) } && !excluded.contains { path == $0 || Self.isUnder(path, $0) }
    }

    static func isUnder(_ path: [UInt8], _ root: [UInt8]) -> Bool {
        path.count > root.count && path.starts(with: root) && path[root.count] == UInt8(ascii: "/")
    }
}

/// Where a member of the archive goes, home-relative, once the whole archive is accepted.
public enum Placement: Sendable, Equatable {
    case skip
    case directory([UInt8], mode: UInt32, modificationTime: Int64)
    case file([UInt8], mode: UInt32, modificationTime: Int64)
    case symlink([UInt8], target: [UInt8])
    case hardLink([UInt8], target: [UInt8])
}

/// The restore's rules for every member of an archive, checked before anything of the gear
/// changes. A member is refused, with its name and the reason, when:
/// - its name is absolute, has a `..` component, a component over 255 bytes, or is not under
///   the archive's one top directory (`./<uuid>/`), before or after the restore transforms;
/// - it is a device, a fifo, or any type but file, directory, symbolic or hard link;
/// - it appears twice (directories excepted), lies under a member that is a symbolic link or
///   not a directory, or would replace a directory holding earlier members;
/// - inside the restored scope: a symbolic link whose target is absolute, or that leaves the gear
///   when resolved (lexically, relative to its directory, following the archive's own links and,
///   outside the scope, the gear's: `finish`), or a hard link to anything but an earlier regular
///   file of the scope; outside it: a hard link to anything but an earlier member.
/// The member's top directory is mapped to the gear (the `--strip-components=2` of `./<uuid>/`).
/// Decides, member by member, what of an archive is written (and where), or refuses it.
public protocol MemberPolicy {
    mutating func admit(_ entry: TarEntry) throws(InGearError) -> Placement
}

public struct ArchivePolicy: MemberPolicy {
    public let scope: RestoreScope
    let transforms: [SedTransform]
    public private(set) var topDirectory: [UInt8]?
    private var kinds: [[UInt8]: TarEntry.Kind] = [:]
    private var parents: Set<[UInt8]> = []
    private var symlinks: [[UInt8]: [UInt8]] = [:]
    private var scopedSymlinks: [[UInt8]: [UInt8]] = [:]
    private var scopedFiles: Set<[UInt8]> = []
    public private(set) var memberCount = 0

    public init(scope: RestoreScope, transforms: [SedTransform] = []) {
        self.scope = scope
        self.transforms = transforms
    }

    static let slash = UInt8(ascii: "/")

    /// Checks a name's shape and returns its home-relative path (empty for the top directory).
    mutating func relative(_ name: [UInt8], member: String, what: String) throws(InGearError) -> [UInt8] {
        guard !name.isEmpty else { throw .refused(member: member, reason: "an empty \(what)") }
        guard name.first != Self.slash else { throw .refused(member: member, reason: "an absolute \(what)") }
        var components: [ArraySlice<UInt8>] = []
        for component in name.split(separator: Self.slash, omittingEmptySubsequences: true) {
            if component.elementsEqual([UInt8(ascii: ".")]) { continue }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
                throw .refused(member: member, reason: "a '..' component in its \(what)")
            }
            guard component.count <= 255 else { throw .refused(member: member, reason: "a component longer than 255 bytes in its \(what)") }
            components.append(component)
        }
        guard let top = components.first else { throw .refused(member: member, reason: "its \(what) names no directory (not under ./<gear>/)") }
        if let topDirectory {
            guard top.elementsEqual(topDirectory) else {
                throw .refused(member: member, reason: "its \(what) is not under the archive's top directory ./\(pathText(topDirectory))/ (the archive must hold one gear)")
            }
        } else {
            topDirectory = Array(top)
        }
        return Array(components.dropFirst().joined(separator: [Self.slash]))
    }

    func transformed(_ name: [UInt8], _ applies: (SedTransform) -> Bool) -> [UInt8] {
        transforms.reduce(name) { applies($1) ? $1.apply($0) : $0 }
    }

    /// Home-relative path of a member or hard link target: checked as stored, transformed, checked again.
    mutating func path(of name: [UInt8], member: String, what: String, _ applies: (SedTransform) -> Bool) throws(InGearError) -> [UInt8] {
        _ = try relative(name, member: member, what: what)
        let result = transformed(name, applies)
        return try relative(result, member: member, what: what + (result == name ? "" : " after the restore transforms"))
    }

    static func properPrefixes(_ path: [UInt8]) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for (index, byte) in path.enumerated() where byte == slash { result.append(Array(path[..<index])) }
        return result
    }

    /// The placement of one member, or the reason it is refused.
    public mutating func admit(_ entry: TarEntry) throws(InGearError) -> Placement {
        let member = entry.displayName
        memberCount += 1
        switch entry.kind {
        case .file, .directory, .symlink, .hardLink: break
        case .characterDevice: throw .refused(member: member, reason: "a character device")
        case .blockDevice: throw .refused(member: member, reason: "a block device")
        case .fifo: throw .refused(member: member, reason: "a fifo")
        case .other(let type):
            let shown = type >= 32 && type < 127 ? "'\(Character(Unicode.Scalar(type)))'" : "\(type)"
            throw .refused(member: member, reason: "an unsupported member type \(shown)")
        }
        let path = try self.path(of: entry.name, member: member, what: "name", \.appliesToNames)
        if path.isEmpty {
            guard entry.kind == .directory else { throw .refused(member: member, reason: "the archive's top directory is not a directory") }
            return .skip
        }
        if let previous = kinds[path], !(previous == .directory && entry.kind == .directory) {
            throw .refused(member: member, reason: "appears twice in the archive")
        }
        for prefix in Self.properPrefixes(path) {
            if symlinks[prefix] != nil {
                throw .refused(member: member, reason: "lies under the symbolic link member \(InGearError.quoted(pathText(prefix))) (it would be written through a link)")
            }
            if let kind = kinds[prefix], kind != .directory {
                throw .refused(member: member, reason: "lies under the member \(InGearError.quoted(pathText(prefix))), which is not a directory")
            }
            parents.insert(prefix)
        }
        if entry.kind != .directory && parents.contains(path) {
            throw .refused(member: member, reason: "replaces a directory that holds earlier members")
        }
        let inScope = scope.contains(path)
        switch entry.kind {
        case .symlink:
            let target = transformed(entry.linkName, \.appliesToSymlinks)
            symlinks[path] = target
            if inScope {
                guard !target.isEmpty else { throw .refused(member: member, reason: "a symbolic link with an empty target") }
                guard target.first != Self.slash else {
                    throw .refused(member: member, reason: "a symbolic link to the absolute path \(InGearError.quoted(pathText(target)))")
                }
                scopedSymlinks[path] = target
            }
        case .hardLink:
            let target = try self.path(of: entry.linkName, member: member, what: "hard link target", \.appliesToHardLinks)
            if inScope {
                guard scopedFiles.contains(target) else {
                    throw .refused(member: member, reason: "a hard link to \(InGearError.quoted(pathText(target))), which is not an earlier regular file inside the restored part of the archive")
                }
            } else if kinds[target] == nil {
                throw .refused(member: member, reason: "a hard link to \(InGearError.quoted(pathText(target))), which is not an earlier member")
            }
        case .file:
            if inScope { scopedFiles.insert(path) }
        default:
            break
        }
        kinds[path] = entry.kind == .hardLink ? .file : entry.kind
        guard inScope else { return .skip }
        switch entry.kind {
        case .directory: return .directory(path, mode: entry.mode, modificationTime: entry.modificationTime)
        case .file: return .file(path, mode: entry.mode, modificationTime: entry.modificationTime)
        case .symlink: return .symlink(path, target: scopedSymlinks[path]!)
        case .hardLink:
            return .hardLink(path, target: try self.path(of: entry.linkName, member: member, what: "hard link target", \.appliesToHardLinks))
        default: return .skip
        }
    }

    /// What is at a home-relative path of the gear as it is now: a symbolic link's target, or nil.
    public typealias LiveLinks = ([UInt8]) -> [UInt8]?

    /// The checks that need the whole archive: it had a top directory, and no symbolic link of
    /// the scope leaves the gear, following links of the archive (inside the scope, where the
    /// archive's replace the gear's) and of the gear (outside it), at most 40 of them.
    public func finish(live: LiveLinks) throws(InGearError) {
        guard topDirectory != nil else { throw .refused(member: "", reason: "the archive has no members") }
        for (path, target) in scopedSymlinks.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            var directory = Array(path.split(separator: Self.slash).dropLast().map(Array.init))
            var pending = target.split(separator: Self.slash, omittingEmptySubsequences: true).map(Array.init)
            var hops = 0
            let member = "./" + pathText(topDirectory! + [Self.slash] + path)
            while !pending.isEmpty {
                let component = pending.removeFirst()
                if component == [UInt8(ascii: ".")] { continue }
                if component == [UInt8(ascii: "."), UInt8(ascii: ".")] {
                    guard !directory.isEmpty else {
                        throw .refused(member: member, reason: "a symbolic link to \(InGearError.quoted(pathText(target))), which leaves the gear")
                    }
                    directory.removeLast()
                    continue
                }
                let candidate = directory + [component]
                let joined = Array(candidate.joined(separator: [Self.slash]))
                let link = scope.contains(joined) ? scopedSymlinks[joined] : live(joined)
                guard let link else {
                    directory = candidate
                    continue
                }
                hops += 1
                guard hops <= 40 else { throw .refused(member: member, reason: "a symbolic link through more than 40 links") }
                guard link.first != Self.slash else {
                    throw .refused(member: member, reason: "a symbolic link to \(InGearError.quoted(pathText(target))), which leaves the gear through the link \(InGearError.quoted(pathText(joined))) to an absolute path")
                }
                pending = link.split(separator: Self.slash, omittingEmptySubsequences: true).map(Array.init) + pending
            }
        }
    }
}
