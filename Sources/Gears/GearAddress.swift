import NodeConfig

/// A gear's loopback block: 127 addresses derived from its uid, as in the original.
public enum GearAddress {
    /// `127.0.0.0 + (offset << 7) + ((uid mod wraparound) << 7) + host`, host in 1...127.
    public static func ip(uid: UInt32, host: Int, wraparoundUID: Int = 65536, wraparoundOffset: Int = 1) -> String? {
        guard (1...127).contains(host), wraparoundUID > 0 else { return nil }
        let offset = Int(uid) < wraparoundUID ? 0 : wraparoundOffset
        let value = 0x7F00_0000 + (offset << 7) + ((Int(uid) % wraparoundUID) << 7) + host
        return "\((value >> 24) & 0xff).\((value >> 16) & 0xff).\((value >> 8) & 0xff).\(value & 0xff)"
    }

    /// Every address of a gear's block: the targets its routes may point at.
    public static func block(uid: UInt32, wraparoundUID: Int = 65536, wraparoundOffset: Int = 1) -> Set<String> {
        Set((1...127).compactMap { ip(uid: uid, host: $0, wraparoundUID: wraparoundUID, wraparoundOffset: wraparoundOffset) })
    }

    /// The block with the node's wraparound settings.
    public static func block(uid: UInt32, configuration: NodeConfiguration) -> Set<String> {
        block(uid: uid, wraparoundUID: configuration.integer("WRAPAROUND_UID"),
              wraparoundOffset: configuration.integer("IP_ADDRESS_WRAPAROUND_OFFSET"))
    }
}
