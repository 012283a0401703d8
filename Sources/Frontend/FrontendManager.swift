import Foundation
import NodeConfig

/// The frontend model: each gear's routes as one JSON document (`<state dir>/<uuid>.json`,
/// written temp-then-rename; a corrupt one is an error, never read as empty), applied to the
/// configured plugins in order. If a plugin fails, the plugins before it are given the previous
/// state back and the document is restored, so a call changes all or nothing.
public final class FrontendManager: Sendable {
    public let stateDirectory: String
    public let plugins: [any FrontendPlugin]
    public let cloudDomain: String

    public init(stateDirectory: String, plugins: [any FrontendPlugin], cloudDomain: String) {
        self.stateDirectory = stateDirectory
        self.plugins = plugins
        self.cloudDomain = cloudDomain
    }

    // MARK: Operations (the original's names)

    public func create(uuid: String, appUUID: String, gearName: String, namespace: String) throws(FrontendError) {
        let fqdn = try HostName.clean("\(gearName)-\(namespace).\(cloudDomain)", field: "gear host name")
        try update(uuid, creating: GearFrontend(uuid: uuid, appUUID: appUUID, fqdn: fqdn)) { _ in }
    }

    /// Removes the gear's routes, its document and its lock file; nothing there is fine.
    public func destroy(uuid: String) throws(FrontendError) {
        _ = try frontend(uuid)
        try prepare()
        let lock: LockFile
        do { lock = try LockFile.acquire(lockPath(uuid)) } catch { throw FrontendError(error) }
        defer { lock.release() }
        if let previous = try frontend(uuid) {
            try applyChain(nil, previous: previous, uuid: uuid)
            guard unlink(documentPath(uuid)) == 0 || errno == ENOENT else { throw .io(step: "unlink", path: documentPath(uuid), errno: errno) }
        }
        FileSystem.removeTemporaries(of: documentPath(uuid))
        lock.remove()
    }

    public func connect(uuid: String, _ connections: [Connection], allowedIPs: Set<String>? = nil) throws(FrontendError) {
        for connection in connections { try connection.validate(allowedIPs: allowedIPs) }
        try update(uuid) { frontend in
            for connection in connections {
                frontend.connections.removeAll { $0.path == connection.path }
                frontend.connections.append(connection)
            }
        }
    }

    public func disconnect(uuid: String, paths: [String]) throws(FrontendError) {
        try update(uuid) { frontend in frontend.connections.removeAll { paths.contains($0.path) } }
    }

    public func connections(uuid: String) throws(FrontendError) -> [Connection] { try require(uuid).connections }

    public func addAlias(uuid: String, _ alias: String) throws(FrontendError) {
        let name = try HostName.clean(alias, field: "alias")
        if let owner = try allFrontends().first(where: { $0.uuid != uuid && ($0.aliases.contains(name) || $0.fqdn == name) }) {
            throw .aliasTaken(alias: name, owner: owner.uuid)
        }
        try update(uuid) { frontend in if !frontend.aliases.contains(name) { frontend.aliases.append(name) } }
    }

    public func removeAlias(uuid: String, _ alias: String) throws(FrontendError) {
        let name = try HostName.clean(alias, field: "alias")
        try update(uuid) { frontend in
            frontend.aliases.removeAll { $0 == name }
            frontend.sslAliases.removeAll { $0 == name }
        }
        for suffix in ["crt", "key"] { unlink(certificateDirectory + "/" + name + "." + suffix) }
    }

    /// Where certificates and keys are kept (0700, root): `<alias>.crt`, `<alias>.key`.
    public var certificateDirectory: String { stateDirectory + "/ssl" }

    /// Installs a certificate for one of the gear's aliases, after checking it (§1.4).
    public func addSSLCert(uuid: String, chain: String, key: String, alias: String, passphrase: String = "") throws(FrontendError) {
        let certificate = try SSLCertificate.validated(chain: chain, key: key, alias: alias, passphrase: passphrase)
        guard try require(uuid).aliases.contains(certificate.alias) else {
            throw .invalidSSL(alias: certificate.alias, reason: "Specified alias \(certificate.alias) does not exist for the app")
        }
        try prepare()
        do {
            try FileSystem.makeDirectories(certificateDirectory, mode: 0o700)
            for (suffix, text) in [("crt", certificate.chain), ("key", certificate.key)] {
                try FileSystem.writeAtomically(certificateDirectory + "/" + certificate.alias + "." + suffix, text, mode: 0o600)
            }
        } catch {
            throw FrontendError(error)
        }
        try update(uuid) { frontend in
            frontend.sslAliases.removeAll { $0 == certificate.alias }
            frontend.sslAliases.append(certificate.alias)
        }
    }

    public func removeSSLCert(uuid: String, alias: String) throws(FrontendError) {
        let name = try HostName.clean(alias, field: "alias")
        try update(uuid) { $0.sslAliases.removeAll { $0 == name } }
        for suffix in ["crt", "key"] { unlink(certificateDirectory + "/" + name + "." + suffix) }
    }

    /// The gear's routes as one JSON document (for moves and plugin changes).
    public func backup(uuid: String) throws(FrontendError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(try require(uuid)) else { throw .corruptState(path: documentPath(uuid), reason: "cannot encode") }
        return String(decoding: data, as: UTF8.self)
    }

    /// Re-creates a gear's routes from `backup` output: the document is decoded as plain data
    /// (no object revival), every name and connection is checked again, and the gear's own host
    /// name (recomputed by the caller) replaces the one in the document. Certificates are not in
    /// backups; aliases that had one are restored without it.
    public func restore(uuid: String, appUUID: String, gearName: String, namespace: String, document: String,
                        allowedIPs: Set<String>? = nil) throws(FrontendError) {
        let saved: GearFrontend
        do { saved = try JSONDecoder().decode(GearFrontend.self, from: Data(document.utf8)) } catch {
            throw .corruptState(path: "restore document", reason: "\(error)")
        }
        for connection in saved.connections { try connection.validate(allowedIPs: allowedIPs) }
        var aliases: [String] = []
        for alias in saved.aliases { aliases.append(try HostName.clean(alias, field: "alias")) }
        if let sts = saved.sts, sts < 0 { throw .invalidConnection(field: "sts max-age", value: "\(sts)", reason: "must not be negative") }
        if try frontend(uuid) == nil { try create(uuid: uuid, appUUID: appUUID, gearName: gearName, namespace: namespace) }
        for alias in aliases {
            if let owner = try allFrontends().first(where: { $0.uuid != uuid && ($0.aliases.contains(alias) || $0.fqdn == alias) }) {
                throw .aliasTaken(alias: alias, owner: owner.uuid)
            }
        }
        try update(uuid) { frontend in
            frontend.connections = saved.connections
            frontend.aliases = aliases
            frontend.idle = saved.idle
            frontend.sts = saved.sts
            frontend.sslAliases = frontend.sslAliases.filter { aliases.contains($0) }
        }
    }

    public func idle(uuid: String) throws(FrontendError) { try update(uuid) { $0.idle = true } }
    public func unidle(uuid: String) throws(FrontendError) { try update(uuid) { $0.idle = false } }
    public func isIdle(uuid: String) throws(FrontendError) -> Bool { try require(uuid).idle }

    public func sts(uuid: String, maxAge: Int? = 15_768_000) throws(FrontendError) {
        if let maxAge, maxAge < 0 { throw .invalidConnection(field: "sts max-age", value: "\(maxAge)", reason: "must not be negative") }
        try update(uuid) { $0.sts = maxAge }
    }

    // MARK: State

    func documentPath(_ uuid: String) -> String { stateDirectory + "/" + uuid + ".json" }

    /// The stored document, nil if the gear has no frontend.
    public func frontend(_ uuid: String) throws(FrontendError) -> GearFrontend? {
        guard uuid.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 45 || $0 == 95 }), !uuid.isEmpty else {
            throw .invalidName(field: "gear uuid", value: uuid, reason: "expected lower-case letters, digits, '-' or '_'")
        }
        guard let data = FileManager.default.contents(atPath: documentPath(uuid)) else { return nil }
        do {
            return try JSONDecoder().decode(GearFrontend.self, from: data)
        } catch {
            throw .corruptState(path: documentPath(uuid), reason: "\(error)")
        }
    }

    func require(_ uuid: String) throws(FrontendError) -> GearFrontend {
        guard let frontend = try frontend(uuid) else { throw .notFound("frontend of gear \(uuid)") }
        return frontend
    }

    public func allFrontends() throws(FrontendError) -> [GearFrontend] {
        var result: [GearFrontend] = []
        for name in FileSystem.entries(stateDirectory) ?? [] where name.hasSuffix(".json") && !name.hasPrefix(".") {
            if let frontend = try frontend(String(name.dropLast(5))) { result.append(frontend) }
        }
        return result
    }

    private func update(_ uuid: String, creating initial: GearFrontend? = nil, _ change: (inout GearFrontend) -> Void) throws(FrontendError) {
        try prepare()
        try withLock(uuid) { () throws(FrontendError) in
            let previous = try frontend(uuid)
            guard var next = previous ?? initial else { throw .notFound("frontend of gear \(uuid)") }
            change(&next)
            if next == previous { return }
            try write(next)
            do throws(FrontendError) {
                try applyChain(next, previous: previous, uuid: uuid)
            } catch {
                if let previous { try? write(previous) } else { unlink(documentPath(uuid)) }
                throw error
            }
        }
    }

    /// Applies to each plugin in order; on a failure, earlier plugins get `previous` back.
    private func applyChain(_ next: GearFrontend?, previous: GearFrontend?, uuid: String) throws(FrontendError) {
        var done: [any FrontendPlugin] = []
        for plugin in plugins {
            do throws(FrontendError) {
                try plugin.apply(next, previous: previous, uuid: uuid)
                done.append(plugin)
            } catch {
                for earlier in done.reversed() { try? earlier.apply(previous, previous: next, uuid: uuid) }
                throw error
            }
        }
    }

    private func write(_ frontend: GearFrontend) throws(FrontendError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        guard let data = try? encoder.encode(frontend) else { throw .corruptState(path: documentPath(frontend.uuid), reason: "cannot encode") }
        do { try FileSystem.writeAtomically(documentPath(frontend.uuid), Array(data)) } catch { throw FrontendError(error) }
    }

    func prepare() throws(FrontendError) {
        do { try FileSystem.makeDirectories(stateDirectory) } catch { throw FrontendError(error) }
    }

    func lockPath(_ uuid: String) -> String { stateDirectory + "/.lock." + uuid }

    private func withLock(_ uuid: String, _ body: () throws(FrontendError) -> Void) throws(FrontendError) {
        try LockFile.withLock(lockPath(uuid), wrap: FrontendError.init, body)
    }
}
