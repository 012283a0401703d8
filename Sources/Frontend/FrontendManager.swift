import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import NodeConfig

/// The frontend model: each gear's routes as one JSON document (`<state dir>/<uuid>.json`,
/// written temp-then-rename after the plugins have applied the change; a corrupt one is an
/// error for its own gear, never read as empty), applied to the configured plugins in order. If
/// a plugin fails, the plugins before it are given the previous state back and the document is
/// not written, so a call changes all or nothing.
///
/// Who owns a public name (a gear's host name or an alias) is decided by one atomic create: the
/// claim `<state dir>/names/<name>`, a symbolic link whose target is the owner's uuid. Two gears
/// claiming one name at once get one winner; only the owner can release a name, remove its alias
/// or its certificate. A claim is made before the document names it and released after the
/// document dropped it, so a crash in between leaves a name held by its gear, never a document
/// naming a name that another gear holds.
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
        _ = try frontend(uuid)
        try withLock(uuid) { () throws(FrontendError) in
            let claimed = try claim(fqdn, for: uuid, taken: { .hostTaken(host: fqdn, owner: $0) })
            do throws(FrontendError) {
                try update(uuid, creating: GearFrontend(uuid: uuid, appUUID: appUUID, fqdn: fqdn), locked: true) { _ in }
            } catch {
                if claimed { release(fqdn, of: uuid) }
                throw error
            }
        }
    }

    /// Removes the gear's routes, its document and its lock file; nothing there is fine.
    public func destroy(uuid: String) throws(FrontendError) {
        _ = try frontend(uuid)
        try prepare()
        let lock: LockFile
        do { lock = try LockFile.acquire(lockPath(uuid)) } catch { throw FrontendError(error) }
        defer { lock.release() }
        var previous: GearFrontend?
        do throws(FrontendError) { previous = try frontend(uuid) } catch {
            // A corrupt document: what the plugins serve for the gear is what there is to remove.
            for plugin in plugins where previous == nil { previous = try plugin.served(uuid) }
        }
        if let previous {
            try applyChain(nil, previous: previous, uuid: uuid)
            for alias in previous.sslAliases { removeCertificateFiles(alias) }
        }
        guard unlink(documentPath(uuid)) == 0 || errno == ENOENT else { throw .io(step: "unlink", path: documentPath(uuid), errno: errno) }
        // Every name the gear holds, including one a crash left claimed but unnamed.
        for name in names(of: uuid) { release(name, of: uuid) }
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
        let name = try aliasName(alias)
        _ = try frontend(uuid)
        try withLock(uuid) { () throws(FrontendError) in
            let current = try require(uuid)
            if current.fqdn == name { throw .invalidName(field: "alias", value: alias, reason: "it is the gear's own host name") }
            let claimed = try claim(name, for: uuid, taken: { .aliasTaken(alias: name, owner: $0) })
            do throws(FrontendError) {
                try update(uuid, locked: true) { frontend in if !frontend.aliases.contains(name) { frontend.aliases.append(name) } }
            } catch {
                if claimed { release(name, of: uuid) }
                throw error
            }
        }
    }

    /// Removes one of the gear's aliases, its certificate and its claim. An alias the gear does
    /// not hold is refused and nothing changes, whoever holds it.
    public func removeAlias(uuid: String, _ alias: String) throws(FrontendError) {
        let name = try HostName.clean(alias, field: "alias")
        _ = try frontend(uuid)
        try withLock(uuid) { () throws(FrontendError) in
            let current = try require(uuid)
            guard current.aliases.contains(name) || (owner(of: name) == uuid && current.fqdn != name) else {
                throw .notOwner(name: name, uuid: uuid)
            }
            try update(uuid, locked: true) { frontend in
                frontend.aliases.removeAll { $0 == name }
                frontend.sslAliases.removeAll { $0 == name }
                frontend.certificates[name] = nil
            }
            removeCertificateFiles(name)
            release(name, of: uuid)
        }
    }

    /// A cleaned alias, refused when it is a name a gear's host name (`<name>-<namespace>.<cloud
    /// domain>`) could take now or later, or the cloud domain itself.
    func aliasName(_ alias: String) throws(FrontendError) -> String {
        let name = try HostName.clean(alias, field: "alias")
        let domain = cloudDomain.lowercased()
        if !domain.isEmpty, name == domain || (name.hasSuffix("." + domain) && !name.dropLast(domain.count + 1).contains(".")) {
            throw .invalidName(field: "alias", value: alias,
                               reason: "names directly under the cloud domain \(domain) are gears' host names, present or future")
        }
        return name
    }

    /// Where certificates and keys are kept (0700, root): `<alias>.crt`, `<alias>.key`.
    public var certificateDirectory: String { stateDirectory + "/ssl" }

    /// Installs a certificate for one of the gear's aliases, after checking it (§1.4). If the
    /// plugins cannot load it (a failed reload), the previous certificate files, document and
    /// served configuration are put back.
    public func addSSLCert(uuid: String, chain: String, key: String, alias: String, passphrase: String = "") throws(FrontendError) {
        let certificate = try SSLCertificate.validated(chain: chain, key: key, alias: alias, passphrase: passphrase)
        let name = certificate.alias
        _ = try frontend(uuid)
        try prepare()
        try withLock(uuid) { () throws(FrontendError) in
            guard try require(uuid).aliases.contains(name), owner(of: name) == uuid else {
                throw .invalidSSL(alias: name, reason: "Specified alias \(name) does not exist for the app")
            }
            let files = ["crt", "key"].map { certificateDirectory + "/" + name + "." + $0 }
            let saved = files.map { FileSystem.read($0) }
            func putBack() {
                for (path, text) in zip(files, saved) {
                    if let text { try? FileSystem.writeAtomically(path, text, mode: 0o600) } else { unlink(path) }
                }
            }
            do throws(FrontendError) {
                do throws(SystemError) {
                    try FileSystem.makeDirectories(certificateDirectory, mode: 0o700)
                    for (path, text) in zip(files, [certificate.chain, certificate.key]) { try FileSystem.writeAtomically(path, text, mode: 0o600) }
                } catch {
                    throw FrontendError(error)
                }
                try update(uuid, locked: true) { frontend in
                    if !frontend.sslAliases.contains(name) { frontend.sslAliases.append(name) }
                    frontend.certificates[name] = Self.fingerprint(certificate.chain + certificate.key)
                }
            } catch {
                putBack()
                throw error
            }
        }
    }

    /// Removes the certificate of one of the gear's aliases. An alias the gear does not hold is
    /// refused and nothing changes, whoever holds it.
    public func removeSSLCert(uuid: String, alias: String) throws(FrontendError) {
        let name = try HostName.clean(alias, field: "alias")
        _ = try frontend(uuid)
        try withLock(uuid) { () throws(FrontendError) in
            guard try require(uuid).aliases.contains(name), owner(of: name) == uuid else { throw .notOwner(name: name, uuid: uuid) }
            try update(uuid, locked: true) { frontend in
                frontend.sslAliases.removeAll { $0 == name }
                frontend.certificates[name] = nil
            }
            removeCertificateFiles(name)
        }
    }

    private func removeCertificateFiles(_ alias: String) {
        for suffix in ["crt", "key"] { unlink(certificateDirectory + "/" + alias + "." + suffix) }
    }

    /// FNV-1a, 64 bits: tells one certificate from the next, so that replacing one reloads.
    static func fingerprint(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
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
        for alias in saved.aliases { aliases.append(try aliasName(alias)) }
        if let sts = saved.sts, sts < 0 { throw .invalidConnection(field: "sts max-age", value: "\(sts)", reason: "must not be negative") }
        if try frontend(uuid) == nil { try create(uuid: uuid, appUUID: appUUID, gearName: gearName, namespace: namespace) }
        try withLock(uuid) { () throws(FrontendError) in
            var claimed: [String] = []
            do throws(FrontendError) {
                for alias in aliases where try claim(alias, for: uuid, taken: { .aliasTaken(alias: alias, owner: $0) }) { claimed.append(alias) }
                try update(uuid, locked: true) { frontend in
                    frontend.connections = saved.connections
                    frontend.aliases = aliases
                    frontend.idle = saved.idle
                    frontend.sts = saved.sts
                    frontend.sslAliases = frontend.sslAliases.filter { aliases.contains($0) }
                    frontend.certificates = frontend.certificates.filter { aliases.contains($0.key) }
                }
            } catch {
                for alias in claimed { release(alias, of: uuid) }
                throw error
            }
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

    /// Every readable document, and the errors of those that cannot be read: a corrupt document
    /// is its own gear's problem, never a reason to fail another gear's request.
    public func scan() -> (frontends: [GearFrontend], corrupt: [String: FrontendError]) {
        var result: [GearFrontend] = []
        var corrupt: [String: FrontendError] = [:]
        for name in FileSystem.entries(stateDirectory) ?? [] where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let uuid = String(name.dropLast(5))
            do throws(FrontendError) {
                if let frontend = try frontend(uuid) { result.append(frontend) }
            } catch {
                corrupt[uuid] = error
            }
        }
        return (result, corrupt)
    }

    /// Every readable document (see `scan`).
    public func allFrontends() -> [GearFrontend] { scan().frontends }

    /// The gear a public host name reaches, through the name claims: one link read, whatever
    /// the number of gears, and unaffected by other gears' documents.
    public func gear(serving host: String) -> GearFrontend? {
        guard let name = try? HostName.clean(host), let uuid = owner(of: name), let frontend = try? frontend(uuid) else { return nil }
        return frontend.fqdn == name || frontend.aliases.contains(name) ? frontend : nil
    }

    /// What `reconcile` found.
    public struct Reconciliation: Sendable {
        /// Documents that cannot be read: their gears keep what is served for them now.
        public var corrupt: [String: FrontendError] = [:]
        /// Names a document holds that had no claim (claimed when repairing).
        public var unclaimed: [String] = []
        /// Names a document holds that another gear has claimed: left to the claim's owner.
        public var conflicts: [String] = []
        /// Per plugin, what it served that the documents do not say.
        public var drift: [String] = []

        public var clean: Bool { corrupt.isEmpty && unclaimed.isEmpty && conflicts.isEmpty && drift.isEmpty }
    }

    /// Checks the name claims and every plugin's served state against the documents and, with
    /// `repair`, rebuilds them from the documents (the daemon does at start; `oo-admin-ctl-gears
    /// check-routes --repair` on demand). A lost or emptied map comes back whole.
    public func reconcile(repair: Bool) throws(FrontendError) -> Reconciliation {
        try prepare()
        var result = Reconciliation()
        let (frontends, corrupt) = scan()
        result.corrupt = corrupt
        for frontend in frontends {
            for name in [frontend.fqdn] + frontend.aliases {
                switch owner(of: name) {
                case frontend.uuid?: continue
                case let other?: result.conflicts.append("\(name) is named by gear \(frontend.uuid) but held by gear \(other)")
                case nil:
                    result.unclaimed.append("\(name) (gear \(frontend.uuid))")
                    if repair { _ = try? claim(name, for: frontend.uuid, taken: { .aliasTaken(alias: name, owner: $0) }) }
                }
            }
        }
        for plugin in plugins {
            let drift = try plugin.reconcile(repair: repair, keep: Set(corrupt.keys)) { scan().frontends }
            result.drift += drift.map { "\(plugin.name): \($0)" }
        }
        return result
    }

    // MARK: Name claims

    var namesDirectory: String { stateDirectory + "/names" }

    /// The uuid of the gear that holds `name`, nil if none does.
    public func owner(of name: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 256)
        let count = readlink(namesDirectory + "/" + name, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Claims `name` for `uuid` with one atomic create; true when this call made the claim,
    /// false when the gear already held it.
    private func claim(_ name: String, for uuid: String, taken: (String) -> FrontendError) throws(FrontendError) -> Bool {
        do { try FileSystem.makeDirectories(namesDirectory) } catch { throw FrontendError(error) }
        let path = namesDirectory + "/" + name
        if symlink(uuid, path) == 0 { return true }
        guard errno == EEXIST else { throw .io(step: "symlink", path: path, errno: errno) }
        guard let owner = owner(of: name) else { throw .io(step: "readlink", path: path, errno: errno) }
        guard owner == uuid else { throw taken(owner) }
        return false
    }

    /// Drops `uuid`'s claim on `name`; a claim of another gear is left alone.
    private func release(_ name: String, of uuid: String) {
        if owner(of: name) == uuid { unlink(namesDirectory + "/" + name) }
    }

    /// Every name `uuid` holds.
    func names(of uuid: String) -> [String] {
        (FileSystem.entries(namesDirectory) ?? []).filter { owner(of: $0) == uuid }
    }

    private func update(_ uuid: String, creating initial: GearFrontend? = nil, locked: Bool = false,
                        _ change: (inout GearFrontend) -> Void) throws(FrontendError) {
        try prepare()
        func body() throws(FrontendError) {
            let previous = try frontend(uuid)
            guard var next = previous ?? initial else { throw .notFound("frontend of gear \(uuid)") }
            change(&next)
            if next == previous { return }
            // Plugins first, then the document: killed in between, the document is behind what
            // is served, never ahead of it, and a re-run of the same call (which compares with
            // the document) applies the change again instead of finding nothing to do.
            try applyChain(next, previous: previous, uuid: uuid)
            do throws(FrontendError) {
                try write(next)
            } catch {
                try? applyChain(previous, previous: next, uuid: uuid)
                throw error
            }
        }
        if locked { try body() } else { try withLock(uuid) { () throws(FrontendError) in try body() } }
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
        try prepare()
        try LockFile.withLock(lockPath(uuid), wrap: FrontendError.init, body)
    }
}
