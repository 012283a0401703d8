#if canImport(Glibc)
import Glibc
#endif

/// The few text helpers the node needs beyond the standard library, so that no module needs
/// the full Foundation (and ICU) for them.
public enum CFormat {
    /// C `printf` formatting of numbers (`%.3f`, `%02x`, `%04d`), in the C locale the node never
    /// leaves: the fixed formats the original wrote.
    public static func string(_ format: String, _ arguments: CVarArg...) -> String {
        withVaList(arguments) { list in
            var buffer = [CChar](repeating: 0, count: 256)
            var count = Int(vsnprintf(&buffer, buffer.count, format, list))
            if count >= buffer.count {
                buffer = [CChar](repeating: 0, count: count + 1)
                count = Int(withVaList(arguments) { vsnprintf(&buffer, buffer.count, format, $0) })
            }
            guard count > 0 else { return "" }
            return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

extension StringProtocol {
    /// The text without the leading and trailing characters `strip` selects: whitespace and
    /// newlines unless told otherwise.
    public func trimmed(while strip: (Character) -> Bool = { $0.isWhitespace }) -> String {
        guard let first = firstIndex(where: { !strip($0) }), let last = lastIndex(where: { !strip($0) }) else { return "" }
        return String(self[first...last])
    }
}
