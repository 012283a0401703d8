import Crypto

/// The MCollective psk security provider's message hash (`security/psk.rb`):
/// `Digest::MD5.hexdigest(Marshal.dump(body) + psk)`.
public enum PSK {
    /// Lowercase hex MD5 of (inner marshal bytes ‖ psk UTF-8 bytes), with no
    /// separator. `body` must be the `:body` bytes exactly as received (or
    /// as about to be sent), never a re-serialization.
    public static func hash(body: [UInt8], psk: String) -> String {
        var md5 = Insecure.MD5()
        md5.update(data: body)
        md5.update(data: Array(psk.utf8))
        let digest = md5.finalize()
        let hexDigits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(32)
        for byte in digest {
            out.append(hexDigits[Int(byte >> 4)])
            out.append(hexDigits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
