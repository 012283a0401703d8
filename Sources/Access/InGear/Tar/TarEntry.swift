/// One member of a tar archive as its headers describe it (pax and GNU long-name headers
/// already applied). Names are bytes: an archive's names need not be UTF-8.
public struct TarEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case file, directory, symlink, hardLink
        case characterDevice, blockDevice, fifo
        /// Any other type flag (GNU sparse, multi-volume, dump directory, ...).
        case other(UInt8)
    }

    public var name: [UInt8]
    public var kind: Kind
    public var size: Int64
    /// The target of a symbolic or hard link.
    public var linkName: [UInt8]
    public var mode: UInt32
    public var modificationTime: Int64

    public init(name: [UInt8], kind: Kind, size: Int64 = 0, linkName: [UInt8] = [], mode: UInt32 = 0o644, modificationTime: Int64 = 0) {
        self.name = name
        self.kind = kind
        self.size = size
        self.linkName = linkName
        self.mode = mode
        self.modificationTime = modificationTime
    }

    public var displayName: String { pathText(name) }
}

/// What a reader accepts before it allocates: bounded names, meta headers, member count and
/// total size.
public struct TarLimits: Sendable {
    /// Longest member or link name, in bytes (Linux's PATH_MAX).
    public var nameBytes = 4096
    /// Largest pax extended header, and largest GNU long-name record.
    public var metaHeaderBytes = 1 << 20
    /// Most members.
    public var members = 2_000_000
    /// Most bytes in the whole (uncompressed) tar stream.
    public var totalBytes: Int64 = 64 << 30

    public init() {}
}
