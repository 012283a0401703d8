import Access

/// Builds tar archives in memory, hostile ones included: ustar headers with a correct checksum
/// (unless told otherwise), pax `x` headers and GNU `L` long names, any type flag.
struct TarBuilder {
    var bytes: [UInt8] = []

    static func octal(_ value: Int, width: Int) -> [UInt8] {
        let digits = Array(String(value, radix: 8).utf8)
        return Array(repeating: UInt8(ascii: "0"), count: max(0, width - 1 - digits.count)) + digits + [0]
    }

    static func header(name: [UInt8], type: UInt8, size: Int = 0, mode: Int = 0o644, link: [UInt8] = [],
                       gnu: Bool = false, corruptChecksum: Bool = false) -> [UInt8] {
        var block = [UInt8](repeating: 0, count: 512)
        func put(_ field: [UInt8], _ at: Int, _ width: Int) {
            for (i, b) in field.prefix(width).enumerated() { block[at + i] = b }
        }
        put(name, 0, 100)
        put(octal(mode, width: 8), 100, 8)
        put(octal(1000, width: 8), 108, 8)
        put(octal(1000, width: 8), 116, 8)
        put(octal(size, width: 12), 124, 12)
        put(octal(1_700_000_000, width: 12), 136, 12)
        block[156] = type
        put(link, 157, 100)
        put(gnu ? Array("ustar  \0".utf8) : Array("ustar\u{0}00".utf8), 257, 8)
        put(Array("user".utf8), 265, 32)
        put(Array("group".utf8), 297, 32)
        put(Array(repeating: UInt8(ascii: " "), count: 8), 148, 8)
        var sum = block.reduce(0) { $0 + Int($1) }
        if corruptChecksum { sum += 1 }
        let digits = Array(String(sum, radix: 8).utf8)
        put(Array(repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits + [0, UInt8(ascii: " ")], 148, 8)
        return block
    }

    mutating func appendData(_ data: [UInt8]) {
        bytes += data
        let remainder = data.count % 512
        if remainder != 0 { bytes += [UInt8](repeating: 0, count: 512 - remainder) }
    }

    mutating func directory(_ name: String, mode: Int = 0o755) {
        bytes += Self.header(name: Array(name.utf8), type: UInt8(ascii: "5"), mode: mode)
    }

    mutating func file(_ name: String, _ content: [UInt8], mode: Int = 0o644, corruptChecksum: Bool = false) {
        bytes += Self.header(name: Array(name.utf8), type: UInt8(ascii: "0"), size: content.count, mode: mode, corruptChecksum: corruptChecksum)
        appendData(content)
    }

    mutating func file(_ name: String, _ text: String, mode: Int = 0o644) { file(name, Array(text.utf8), mode: mode) }

    mutating func symlink(_ name: String, to target: String) {
        bytes += Self.header(name: Array(name.utf8), type: UInt8(ascii: "2"), mode: 0o777, link: Array(target.utf8))
    }

    mutating func hardLink(_ name: String, to target: String) {
        bytes += Self.header(name: Array(name.utf8), type: UInt8(ascii: "1"), link: Array(target.utf8))
    }

    mutating func special(_ name: String, type: Character) {
        bytes += Self.header(name: Array(name.utf8), type: UInt8(ascii: type.unicodeScalars.first!))
    }

    /// A pax extended header whose records apply to the next member.
    mutating func pax(_ records: [(String, String)]) {
        var body: [UInt8] = []
        for (key, value) in records {
            let core = " \(key)=\(value)\n"
            var length = core.utf8.count + 1
            while String(length).utf8.count + core.utf8.count != length { length = String(length).utf8.count + core.utf8.count }
            body += Array("\(length)\(core)".utf8)
        }
        bytes += Self.header(name: Array("./PaxHeaders/x".utf8), type: UInt8(ascii: "x"), size: body.count)
        appendData(body)
    }

    /// A GNU long name record for the next member.
    mutating func longName(_ name: String) {
        let body = Array(name.utf8) + [0]
        bytes += Self.header(name: Array("././@LongLink".utf8), type: UInt8(ascii: "L"), size: body.count, gnu: true)
        appendData(body)
    }

    mutating func end() { bytes += [UInt8](repeating: 0, count: 1024) }

    func ended() -> [UInt8] {
        var copy = self
        copy.end()
        return copy.bytes
    }
}
