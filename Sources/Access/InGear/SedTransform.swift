#if canImport(Glibc)
import Glibc
#endif

/// One sed `s` expression as GNU tar's `--transform` takes it (`s|regex|replacement|flags`,
/// any delimiter), applied to member names without a shell or a tar: a cartridge's
/// `restore_transforms` and the two the original always added. POSIX basic regular
/// expressions (`x` flag: extended), `&` and `\1`..`\9` in the replacement, flags `g`, `i`, a
/// number (only that match), and tar's scope flags `r`/`R`, `s`/`S`, `h`/`H` (apply to names,
/// symlink targets, hard link targets; all three by default).
public final class SedTransform: @unchecked Sendable {
    public let expression: String
    private let regex: UnsafeMutablePointer<regex_t>
    private let replacement: [UInt8]
    private let global: Bool
    private let occurrence: Int
    public let appliesToNames: Bool
    public let appliesToSymlinks: Bool
    public let appliesToHardLinks: Bool

    public struct Invalid: Error, CustomStringConvertible {
        public var expression: String
        public var reason: String
        public var description: String { "invalid transform \(expression): \(reason)" }
    }

    public init(_ expression: String) throws(Invalid) {
        self.expression = expression
        let bytes = Array(expression.utf8)
        guard bytes.count >= 4, bytes[0] == UInt8(ascii: "s") else { throw Invalid(expression: expression, reason: "expected s<d>regex<d>replacement<d>flags") }
        let delimiter = bytes[1]
        guard delimiter != UInt8(ascii: "\\"), delimiter != UInt8(ascii: "\n") else {
            throw Invalid(expression: expression, reason: "the delimiter cannot be a backslash or a newline")
        }
        // Split on unescaped delimiters; an escaped delimiter stands for itself.
        var parts: [[UInt8]] = [[]]
        var index = 2
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\\") && index + 1 < bytes.count {
                if bytes[index + 1] == delimiter && parts.count < 3 { parts[parts.count - 1].append(delimiter) } else {
                    parts[parts.count - 1] += [byte, bytes[index + 1]]
                }
                index += 2
                continue
            }
            if byte == delimiter && parts.count < 3 { parts.append([]) } else { parts[parts.count - 1].append(byte) }
            index += 1
        }
        guard parts.count == 3 else { throw Invalid(expression: expression, reason: "expected three delimited parts") }
        var flags: Int32 = 0
        var global = false
        var occurrence = 0
        var names = true, symlinks = true, hardLinks = true
        for flag in parts[2] {
            switch flag {
            case UInt8(ascii: "g"): global = true
            case UInt8(ascii: "i"): flags |= REG_ICASE
            case UInt8(ascii: "x"): flags |= REG_EXTENDED
            case UInt8(ascii: "0")...UInt8(ascii: "9"): occurrence = occurrence * 10 + Int(flag - UInt8(ascii: "0"))
            case UInt8(ascii: "r"): names = true
            case UInt8(ascii: "R"): names = false
            case UInt8(ascii: "s"): symlinks = true
            case UInt8(ascii: "S"): symlinks = false
            case UInt8(ascii: "h"): hardLinks = true
            case UInt8(ascii: "H"): hardLinks = false
            default: throw Invalid(expression: expression, reason: "unknown flag '\(Character(Unicode.Scalar(flag)))'")
            }
        }
        let pattern = parts[0]
        guard occurrence < 1000 else { throw Invalid(expression: expression, reason: "occurrence number too large") }
        let compiled = UnsafeMutablePointer<regex_t>.allocate(capacity: 1)
        let rc = (pattern + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { regcomp(compiled, $0.baseAddress!, flags) }
        }
        guard rc == 0 else {
            compiled.deallocate()
            throw Invalid(expression: expression, reason: "the regular expression does not compile (regcomp \(rc))")
        }
        regex = compiled
        replacement = parts[1]
        self.global = global
        self.occurrence = occurrence
        appliesToNames = names
        appliesToSymlinks = symlinks
        appliesToHardLinks = hardLinks
    }

    deinit {
        regfree(regex)
        regex.deallocate()
    }

    /// `name` transformed (unchanged when nothing matches).
    public func apply(_ name: [UInt8]) -> [UInt8] {
        guard !name.contains(0) else { return name }
        var output: [UInt8] = []
        var position = 0
        var count = 0
        var matches = [regmatch_t](repeating: regmatch_t(), count: 10)
        let subject = name + [0]
        while position <= name.count {
            let rc = subject.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) { chars in
                    regexec(regex, chars.baseAddress! + position, 10, &matches, position > 0 ? REG_NOTBOL : 0)
                }
            }
            guard rc == 0 else { break }
            let matchStart = position + Int(matches[0].rm_so), matchEnd = position + Int(matches[0].rm_eo)
            count += 1
            output += name[position..<matchStart]
            if occurrence == 0 || count == occurrence {
                output += substitute(name, matches, base: position)
            } else {
                output += name[matchStart..<matchEnd]
            }
            if matchEnd == matchStart {
                // An empty match: keep one character and move on, as sed does.
                if matchStart < name.count { output.append(name[matchStart]) }
                position = matchEnd + 1
            } else {
                position = matchEnd
            }
            if !(global || (occurrence != 0 && count < occurrence)) { break }
        }
        if position < name.count { output += name[position...] }
        return output
    }

    private func substitute(_ name: [UInt8], _ matches: [regmatch_t], base: Int) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        func group(_ n: Int) -> ArraySlice<UInt8> {
            let m = matches[n]
            guard m.rm_so >= 0, m.rm_eo >= m.rm_so else { return [] }
            return name[(base + Int(m.rm_so))..<(base + Int(m.rm_eo))]
        }
        while index < replacement.count {
            let byte = replacement[index]
            if byte == UInt8(ascii: "&") {
                out += group(0)
            } else if byte == UInt8(ascii: "\\") && index + 1 < replacement.count {
                let next = replacement[index + 1]
                if next >= UInt8(ascii: "0") && next <= UInt8(ascii: "9") { out += group(Int(next - UInt8(ascii: "0"))) }
                else if next == UInt8(ascii: "n") { out.append(UInt8(ascii: "\n")) }
                else { out.append(next) }
                index += 1
            } else {
                out.append(byte)
            }
            index += 1
        }
        return out
    }
}
