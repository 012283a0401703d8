import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// A certificate chain and key for one alias, checked the way the original did (key readable
/// with its passphrase, chain parseable, first certificate matching the key) plus what it
/// missed: the certificate must cover the alias. `openssl` is run from argv arrays; the
/// passphrase goes through a file, never the command line.
public struct SSLCertificate: Sendable, Equatable {
    public let alias: String
    /// The certificate chain, PEM.
    public let chain: String
    /// The unencrypted private key, PEM.
    public let key: String

    public static func validated(chain: String, key: String, alias: String, passphrase: String = "") throws(FrontendError) -> SSLCertificate {
        let name = try HostName.clean(alias, field: "alias")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("oo-ssl-\(UUID().uuidString)").path
        guard mkdir(scratch, 0o700) == 0 else { throw .io(step: "mkdir", path: scratch, errno: errno) }
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        func write(_ file: String, _ text: String) throws(FrontendError) {
            let path = scratch + "/" + file
            guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw .io(step: "write", path: path, errno: errno)
            }
        }
        try write("key.pem", key)
        try write("pass", passphrase)
        let passin = passphrase.isEmpty ? ["-passin", "pass:"] : ["-passin", "file:" + scratch + "/pass"]
        guard let plain = openssl(["pkey", "-in", scratch + "/key.pem"] + passin),
              plain.contains("PRIVATE KEY") else {
            throw .invalidSSL(alias: name, reason: "Invalid Private Key or Passphrase")
        }
        try write("plain.pem", plain)
        let certificates = split(chain)
        guard let first = certificates.first else { throw .invalidSSL(alias: name, reason: "Could not parse certificates") }
        for (index, certificate) in certificates.enumerated() {
            try write("cert\(index).pem", certificate)
            guard openssl(["x509", "-in", scratch + "/cert\(index).pem", "-noout"]) != nil else {
                throw .invalidSSL(alias: name, reason: "Invalid X509 Certificate (number \(index + 1) in the chain)")
            }
        }
        _ = first
        let keyPublic = openssl(["pkey", "-in", scratch + "/plain.pem", "-pubout"])
        let certPublic = openssl(["x509", "-in", scratch + "/cert0.pem", "-noout", "-pubkey"])
        guard let keyPublic, keyPublic == certPublic else { throw .invalidSSL(alias: name, reason: "Key/cert mismatch") }
        guard let host = openssl(["x509", "-in", scratch + "/cert0.pem", "-noout", "-checkhost", name]),
              host.contains("does match") && !host.contains("does NOT match") else {
            throw .invalidSSL(alias: name, reason: "the certificate does not cover \(name)")
        }
        return SSLCertificate(alias: name, chain: certificates.joined(), key: plain)
    }

    /// The chain cut after every `-----END` line.
    static func split(_ chain: String) -> [String] {
        var result: [String] = []
        var current = ""
        for line in chain.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty && current.isEmpty { continue }
            current += line + "\n"
            if line.hasPrefix("-----END") {
                result.append(current)
                current = ""
            }
        }
        return result.filter { $0.contains("-----BEGIN CERTIFICATE-----") }
    }

    /// stdout of `openssl <arguments>`, nil when it fails.
    static func openssl(_ arguments: [String]) -> String? {
        guard let result = try? Spawner.run(["/usr/bin/openssl"] + arguments, environment: ["PATH": "/usr/bin:/bin"],
                                            timeoutSeconds: 60),
              result.status == 0, !result.truncated else { return nil }
        return result.stdout
    }
}
