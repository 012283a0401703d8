/// A software or cartridge version, kept exactly as written (`1.10` stays `1.10`).
///
/// Valid versions are `digits(.digits)*`, checked in linear time, at most 64 characters.
/// Ordering compares segments numerically (`1.9 < 1.10`), missing segments count as zero, and
/// versions that are numerically equal but written differently (`1` and `1.0`) are ordered by
/// their text so that the order is total and stable. Equality is textual: `1` and `1.0` are
/// different keys, as they are different directories on disk.
public struct CartridgeVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let text: String

    public static let maximumLength = 64

    public init?(_ text: String) {
        guard Self.isValid(text) else { return nil }
        self.text = text
    }

    public var description: String { text }

    public static func isValid(_ text: String) -> Bool {
        let bytes = text.utf8
        guard !bytes.isEmpty, bytes.count <= maximumLength else { return false }
        var previousWasDigit = false
        for byte in bytes {
            if byte >= 48 && byte <= 57 {
                previousWasDigit = true
            } else if byte == UInt8(ascii: ".") && previousWasDigit {
                previousWasDigit = false
            } else {
                return false
            }
        }
        return previousWasDigit
    }

    public static func < (lhs: CartridgeVersion, rhs: CartridgeVersion) -> Bool {
        let order = numericOrder(lhs.text, rhs.text)
        return order != 0 ? order < 0 : lhs.text < rhs.text
    }

    /// -1, 0 or 1 comparing two valid version strings segment by segment, numerically.
    static func numericOrder(_ a: String, _ b: String) -> Int {
        var left = a.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).makeIterator()
        var right = b.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).makeIterator()
        while true {
            let l = left.next()
            let r = right.next()
            if l == nil && r == nil { return 0 }
            let order = compareDigits(l.map(Array.init) ?? [48], r.map(Array.init) ?? [48])
            if order != 0 { return order }
        }
    }

    /// Compares two digit strings of any length as numbers (no overflow for 30-digit segments).
    private static func compareDigits(_ a: [UInt8], _ b: [UInt8]) -> Int {
        let x = a.drop(while: { $0 == 48 })
        let y = b.drop(while: { $0 == 48 })
        if x.count != y.count { return x.count < y.count ? -1 : 1 }
        for (p, q) in zip(x, y) where p != q { return p < q ? -1 : 1 }
        return 0
    }
}
