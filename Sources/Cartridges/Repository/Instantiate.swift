#if canImport(Glibc)
import Glibc
#endif

extension CartridgeRepository {
    /// The repository's own copy of an installed cartridge version (root's, never a gear's):
    /// what a gear's cartridge directory is instantiated from, and where the node reads the
    /// cartridge's metadata (`managed_files.yml`) instead of the gear's writable copy.
    public func sourceDirectory(of manifest: Manifest) throws(CartridgesError) -> String {
        let source = path + "/" + manifest.repositoryDirectory
        guard Posix.isDirectory(source, followLinks: false) else {
            throw .notFound(vendor: manifest.vendor, name: manifest.name, version: manifest.version.text,
                            cartridgeVersion: manifest.cartridgeVersion.text)
        }
        for required in ["metadata", "bin"] where !Posix.isDirectory(source + "/" + required, followLinks: false) {
            throw .invalidSource(path: source, reason: "Malformed cartridge (\(manifest.name), \(manifest.version), \(manifest.cartridgeVersion)): \(required) is not a directory")
        }
        return source
    }
}
