import Cartridges
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// The repository listing in the two forms admins and scripts use.
public enum Listing {
    /// One entry of `--json` listings.
    public struct Entry: Codable, Equatable, Sendable {
        public var vendor: String
        public var name: String
        public var version: String
        public var cartridgeVersion: String
        /// This cartridge version is the default (greatest) for its software version.
        public var isDefault: Bool
        /// `CARTRIDGE_BASE_PATH` ships this cartridge version now; false once its package is gone.
        public var shipped: Bool
        public var displayName: String?
        public var categories: [String]
        public var path: String

        enum CodingKeys: String, CodingKey {
            case vendor, name, version, shipped, categories, path
            case cartridgeVersion = "cartridge_version"
            case isDefault = "default"
            case displayName = "display_name"
        }
    }

    /// The original's text: one `(vendor, name, version, cartridge_version)` a line, sorted.
    public static func text(_ snapshot: RepositorySnapshot) -> String { snapshot.listing }

    public static func entries(_ repository: CartridgeRepository) -> [Entry] {
        let snapshot = repository.snapshot
        let shipped = repository.shippedCartridges()
        return snapshot.entries.map { manifest in
            Entry(
                vendor: manifest.vendor, name: manifest.name, version: manifest.version.text,
                cartridgeVersion: manifest.cartridgeVersion.text,
                isDefault: snapshot.defaultCartridgeVersion(vendor: manifest.vendor, name: manifest.name,
                                                            version: manifest.version.text) == manifest.cartridgeVersion,
                shipped: shipped[.init(vendor: manifest.vendor, name: manifest.name,
                                       cartridgeVersion: manifest.cartridgeVersion.text)] != nil,
                displayName: manifest.displayName, categories: manifest.categories,
                path: repository.path + "/" + manifest.repositoryDirectory)
        }
    }

    public static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }
}
