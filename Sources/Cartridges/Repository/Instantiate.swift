#if canImport(Glibc)
import Glibc
#endif

extension CartridgeRepository {
    /// Copies an installed cartridge version into a gear: every top-level entry except `usr`,
    /// dot-files included, and `usr` as a symbolic link to the repository's shared copy (the
    /// reason erase protects versions gears use). The target must not exist; on failure it is
    /// removed.
    public func instantiate(_ manifest: Manifest, into target: String) throws(CartridgesError) {
        let source = path + "/" + manifest.repositoryDirectory
        guard Posix.isDirectory(source, followLinks: false) else {
            throw .notFound(vendor: manifest.vendor, name: manifest.name, version: manifest.version.text,
                            cartridgeVersion: manifest.cartridgeVersion.text)
        }
        try Posix.mkdir(target, mode: 0o755)
        do throws(CartridgesError) {
            for entry in try Posix.listDirectory(source) where entry != "usr" {
                try FileTree.copy(from: source + "/" + entry, to: target + "/" + entry)
            }
            if Posix.isDirectory(source + "/usr", followLinks: false) {
                guard symlink(source + "/usr", target + "/usr") == 0 else { throw CartridgesError.io(step: "symlink", path: target + "/usr", errno: errno) }
            }
            for required in ["metadata", "bin"] where !Posix.isDirectory(target + "/" + required, followLinks: false) {
                throw CartridgesError.invalidSource(path: source, reason: "Malformed cartridge (\(manifest.name), \(manifest.version), \(manifest.cartridgeVersion)): \(required) is not a directory")
            }
        } catch {
            try? Posix.removeTree(target)
            throw error
        }
    }
}
