/// Which gears of this node use a cartridge version: asked before an erase. The repository does
/// not look into gear homes (a gear's files are its user's to forge); the gear manager answers
/// from its own records.
public protocol CartridgeUsage: Sendable {
    /// Gears (uuids) using `(vendor, name, *, cartridgeVersion)`.
    func gears(using vendor: String, name: String, cartridgeVersion: String) -> [String]
}
