// Ruby Marshal format 4.8: the public entry points.
//
// The reader (MarshalReader.swift) is strict and never traps on hostile
// input; the writer (MarshalWriter.swift) produces the same bytes as Ruby
// for the values MCollective sends.

/// A Marshal stream could not be decoded.
public struct MarshalError: Error, CustomStringConvertible, Equatable {
    /// Byte offset in the stream where the problem was found.
    public let offset: Int
    public let reason: String

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String {
        "Marshal data invalid at offset \(offset): \(reason)"
    }
}

public enum RubyMarshal {
    /// Bounds applied while decoding.
    public struct Limits: Sendable {
        /// Largest stream accepted.
        public var maxBytes: Int = 1 << 24
        /// Deepest nesting of values (every value, including `I` and `C`
        /// wrappers, counts as one level).
        public var maxDepth: Int = 64
        /// Most values decoded from one stream. An `@` object link counts
        /// as many values as the object it points to, so a stream cannot
        /// expand exponentially through repeated links.
        public var maxElements: Int = 1 << 20

        public init(maxBytes: Int = 1 << 24, maxDepth: Int = 64, maxElements: Int = 1 << 20) {
            self.maxBytes = maxBytes
            self.maxDepth = maxDepth
            self.maxElements = maxElements
        }

        public static let `default` = Limits()
    }

    /// Decodes one complete Marshal 4.8 stream (version bytes `04 08`, one
    /// value, nothing after it).
    public static func load(_ bytes: [UInt8], limits: Limits = .default) throws(MarshalError) -> RubyValue {
        var reader = MarshalReader(bytes: bytes, limits: limits)
        return try reader.readStream()
    }

    /// Encodes `value` as a Marshal 4.8 stream, byte-identical to Ruby's
    /// `Marshal.dump` for the values MCollective exchanges.
    public static func dump(_ value: RubyValue) -> [UInt8] {
        var writer = MarshalWriter()
        writer.write(value)
        return writer.output
    }
}
