import Cartridges
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The cartridge repository is consistent with `CARTRIDGE_BASE_PATH`: every packaged cartridge
/// is installed at its cartridge version with the same manifest (the original's `no manifest in
/// the cart repo matches <f>` and `cart repo version mismatch for <f>`), and every repository
/// entry is one the node can load. Entries whose package is gone are kept on purpose (gears may
/// use them) and are only noted.
///
/// The repository is read here, not through `CartridgeRepository.load`, which creates the
/// repository's directory and lock file when they are missing; the lock is taken shared when it
/// exists, so a rescan in progress is never seen half done.
struct RepositoryCheck: NodeCheck {
    let name = "cartridge repository"

    /// One installed cartridge version.
    struct Installed {
        var document: ManifestDocument
        var manifestPath: String
        var manifestText: String
        /// The source the repository recorded (`.<cv>.source`), if any.
        var source: String?
    }

    struct Key: Hashable, Comparable {
        var vendor: String
        var name: String
        var cartridgeVersion: String

        static func < (a: Key, b: Key) -> Bool {
            (a.vendor, a.name, a.cartridgeVersion) < (b.vendor, b.name, b.cartridgeVersion)
        }

        var tuple: String { "(\(vendor), \(name), \(cartridgeVersion))" }
    }

    func run(_ node: NodeUnderTest) -> [Finding] {
        let repository = node.layout.cartridgeRepoDir
        let base = node.layout.cartridgeBasePath
        // A missing directory is the directory check's failure.
        guard PathStatus.isDirectory(repository) else { return [] }
        let rescan = node.command(["oo-admin-cartridge", "--action", "rescan"])
        let lock = SharedLock(path: repository + "/.lock")
        defer { lock.release() }
        var (installed, findings) = readRepository(repository, node)
        if !lock.held { findings.append(.note("\(repository)/.lock could not be taken: the repository was read without it")) }
        guard PathStatus.isDirectory(base) else { return findings }

        var shipped: [Key: String] = [:]
        for entry in FileSystem.entries(base) ?? [] where !entry.hasPrefix(".") {
            let source = base + "/" + entry
            guard PathStatus.isDirectory(source) else {
                findings.append(.fail("\(source) in CARTRIDGE_BASE_PATH is not a cartridge directory", fix: "remove it from \(base)"))
                continue
            }
            let manifestPath = source + "/metadata/manifest.yml"
            guard let text = FileSystem.read(manifestPath, limit: 1 << 20) else {
                findings.append(.fail("\(source) in CARTRIDGE_BASE_PATH has no readable metadata/manifest.yml: the node cannot install it",
                                      fix: "reinstall its package, or remove it from \(base)"))
                continue
            }
            let document: ManifestDocument
            do {
                document = try ManifestDocument.parse(yaml: text, path: manifestPath)
            } catch {
                findings.append(.fail("failed to parse manifest file: \(error.description)",
                                      fix: "correct the manifest (or reinstall its package), then \(rescan)"))
                continue
            }
            let key = Key(vendor: document.vendor, name: document.name, cartridgeVersion: document.cartridgeVersion.text)
            if let earlier = shipped[key] {
                findings.append(.fail("\(source) ships \(key.tuple) again, as \(earlier) does: only one of them is installed",
                                      fix: "give one of them a new Cartridge-Version, or remove it from \(base)"))
                continue
            }
            shipped[key] = source
            guard let copy = installed[key] else {
                findings.append(.fail("no manifest in the cart repo matches \(manifestPath): \(key.tuple) is not in \(repository)",
                                      fix: "install it: \(rescan)"))
                continue
            }
            if copy.manifestText != text {
                let have = copy.document.projections.map(\.version.text), want = document.projections.map(\.version.text)
                let detail = have == want ? "its manifest differs from \(copy.manifestPath)"
                    : "the repository has versions \(have.joined(separator: ", ")), the source \(want.joined(separator: ", "))"
                findings.append(.fail("cart repo version mismatch for \(manifestPath): \(key.tuple) changed since it was installed (\(detail))",
                                      fix: "install it again: \(rescan)"))
            }
        }
        for (key, copy) in installed.sorted(by: { $0.key < $1.key }) where shipped[key] == nil {
            findings.append(.note("\(key.tuple) is kept in the repository for gears but no longer shipped"
                                  + (copy.source.map { " (installed from \($0))" } ?? "")))
        }
        findings.append(.note("\(installed.count) cartridge version(s) in \(repository), \(shipped.count) in \(base)"))
        return findings
    }

    /// Every `<vendor>-<name>/<cartridge version>/` the node would index, and every entry it
    /// would skip, as a failure.
    func readRepository(_ repository: String, _ node: NodeUnderTest) -> ([Key: Installed], [Finding]) {
        var installed: [Key: Installed] = [:]
        var findings: [Finding] = []
        let erase = "remove it (or erase it with oo-admin-cartridge --action erase), then reinstall what it should be: "
            + node.command(["oo-admin-cartridge", "--action", "rescan"])
        for entry in FileSystem.entries(repository) ?? [] where !entry.hasPrefix(".") {
            let directory = repository + "/" + entry
            guard case .success(let status) = PathStatus.of(directory), status.isDirectory,
                  let dash = entry.firstIndex(of: "-"), dash != entry.startIndex, entry.index(after: dash) != entry.endIndex else {
                findings.append(.fail("\(directory) in the cartridge repository is not a <vendor>-<name> directory: the node skips it",
                                      fix: "move it out of \(repository)"))
                continue
            }
            let vendor = String(entry[..<dash]), name = String(entry[entry.index(after: dash)...])
            let names = FileSystem.entries(directory) ?? []
            for version in names where !version.hasPrefix(".") {
                let place = directory + "/" + version
                guard CartridgeVersion(version) != nil, case .success(let status) = PathStatus.of(place), status.isDirectory else {
                    findings.append(.fail("\(place) in the cartridge repository is not a cartridge version directory: the node skips it",
                                          fix: "move it out of \(repository)"))
                    continue
                }
                let manifestPath = place + "/metadata/manifest.yml"
                guard let text = FileSystem.read(manifestPath, limit: 1 << 20), !text.isEmpty else {
                    findings.append(.fail("error with manifest file: \(manifestPath) is missing, empty or unreadable: the node skips this cartridge version",
                                          fix: erase))
                    continue
                }
                let document: ManifestDocument
                do {
                    document = try ManifestDocument.parse(yaml: text, path: manifestPath)
                } catch {
                    findings.append(.fail("error with manifest file: \(error.description): the node skips this cartridge version", fix: erase))
                    continue
                }
                guard document.vendor == vendor, document.name == name, document.cartridgeVersion.text == version else {
                    findings.append(.fail("cart repo version mismatch: \(manifestPath) describes (\(document.vendor), \(document.name), "
                                          + "\(document.cartridgeVersion)), which belongs in \(document.primary.repositoryDirectory), not \(entry)/\(version): "
                                          + "the node skips it",
                                          fix: erase))
                    continue
                }
                let stamp = FileSystem.read(directory + "/." + version + ".source", limit: 64 << 10)
                let source = stamp?.split(separator: "\n").first { $0.hasPrefix("source=") }.map { String($0.dropFirst(7)) }
                installed[Key(vendor: vendor, name: name, cartridgeVersion: version)] =
                    Installed(document: document, manifestPath: manifestPath, manifestText: text, source: source)
            }
        }
        return (installed, findings)
    }
}
