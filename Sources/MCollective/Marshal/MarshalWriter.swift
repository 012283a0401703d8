// Ruby Marshal 4.8 encoder, byte-identical to Ruby's Marshal.dump for the
// values MCollective sends. Symbols are written once per stream and then as
// `;` links, like Ruby.
//
// Object links (`@`): `RubyValue` has no object identity, so repeated equal
// Strings, Arrays, Hashes are written in full (Ruby loads them as equal
// values). The cases where Ruby ends up linking by *value* are reproduced,
// so that the bytes stay identical to Ruby's:
// * equal Floats that 64-bit Ruby keeps as immediates ("flonums");
// * String Hash keys: `Hash#[]=` interns them (`rb_hash_key_str` →
//   fstring), so equal keys (same bytes and encoding) anywhere in the
//   stream are one object, written once and linked afterwards;
// * repeated `:encoding` names.
// For that the writer numbers every object the way Ruby's dumper does.

struct MarshalWriter {
    private(set) var output: [UInt8] = [4, 8]
    private var symbols: [String: Int] = [:]
    /// Objects written so far (Ruby's dump table: Strings, Arrays, Hashes,
    /// Floats, Bignums, Regexps, encoding-name Strings).
    private var objectCount = 0
    /// Flonum bit pattern → object index.
    private var flonums: [UInt64: Int] = [:]
    /// Encoding name → index of the name String.
    private var encodingNames: [String: Int] = [:]
    /// String Hash key → index of its first occurrence as a key.
    private var stringKeys: [RubyValue: Int] = [:]

    mutating func write(_ value: RubyValue) {
        switch value {
        case .null:
            output.append(UInt8(ascii: "0"))
        case .bool(let b):
            output.append(UInt8(ascii: b ? "T" : "F"))
        case .int(let n):
            writeInteger(n)
        case .float(let d):
            if Self.isFlonum(d) {
                if let index = flonums[d.bitPattern] {
                    writeLink(index)
                    return
                }
                flonums[d.bitPattern] = objectCount
            }
            objectCount += 1
            output.append(UInt8(ascii: "f"))
            writeBytes(Array(Self.rubyFloatText(d).utf8))
        case .string(let bytes, let encoding):
            writeString(bytes, encoding)
        case .symbol(let name):
            writeSymbol(name)
        case .array(let items):
            objectCount += 1
            output.append(UInt8(ascii: "["))
            writeLong(items.count)
            for item in items {
                write(item)
            }
        case .hash(let hash):
            objectCount += 1
            output.append(UInt8(ascii: "{"))
            writeLong(hash.pairs.count)
            for pair in hash.pairs {
                if case .string = pair.key {
                    if let index = stringKeys[pair.key] {
                        writeLink(index)
                    } else {
                        stringKeys[pair.key] = objectCount
                        write(pair.key)
                    }
                } else {
                    write(pair.key)
                }
                write(pair.value)
            }
        case .regexp(let source, let options):
            // Ruby: ASCII-only sources are US-ASCII (:E false), others UTF-8.
            objectCount += 1
            output.append(UInt8(ascii: "I"))
            output.append(UInt8(ascii: "/"))
            let raw = Array(source.utf8)
            writeBytes(raw)
            output.append(options)
            writeLong(1)
            writeSymbol("E")
            output.append(UInt8(ascii: raw.allSatisfy { $0 < 0x80 } ? "F" : "T"))
        }
    }

    // MARK: - Pieces

    /// Marshal's compact "long" (Ruby's w_long). Valid for -2^32 < n < 2^32.
    mutating func writeLong(_ n: Int) {
        if n == 0 {
            output.append(0)
        } else if n > 0 && n < 123 {
            output.append(UInt8(n + 5))
        } else if n < 0 && n > -124 {
            output.append(UInt8(bitPattern: Int8(n - 5)))
        } else {
            precondition(n > -(1 << 32) && n < (1 << 32), "length \(n) cannot be written as a Marshal long")
            var x = n
            var buffer: [UInt8] = []
            for i in 1...4 {
                buffer.append(UInt8(truncatingIfNeeded: x))
                x >>= 8
                if x == 0 {
                    output.append(UInt8(i))
                    break
                }
                if x == -1 {
                    output.append(UInt8(bitPattern: Int8(-i)))
                    break
                }
            }
            output.append(contentsOf: buffer)
        }
    }

    private mutating func writeLink(_ index: Int) {
        output.append(UInt8(ascii: "@"))
        writeLong(index)
    }

    private mutating func writeBytes(_ bytes: [UInt8]) {
        writeLong(bytes.count)
        output.append(contentsOf: bytes)
    }

    /// Fixnum for -2^30 <= n < 2^30 (what 64-bit Ruby writes as `i`),
    /// otherwise a Bignum with a magnitude padded to whole 16-bit words.
    private mutating func writeInteger(_ n: Int) {
        if n >= -(1 << 30) && n < (1 << 30) {
            output.append(UInt8(ascii: "i"))
            writeLong(n)
            return
        }
        objectCount += 1  // Ruby dumps a fresh Bignum: numbered, never linked
        output.append(UInt8(ascii: "l"))
        output.append(UInt8(ascii: n < 0 ? "-" : "+"))
        var magnitude = n.magnitude
        var raw: [UInt8] = []
        while magnitude != 0 {
            raw.append(UInt8(truncatingIfNeeded: magnitude))
            magnitude >>= 8
        }
        if raw.count % 2 == 1 {
            raw.append(0)
        }
        writeLong(raw.count / 2)
        output.append(contentsOf: raw)
    }

    private mutating func writeString(_ bytes: [UInt8], _ encoding: RubyEncoding) {
        objectCount += 1
        switch encoding {
        case .binary:
            output.append(UInt8(ascii: "\""))
            writeBytes(bytes)
        case .utf8, .usASCII:
            output.append(UInt8(ascii: "I"))
            output.append(UInt8(ascii: "\""))
            writeBytes(bytes)
            writeLong(1)
            writeSymbol("E")
            output.append(UInt8(ascii: encoding == .utf8 ? "T" : "F"))
        case .other(let name):
            // Ruby writes the name as a binary String once per stream and
            // links it with `@` afterwards.
            output.append(UInt8(ascii: "I"))
            output.append(UInt8(ascii: "\""))
            writeBytes(bytes)
            writeLong(1)
            writeSymbol("encoding")
            if let index = encodingNames[name] {
                writeLink(index)
            } else {
                encodingNames[name] = objectCount
                objectCount += 1
                output.append(UInt8(ascii: "\""))
                writeBytes(Array(name.utf8))
            }
        }
    }

    /// First use: `:` + name (Ruby wraps non-ASCII names as `I:` with
    /// `:E => true`); later uses: `;` + index in this stream's table.
    private mutating func writeSymbol(_ name: String) {
        if let index = symbols[name] {
            output.append(UInt8(ascii: ";"))
            writeLong(index)
            return
        }
        let raw = Array(name.utf8)
        let ascii = raw.allSatisfy { $0 < 0x80 }
        if !ascii {
            output.append(UInt8(ascii: "I"))
        }
        output.append(UInt8(ascii: ":"))
        writeBytes(raw)
        symbols[name] = symbols.count
        if !ascii {
            writeLong(1)
            writeSymbol("E")
            output.append(UInt8(ascii: "T"))
        }
    }

    // MARK: - Floats

    /// Whether 64-bit Ruby stores `d` as an immediate ("flonum",
    /// `rb_float_new_inline`): +0.0, or exponent bits 62...60 of 011/100
    /// (magnitudes of roughly 1e-77 to 1e77). Equal flonums are the same
    /// Ruby object, so Marshal links repeats. NaN, ±inf, -0.0 and extreme
    /// magnitudes are heap objects and are written out each time.
    static func isFlonum(_ d: Double) -> Bool {
        let v = d.bitPattern
        if v == 0 { return true }
        let bits = (v >> 60) & 0x7
        return (bits == 3 || bits == 4) && v != 0x3000_0000_0000_0000
    }

    /// The text Ruby's Marshal writes for a Float (marshal.c `w_float`):
    /// shortest round-trip digits, `inf`/`-inf`/`nan`, `0`/`-0`, plain
    /// decimal when the decimal exponent is in -3...digits, else
    /// `d.ddde<exp>` (so 1.0 → "1", 0.5 → "0.5", 100.0 → "1e2", 1e-5 → "1e-5").
    static func rubyFloatText(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0" : "0" }

        // Swift's description is the shortest representation that round-trips;
        // take its digits and decimal exponent apart.
        let text = d.magnitude.description
        var mantissa = Substring(text)
        var exponent = 0
        if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            mantissa = text[..<e]
            exponent = Int(text[text.index(after: e)...]) ?? 0
        }
        var digits: [Character] = []
        var decimalPoint = 0
        var seenPoint = false
        for ch in mantissa {
            if ch == "." {
                seenPoint = true
            } else {
                digits.append(ch)
                if !seenPoint { decimalPoint += 1 }
            }
        }
        decimalPoint += exponent
        while let first = digits.first, first == "0" {
            digits.removeFirst()
            decimalPoint -= 1
        }
        while let last = digits.last, last == "0" {
            digits.removeLast()
        }
        if digits.isEmpty { return d.sign == .minus ? "-0" : "0" }

        var out = d.sign == .minus ? "-" : ""
        let count = digits.count
        if decimalPoint < -3 || decimalPoint > count {
            out.append(digits[0])
            if count > 1 {
                out.append(".")
                out.append(contentsOf: digits[1...])
            }
            out += "e\(decimalPoint - 1)"
        } else if decimalPoint > 0 {
            out.append(contentsOf: digits[0..<decimalPoint])
            if count > decimalPoint {
                out.append(".")
                out.append(contentsOf: digits[decimalPoint...])
            }
        } else {
            out += "0."
            out += String(repeating: "0", count: -decimalPoint)
            out.append(contentsOf: digits)
        }
        return out
    }
}
