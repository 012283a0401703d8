/// The node's rules for every field it writes into authorized_keys and .k5login. Checked byte by
/// byte: a regular expression's `$` also matches before a final newline, which is exactly the
/// character that must never get through.
public enum KeyRules {
    /// Longest key body accepted (certificates with many principals are a few KiB).
    public static let bodyLimit = 16 * 1024
    public static let commentLimit = 256
    public static let loginLimit = 256
    public static let principalLimit = 256

    static func isAlnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) }
    static func isLowerAlnum(_ b: UInt8) -> Bool { (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x7a) }

    /// ssh-rsa, ssh-dss (kept for compatibility: the broker's default list has it), ssh-ed25519,
    /// ecdsa-sha2-<curve>, the security-key types, and each of these as an OpenSSH certificate.
    public static func checkType(_ type: String) throws(AccessError) {
        var base = type
        var certificate = false
        for suffix in ["-cert-v01@openssh.com", "-cert-v00@openssh.com"] where base.hasSuffix(suffix) {
            base = String(base.dropLast(suffix.count))
            certificate = true
        }
        let plain = ["ssh-rsa", "ssh-dss", "ssh-ed25519"].contains(base)
        let curve = base.hasPrefix("ecdsa-sha2-") && base.count <= 11 + 32 && base.count > 11 && base.utf8.dropFirst(11).allSatisfy(isLowerAlnum)
        let securityKey = certificate
            ? ["sk-ssh-ed25519", "sk-ecdsa-sha2-nistp256"].contains(base)
            : ["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"].contains(base)
        guard plain || curve || securityKey else {
            throw .invalidArgument(field: "ssh key type", value: shown(type),
                                   reason: "expected ssh-rsa, ssh-ed25519, ecdsa-sha2-<curve>, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com, ssh-dss, or one of these as a -cert-v01@openssh.com certificate")
        }
    }

    /// Base64: letters, digits, `+`, `/`, then at most two `=`.
    public static func checkBody(_ body: String) throws(AccessError) {
        let bytes = Array(body.utf8)
        let padding = bytes.reversed().prefix { $0 == 0x3d }.count
        let ok = !bytes.isEmpty && bytes.count <= bodyLimit && padding <= 2 && padding < bytes.count
            && bytes.dropLast(padding).allSatisfy { isAlnum($0) || $0 == 0x2b || $0 == 0x2f }
        guard ok else {
            throw .invalidArgument(field: "ssh key", value: shown(body), reason: "must be the base64 key body (letters, digits, + /, up to two =), at most \(bodyLimit) characters")
        }
    }

    /// The broker's key-name rule: 1 to 256 of letters, digits, `_ . - @ +`.
    public static func checkComment(_ comment: String) throws(AccessError) {
        let bytes = Array(comment.utf8)
        guard !bytes.isEmpty, bytes.count <= commentLimit,
              bytes.allSatisfy({ isAlnum($0) || [0x5f, 0x2e, 0x2d, 0x40, 0x2b].contains($0) }) else {
            throw .invalidArgument(field: "ssh key comment", value: shown(comment), reason: "expected 1 to \(commentLimit) letters, digits or _ . - @ +")
        }
    }

    /// A login is exported in the forced command without quoting, so it may only hold
    /// characters that neither sh nor sshd's option parser treat specially (and that Ruby's
    /// Shellwords.escape leaves alone, so the line is the original's byte for byte).
    public static func checkLogin(_ login: String) throws(AccessError) {
        let bytes = Array(login.utf8)
        guard !bytes.isEmpty, bytes.count <= loginLimit,
              bytes.allSatisfy({ isAlnum($0) || [0x5f, 0x2e, 0x2d, 0x40, 0x2b].contains($0) }) else {
            throw .invalidArgument(field: "ssh key login", value: shown(login), reason: "expected 1 to \(loginLimit) letters, digits or _ . - @ +")
        }
    }

    /// `name[/instance]@REALM`: name and instance printable ASCII without space, `/`, `@`, `#`
    /// or `\`; the realm letters, digits, `.`, `-`, `_`; at most 256 characters. So no line of
    /// .k5login can be split, commented out, or read as an ownership comment.
    public static func checkPrincipal(_ principal: String) throws(AccessError) {
        func refuse(_ reason: String) -> AccessError { .invalidArgument(field: "Kerberos principal", value: shown(principal), reason: reason) }
        let bytes = Array(principal.utf8)
        guard !bytes.isEmpty, bytes.count <= principalLimit else { throw refuse("must be 1 to \(principalLimit) characters") }
        guard bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw refuse("must be printable ASCII without spaces or control characters") }
        let at = bytes.split(separator: 0x40, omittingEmptySubsequences: false)
        guard at.count == 2, !at[1].isEmpty, at[1].allSatisfy({ isAlnum($0) || $0 == 0x2e || $0 == 0x2d || $0 == 0x5f }) else {
            throw refuse("expected name[/instance]@REALM with one @ and a realm of letters, digits, . - _")
        }
        let parts = at[0].split(separator: 0x2f, omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), parts.allSatisfy({ part in !part.isEmpty && part.allSatisfy { $0 != 0x23 && $0 != 0x5c } }) else {
            throw refuse("expected name[/instance]@REALM: one optional /instance, no empty part, no # or \\")
        }
    }
}
