import Synchronization

/// An immutable view of the repository index: vendor -> name -> cartridge version -> the
/// software versions it provides, each with its projected manifest.
///
/// There is no stored "default" entry: the default cartridge version of a software version is
/// computed as the greatest present, so installing an older version or erasing any version can
/// never leave a stale or dangling default.
///
/// Listing, counting and choosing versions use only what the persisted index records for each
/// cartridge version; its manifests are built from the index's bytes the first time something
/// asks for one, so a command that only lists never builds any.
public struct RepositorySnapshot: Sendable {
    public struct CartridgeKey: Hashable, Sendable, Comparable {
        public var vendor: String
        public var name: String

        public init(vendor: String, name: String) {
            self.vendor = vendor
            self.name = name
        }

        public static func < (a: CartridgeKey, b: CartridgeKey) -> Bool { (a.vendor, a.name) < (b.vendor, b.name) }
    }

    /// One `(vendor, name, software version, cartridge version)` entry.
    public struct Tuple: Sendable, Hashable {
        public var vendor: String
        public var name: String
        public var version: CartridgeVersion
        public var cartridgeVersion: CartridgeVersion

        /// The listing line, exactly as the original printed it.
        public var text: String { "(\(vendor), \(name), \(version), \(cartridgeVersion))" }
    }

    /// Software version -> cartridge version -> manifest, for one cartridge.
    public typealias Versions = [CartridgeVersion: [CartridgeVersion: Manifest]]

    /// Cartridge -> cartridge version -> what is installed there.
    private(set) var installed: [CartridgeKey: [CartridgeVersion: InstalledVersion]] = [:]

    public init() {}

    /// Replaces everything known about one cartridge (used after its directory changed on disk).
    mutating func replace(_ key: CartridgeKey, with versions: [InstalledVersion]) {
        var byVersion: [CartridgeVersion: InstalledVersion] = [:]
        for version in versions { byVersion[version.cartridgeVersion] = version }
        installed[key] = byVersion.isEmpty ? nil : byVersion
    }

    func installed(_ key: CartridgeKey, _ cartridgeVersion: CartridgeVersion) -> InstalledVersion? {
        installed[key]?[cartridgeVersion]
    }

    /// The cartridges present, sorted.
    public var keys: [CartridgeKey] { installed.keys.sorted() }

    /// Every manifest of one cartridge (built now if not yet built).
    public func versions(of key: CartridgeKey) -> Versions? {
        guard let byVersion = installed[key] else { return nil }
        var versions = Versions()
        for (cv, version) in byVersion {
            for manifest in version.projections { versions[manifest.version, default: [:]][cv] = manifest }
        }
        return versions
    }

    /// The greatest cartridge version providing software version `sw`, or `wanted` if it does.
    private func cartridgeVersion(_ key: CartridgeKey, providing sw: CartridgeVersion, wanted: CartridgeVersion?) -> InstalledVersion? {
        guard let byVersion = installed[key] else { return nil }
        if let wanted { return byVersion[wanted].flatMap { $0.versions.contains(sw) ? $0 : nil } }
        return byVersion.values.filter { $0.versions.contains(sw) }.max { $0.cartridgeVersion < $1.cartridgeVersion }
    }

    /// The manifest for a tuple; `cartridgeVersion` nil (or `_`, as the original allowed) means
    /// the default, the greatest cartridge version providing that software version.
    public func select(vendor: String, name: String, version: String, cartridgeVersion: String? = nil) throws(CartridgesError) -> Manifest {
        let wanted = cartridgeVersion == "_" ? nil : cartridgeVersion
        let notFound = CartridgesError.notFound(vendor: vendor, name: name, version: version, cartridgeVersion: cartridgeVersion ?? "_")
        guard let sw = CartridgeVersion(version) else { throw notFound }
        var cv: CartridgeVersion?
        if let wanted {
            guard let parsed = CartridgeVersion(wanted) else { throw notFound }
            cv = parsed
        }
        guard let installed = self.cartridgeVersion(CartridgeKey(vendor: vendor, name: name), providing: sw, wanted: cv),
              let manifest = installed.projections.first(where: { $0.version == sw }) else { throw notFound }
        return manifest
    }

    public func exists(vendor: String, name: String, version: String, cartridgeVersion: String) -> Bool {
        guard let sw = CartridgeVersion(version), let cv = CartridgeVersion(cartridgeVersion) else { return false }
        return self.cartridgeVersion(CartridgeKey(vendor: vendor, name: name), providing: sw, wanted: cv) != nil
    }

    /// The greatest cartridge version of a software version.
    public func defaultCartridgeVersion(vendor: String, name: String, version: String) -> CartridgeVersion? {
        guard let sw = CartridgeVersion(version) else { return nil }
        return cartridgeVersion(CartridgeKey(vendor: vendor, name: name), providing: sw, wanted: nil)?.cartridgeVersion
    }

    /// The greatest cartridge version of a cartridge over all its software versions.
    public func latestCartridgeVersion(vendor: String, name: String) -> CartridgeVersion? {
        installed[CartridgeKey(vendor: vendor, name: name)]?.keys.max()
    }

    /// What the broker's catalogue offers: for each cartridge, the software versions that its
    /// newest cartridge version provides (newest software version first), as that version.
    /// Software versions dropped by the newest cartridge version are hidden, as in the original.
    public func latestVersions() -> [Manifest] {
        var result: [Manifest] = []
        for key in keys {
            guard let latest = installed[key]!.max(by: { $0.key < $1.key })?.value else { continue }
            result += latest.projections.sorted { $0.version > $1.version }
        }
        return result
    }

    /// Every entry, sorted by vendor, name, software version, cartridge version; no manifest is built.
    public var tuples: [Tuple] {
        var result: [Tuple] = []
        for key in keys {
            var entries: [Tuple] = []
            for (cv, version) in installed[key]! {
                for sw in version.versions {
                    entries.append(Tuple(vendor: key.vendor, name: key.name, version: sw, cartridgeVersion: cv))
                }
            }
            result += entries.sorted { ($0.version, $0.cartridgeVersion) < ($1.version, $1.cartridgeVersion) }
        }
        return result
    }

    /// Every (software version, cartridge version) entry's manifest, in the order of `tuples`.
    public var entries: [Manifest] {
        tuples.compactMap { tuple in
            installed[CartridgeKey(vendor: tuple.vendor, name: tuple.name)]?[tuple.cartridgeVersion]?
                .projections.first { $0.version == tuple.version }
        }
    }

    public var count: Int { installed.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.versions.count } } }

    /// The listing, one `(vendor, name, version, cartridge_version)` tuple a line.
    public var listing: String {
        var text = ""
        for tuple in tuples {
            text += tuple.text
            text += "\n"
        }
        return text
    }
}

/// One installed cartridge version: the software versions it provides, always; its projected
/// manifests, built on first use from the manifest map the index recorded (or given at once
/// when the manifest was just parsed). Shared by the snapshots that contain it.
final class InstalledVersion: Sendable {
    let key: RepositorySnapshot.CartridgeKey
    let cartridgeVersion: CartridgeVersion
    /// Ascending, as the projections are.
    let versions: [CartridgeVersion]
    /// The manifest file, for the projections' `path` and for messages.
    let path: String
    /// The encoded manifest map (`RepositoryIndex`), or the projections once built.
    private let content: Mutex<Content>

    private enum Content {
        case encoded(ArraySlice<UInt8>)
        case built([Manifest])
    }

    init(key: RepositorySnapshot.CartridgeKey, cartridgeVersion: CartridgeVersion, versions: [CartridgeVersion], path: String,
         encodedMap: ArraySlice<UInt8>) {
        self.key = key
        self.cartridgeVersion = cartridgeVersion
        self.versions = versions
        self.path = path
        content = Mutex(.encoded(encodedMap))
    }

    init(key: RepositorySnapshot.CartridgeKey, document: ManifestDocument, path: String) {
        self.key = key
        cartridgeVersion = document.cartridgeVersion
        versions = document.projections.map(\.version)
        self.path = path
        content = Mutex(.built(document.projections))
    }

    /// The projections, one per software version, ascending. Empty only if the index's map no
    /// longer passes validation (an index written by another release of the parser; the format
    /// version is raised whenever validation changes, so this should not happen).
    var projections: [Manifest] {
        content.withLock { content in
            switch content {
            case .built(let manifests):
                return manifests
            case .encoded(let bytes):
                let manifests = RepositoryIndex.decodeMap(bytes).flatMap { try? ManifestDocument.parse(map: $0, path: path).projections } ?? []
                content = .built(manifests)
                return manifests
            }
        }
    }

    var tuples: [String] {
        versions.map { RepositorySnapshot.Tuple(vendor: key.vendor, name: key.name, version: $0, cartridgeVersion: cartridgeVersion).text }
    }
}
