/// An immutable view of the repository index: vendor -> name -> software version -> cartridge
/// version -> projected manifest.
///
/// There is no stored "default" entry: the default cartridge version of a software version is
/// computed as the greatest present, so installing an older version or erasing any version can
/// never leave a stale or dangling default.
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

    /// Software version -> cartridge version -> manifest, for one cartridge.
    public typealias Versions = [CartridgeVersion: [CartridgeVersion: Manifest]]

    public private(set) var cartridges: [CartridgeKey: Versions] = [:]

    public init() {}

    /// Replaces everything known about one cartridge (used after its directory changed on disk).
    mutating func replace(_ key: CartridgeKey, with manifests: [Manifest]) {
        var versions = Versions()
        for manifest in manifests { versions[manifest.version, default: [:]][manifest.cartridgeVersion] = manifest }
        cartridges[key] = versions.isEmpty ? nil : versions
    }

    /// The manifest for a tuple; `cartridgeVersion` nil (or `_`, as the original allowed) means
    /// the default, the greatest cartridge version providing that software version.
    public func select(vendor: String, name: String, version: String, cartridgeVersion: String? = nil) throws(CartridgesError) -> Manifest {
        let wanted = cartridgeVersion == "_" ? nil : cartridgeVersion
        guard let sw = CartridgeVersion(version),
              let slice = cartridges[CartridgeKey(vendor: vendor, name: name)]?[sw],
              let manifest = wanted.map({ CartridgeVersion($0).flatMap { slice[$0] } }) ?? slice.max(by: { $0.key < $1.key })?.value
        else {
            throw .notFound(vendor: vendor, name: name, version: version, cartridgeVersion: cartridgeVersion ?? "_")
        }
        return manifest
    }

    public func exists(vendor: String, name: String, version: String, cartridgeVersion: String) -> Bool {
        (try? select(vendor: vendor, name: name, version: version, cartridgeVersion: cartridgeVersion)) != nil
    }

    /// The greatest cartridge version of a software version.
    public func defaultCartridgeVersion(vendor: String, name: String, version: String) -> CartridgeVersion? {
        guard let sw = CartridgeVersion(version) else { return nil }
        return cartridges[CartridgeKey(vendor: vendor, name: name)]?[sw]?.keys.max()
    }

    /// The greatest cartridge version of a cartridge over all its software versions.
    public func latestCartridgeVersion(vendor: String, name: String) -> CartridgeVersion? {
        cartridges[CartridgeKey(vendor: vendor, name: name)]?.values.flatMap(\.keys).max()
    }

    /// What the broker's catalogue offers: for each cartridge, the software versions that its
    /// newest cartridge version provides (newest software version first), as that version.
    /// Software versions dropped by the newest cartridge version are hidden, as in the original.
    public func latestVersions() -> [Manifest] {
        var result: [Manifest] = []
        for key in cartridges.keys.sorted() {
            let versions = cartridges[key]!
            guard let latest = versions.values.flatMap(\.keys).max() else { continue }
            for sw in versions.keys.sorted(by: >) {
                if let manifest = versions[sw]?[latest] { result.append(manifest) }
            }
        }
        return result
    }

    /// Every (software version, cartridge version) entry, sorted by vendor, name, software
    /// version, cartridge version.
    public var entries: [Manifest] {
        var result: [Manifest] = []
        result.reserveCapacity(count)
        for key in cartridges.keys.sorted() {
            let versions = cartridges[key]!
            for sw in versions.keys.sorted() {
                let slice = versions[sw]!
                for cv in slice.keys.sorted() { result.append(slice[cv]!) }
            }
        }
        return result
    }

    public var count: Int { cartridges.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } } }

    /// The listing, one `(vendor, name, version, cartridge_version)` tuple a line.
    public var listing: String { entries.map { $0.tuple + "\n" }.joined() }
}
