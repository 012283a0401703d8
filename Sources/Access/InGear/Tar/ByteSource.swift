import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Where a `TarReader` reads from: a pipe (gzip's output) or bytes in memory (tests).
public protocol ByteSource: AnyObject {
    /// Reads up to `buffer.count` bytes; 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws(InGearError) -> Int
}

/// Bytes in memory.
public final class MemorySource: ByteSource {
    let bytes: [UInt8]
    var position = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(InGearError) -> Int {
        let n = min(buffer.count, bytes.count - position)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + position, byteCount: n) }
        position += n
        return n
    }
}

/// A descriptor (not owned: the caller closes it).
public final class DescriptorSource: ByteSource {
    let fd: Int32
    let name: String

    public init(_ fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(InGearError) -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw .system(SystemError(step: "read", path: name, errno: errno))
        }
    }
}
