import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Routes served by Apache's mod_rewrite from text RewriteMaps in `OPENSHIFT_HTTP_CONF_DIR`:
///
/// | map | key | value |
/// | --- | --- | --- |
/// | `routes.txt` | `<host><path>` | `<destination>|<app uuid>|<gear uuid>` |
/// | `aliases.txt` | `<alias>` | `<fqdn>` |
/// | `idler.txt` | `<fqdn>` | `<gear uuid>` |
/// | `sts.txt` | `<fqdn>` | `<max-age>` |
/// | `hosts.txt` | `<fqdn>` or `<alias>` | `<fqdn>|<root>|<idle 0/1>|<max-age or empty>|<depth>|<gear uuid>|,<first segment>,...,` |
///
/// `hosts.txt` is derived from the other four, written with them, for Apache alone: each name's
/// record in one lookup per request, where `<depth>` is the segment count of the gear's deepest
/// path route (0: a root route only, and Apache skips the path loop), `<root>` the root route's
/// backend if it is a plain address, and the list the first segments of the path routes. A
/// request whose first segment starts no path route, for a gear neither idle nor under STS, is
/// proxied to `<root>` from the record alone: the common case in one rule.
///
/// A change streams the old map into a new file beside it, replacing only that gear's lines
/// (memory O(the gear's routes)), fsyncs, and renames it over the old one: Apache notices the new
/// mtime on the next lookup, so no reload is needed, and a crash before the rename leaves the
/// previous map whole. All writers hold one lock file.
///
/// `workers.conf` declares one mod_proxy worker (`<Proxy "http://address:port">`) per gear
/// backend the routes name, so that requests routed by `RewriteRule [P]` reuse pooled
/// connections to their gear instead of opening one per request. Workers are read when Apache
/// (re)loads its configuration: a new backend is routed at once, like any route change, and
/// pooled after the graceful reload (`OPENSHIFT_HTTP_RELOAD`) that follows the change of the
/// file. A worker's connections only ever carry requests for its own address, so one gear's
/// pooled connection never serves another gear.
public struct ApacheFrontend: FrontendPlugin {
    public let name = "apache"
    public let directory: String
    /// HTTPS for aliases with certificates: one VirtualHost file per alias, then a graceful
    /// reload.
    public struct SSL: Sendable {
        /// `address:port` of the HTTPS VirtualHosts, e.g. `*:443`.
        public var listen: String
        public var certificateDirectory: String
        public var wakePort: Int

        public init(listen: String, certificateDirectory: String, wakePort: Int = 0) {
            self.listen = listen
            self.certificateDirectory = certificateDirectory
            self.wakePort = wakePort
        }
    }
    public let ssl: SSL?
    /// Apache's graceful reload (`OPENSHIFT_HTTP_RELOAD`), as an argv array: run after a change
    /// of the HTTPS VirtualHosts or of the gear backends in `workers.conf`, the only changes
    /// that need one. Empty: never reload.
    public let reload: [String]
    /// Test seam: called with the temp path just before a map is renamed into place.
    let beforeRename: (@Sendable (String) -> Void)?

    public init(directory: String, reload: [String] = [], ssl: SSL? = nil, beforeRename: (@Sendable (String) -> Void)? = nil) {
        self.directory = directory
        self.reload = reload
        self.ssl = ssl
        self.beforeRename = beforeRename
    }

    /// Where the per-alias HTTPS VirtualHosts are (include `<dir>/ssl-vhosts/*.conf`).
    public var vhostDirectory: String { directory + "/ssl-vhosts" }

    public static let maps = ["routes", "aliases", "idler", "sts", "hosts"]

    /// The worker declarations, included by the router's rules.
    public static let workersFile = "workers.conf"

    public func apply(_ frontend: GearFrontend?, previous: GearFrontend?, uuid: String) throws(FrontendError) {
        try prepare()
        var workersChanged = false
        defer { if workersChanged { reloadForWorkers() } }
        try withLock { () throws(FrontendError) in
            let hosts = Set([frontend?.fqdn, previous?.fqdn].compactMap { $0 })
            let files = ApacheConfiguration.fileDirectory(mapDirectory: directory)
            for connection in frontend?.connections ?? [] where connection.destination.hasPrefix("FILE:") {
                guard connection.target.hasPrefix(files + "/") else {
                    throw .invalidConnection(field: "target", value: connection.target, reason: "a file route serves a file under \(files)")
                }
            }
            // The lines of every map come from `lines(of:)`, which `reconcile` rebuilds from too.
            let wanted = frontend.map(Self.lines(of:)) ?? [:]
            let changed = frontend == nil || frontend?.fqdn != previous?.fqdn
            if changed || frontend?.connections != previous?.connections {
                try rewrite("routes", newLines: wanted["routes"] ?? []) { line in line.hasSuffix("|" + uuid) }
                workersChanged = try updateWorkers()
            }
            if changed || frontend?.aliases != previous?.aliases {
                let aliasSet = Set((frontend?.aliases ?? []) + (previous?.aliases ?? []))
                try rewrite("aliases", newLines: wanted["aliases"] ?? []) { line in
                    let parts = line.split(separator: " ")
                    return parts.count == 2 && (hosts.contains(String(parts[1])) || aliasSet.contains(String(parts[0])))
                }
            }
            if changed || frontend?.idle != previous?.idle {
                try rewrite("idler", newLines: wanted["idler"] ?? []) { line in line.split(separator: " ").last.map(String.init) == uuid }
            }
            if changed || frontend?.sts != previous?.sts {
                try rewrite("sts", newLines: wanted["sts"] ?? []) { line in
                    line.split(separator: " ").first.map { hosts.contains(String($0)) } ?? false
                }
            }
            // Last: every request starts from a name's record, which tells Apache what to look
            // up in the maps written above.
            if changed || wanted["hosts"] != previous.map(Self.lines(of:))?["hosts"] {
                let names = hosts.union((frontend?.aliases ?? []) + (previous?.aliases ?? []))
                try rewrite("hosts", newLines: wanted["hosts"] ?? []) { line in
                    line.hasSuffix("|" + uuid) || line.split(separator: " ").first.map { names.contains(String($0)) } ?? false
                }
            }
            if (frontend?.sslAliases ?? []) != (previous?.sslAliases ?? []) || (frontend?.certificates ?? [:]) != (previous?.certificates ?? [:]) {
                try updateVirtualHosts(keep: frontend?.sslAliases ?? [], drop: previous?.sslAliases ?? [])
            }
        }
    }

    /// The connection as Apache routes it (§1.2 `protocols`): none when its protocols name
    /// neither http nor https (nor ws); https without http is forwarded with https to the gear.
    static func routed(_ connection: Connection) -> Connection? {
        let protocols = connection.options.protocols
        if !protocols.isEmpty && !protocols.contains(where: { ["http", "https", "ws"].contains($0) }) { return nil }
        var result = connection
        if protocols.contains("https") && !protocols.contains("http") { result.options.sslToGear = true }
        return result
    }

    /// The gear uuid of a `hosts.txt` record (its sixth field), nil for a record of another shape.
    public static func gear(ofHostRecord record: String) -> String? {
        let fields = record.split(separator: "|", omittingEmptySubsequences: false)
        return fields.count == 7 ? String(fields[5]) : nil
    }

    /// Each map's lines for one gear, as `apply` writes them (and `oo-accept-node` expects them).
    public static func lines(of frontend: GearFrontend) -> [String: [String]] {
        let served = frontend.connections.compactMap { connection in routed(connection).map { (connection.path, $0) } }
        let depth = served.map { path, _ in path.split(separator: "/").count }.max() ?? 0
        // The root route's backend if it is a plain one (an address, not a keyword), and the first
        // segment of every path route: Apache proxies a request from the record alone when no
        // path route starts with its first segment (and the gear is neither idle nor under STS).
        let root = served.first { path, _ in path.isEmpty }?.1.destination ?? ""
        let backend = root.utf8.first.map(ASCII.isDigit) == true ? root : ""
        let firsts = Set(served.compactMap { path, _ in path.split(separator: "/").first.map { "/" + $0 } }).sorted()
        let record = "\(frontend.fqdn)|\(backend)|\(frontend.idle ? 1 : 0)|\(frontend.sts.map(String.init) ?? "")|\(depth)|\(frontend.uuid)|,"
            + firsts.map { $0 + "," }.joined()
        return [
            "routes": served.map { path, connection in "\(frontend.fqdn)\(path) \(connection.destination)|\(frontend.appUUID)|\(frontend.uuid)" },
            "hosts": ([frontend.fqdn] + frontend.aliases).map { "\($0) \(record)" },
            "aliases": frontend.aliases.map { "\($0) \(frontend.fqdn)" },
            "idler": frontend.idle ? ["\(frontend.fqdn) \(frontend.uuid)"] : [],
            "sts": frontend.sts.map { ["\(frontend.fqdn) \($0)"] } ?? [],
        ]
    }

    /// Rebuilds every map from the documents: a map whose lines differ from what the documents
    /// say is replaced whole, atomically (temp, fsync, rename), under the maps lock.
    public func reconcile(repair: Bool, keep: Set<String>, documents: () -> [GearFrontend]) throws(FrontendError) -> [String] {
        try prepare()
        var drift: [String] = []
        var workersChanged = false
        defer { if workersChanged { reloadForWorkers() } }
        try withLock { () throws(FrontendError) in
            var wanted: [String: [String]] = [:]
            var gears = documents()
            for uuid in keep.sorted() { if let served = try served(uuid) { gears.append(served) } }
            for gear in gears { for (map, lines) in Self.lines(of: gear) { wanted[map, default: []] += lines } }
            for map in Self.maps {
                let have = lines(map)
                let want = wanted[map] ?? []
                guard have.sorted() != want.sorted() else { continue }
                let missing = Set(want).subtracting(have).count
                let extra = Set(have).subtracting(want).count
                drift.append("\(map).txt: \(missing) line(s) missing, \(extra) line(s) that no document has" + (repair ? "; rebuilt" : ""))
                if repair { try rewrite(map, newLines: want) { _ in true } }
            }
            if repair { workersChanged = try updateWorkers() }
        }
        return drift
    }

    // MARK: Workers

    /// `http://address:port` of a proxied route's destination (plain or TOHTTPS), nil for any
    /// other. Only digits, dots and one colon pass: nothing a document holds reaches the
    /// configuration file otherwise.
    static func workerURL(destination: String) -> String? {
        let target = destination.hasPrefix("TOHTTPS:") ? destination.dropFirst(8) : Substring(destination)
        let address = target.prefix { $0 == "." || $0 == ":" || ("0"..."9").contains($0) }
        let parts = address.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port), !parts[0].isEmpty,
              parts[0].split(separator: ".", omittingEmptySubsequences: false).count == 4,
              parts[0].split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ !$0.isEmpty && (Int($0) ?? 256) <= 255 }),
              target.dropFirst(address.count).first.map({ $0 == "/" }) ?? true
        else { return nil }
        return "http://\(parts[0]):\(port)"
    }

    /// The worker declarations for the backends `routes` names.
    static func workersText(routes: [String]) -> String {
        var urls = Set<String>()
        for line in routes {
            guard let space = line.firstIndex(of: " ") else { continue }
            let destination = line[line.index(after: space)...].prefix { $0 != "|" }
            if let url = workerURL(destination: String(destination)) { urls.insert(url) }
        }
        var text = "# Generated by openshift-node from routes.txt: one pooled mod_proxy worker per gear backend.\n"
        for url in urls.sorted() { text += "<Proxy \"\(url)\">\nProxySet keepalive=On\n</Proxy>\n" }
        return text
    }

    /// Rewrites `workers.conf` from the routes map if its backends changed; true if it did.
    /// Called with the maps lock held.
    private func updateWorkers() throws(FrontendError) -> Bool {
        let text = Self.workersText(routes: lines("routes"))
        let path = directory + "/" + Self.workersFile
        guard FileSystem.read(path) != text else { return false }
        do { try FileSystem.writeAtomically(path, text) } catch { throw FrontendError(error) }
        return true
    }

    /// Has Apache read the new workers. A failure changes nothing but speed (requests are
    /// routed without pooled connections until the next reload), so it is not an error.
    private func reloadForWorkers() {
        guard !reload.isEmpty else { return }
        _ = try? Spawner.run(reload, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], timeoutSeconds: 120)
    }

    public func served(_ uuid: String) throws(FrontendError) -> GearFrontend? {
        var result: GearFrontend?
        for line in lines("routes") where line.hasSuffix("|" + uuid) {
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let value = parts[1].split(separator: "|", omittingEmptySubsequences: false)
            guard value.count == 3 else { continue }
            let key = String(parts[0])
            let slash = key.firstIndex(of: "/") ?? key.endIndex
            let host = String(key[..<slash])
            if result == nil { result = GearFrontend(uuid: uuid, appUUID: String(value[1]), fqdn: host) }
            result!.connections.append(Self.decode(path: String(key[slash...]), destination: String(value[0])))
        }
        guard var frontend = result else { return nil }
        frontend.aliases = lines("aliases").compactMap { line in
            let parts = line.split(separator: " ")
            return parts.count == 2 && String(parts[1]) == frontend.fqdn ? String(parts[0]) : nil
        }
        frontend.idle = lines("idler").contains { $0.split(separator: " ").last.map(String.init) == uuid }
        frontend.sts = lines("sts").first { $0.hasPrefix(frontend.fqdn + " ") }.flatMap { Int($0.split(separator: " ").last!) }
        return frontend
    }

    static func decode(path: String, destination: String) -> Connection {
        var options = Connection.Options()
        var target = destination
        let keywords: [(String, WritableKeyPath<Connection.Options, Bool>)] = [
            ("GONE", \.gone), ("FORBIDDEN", \.forbidden), ("NOPROXY", \.noproxy), ("HEALTH", \.health),
            ("REDIRECT:", \.redirect), ("FILE:", \.file), ("SSL_TO_GEAR:", \.sslToGear), ("TOHTTPS:", \.tohttps),
        ]
        for (keyword, flag) in keywords where destination.hasPrefix(keyword) {
            options[keyPath: flag] = true
            target = String(destination.dropFirst(keyword.count))
            break
        }
        return Connection(path: path, target: target, options: options)
    }

    // MARK: HTTPS

    /// Writes the HTTPS VirtualHosts of `keep`, removes those of `drop`, and reloads Apache. If
    /// the reload fails, every VirtualHost file touched is put back as it was and Apache is
    /// reloaded again, so its configuration stays loadable and the change is all or nothing.
    private func updateVirtualHosts(keep: [String], drop: [String]) throws(FrontendError) {
        guard let ssl else {
            if !keep.isEmpty { throw .plugin(name: name, reason: "no HTTPS listener is configured for SSL certificates") }
            return
        }
        do { try FileSystem.makeDirectories(vhostDirectory) } catch { throw FrontendError(error) }
        let touched = Set(keep + drop).sorted()
        let saved = touched.map { FileSystem.read(vhostDirectory + "/" + $0 + ".conf") }
        func putBack() {
            for (alias, text) in zip(touched, saved) {
                let path = vhostDirectory + "/" + alias + ".conf"
                if let text { try? FileSystem.writeAtomically(path, text) } else { unlink(path) }
            }
        }
        do throws(FrontendError) {
            for alias in drop where !keep.contains(alias) { unlink(vhostDirectory + "/" + alias + ".conf") }
            for alias in keep {
                let text = """
                    <VirtualHost \(ssl.listen)>
                    ServerName \(alias)
                    SSLEngine on
                    SSLCertificateFile "\(ssl.certificateDirectory)/\(alias).crt"
                    SSLCertificateKeyFile "\(ssl.certificateDirectory)/\(alias).key"
                    \(ApacheConfiguration.router(mapDirectory: directory, scheme: "https", port: Int(ssl.listen.split(separator: ":").last ?? "443") ?? 443,
                                                  wakePort: ssl.wakePort))
                    </VirtualHost>

                    """
                let path = vhostDirectory + "/" + alias + ".conf"
                do { try FileSystem.writeAtomically(path, text) } catch { throw FrontendError(error) }
            }
            try reloadForSSL()
        } catch {
            putBack()
            try? reloadForSSL()
            throw error
        }
    }

    private func reloadForSSL() throws(FrontendError) {
        guard let program = reload.first else { return }
        let status = (try? Spawner.run(reload, environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], timeoutSeconds: 120))?.status
        guard status == 0 else {
            throw .plugin(name: name, reason: "\(program) failed: the new HTTPS configuration was not loaded, and was undone")
        }
    }

    // MARK: Files

    /// Creates the map directory and any missing map, empty, so that an Apache configured with
    /// the router's rules starts before the first gear exists. Existing maps are left as they are.
    public func prepareMaps() throws(FrontendError) { try prepare() }

    private func prepare() throws(FrontendError) {
        do {
            try FileSystem.makeDirectories(directory)
            try FileSystem.makeDirectories(ApacheConfiguration.fileDirectory(mapDirectory: directory))
            if FileSystem.read(directory + "/health/health.txt") != "1\n" {
                try FileSystem.makeDirectories(directory + "/health")
                try FileSystem.writeAtomically(directory + "/health/health.txt", "1\n")
            }
        } catch {
            throw FrontendError(error)
        }
        for file in Self.maps.map(path) + [directory + "/" + Self.workersFile] where access(file, F_OK) != 0 {
            let fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            if fd >= 0 { close(fd) }
        }
    }

    func path(_ map: String) -> String { directory + "/" + map + ".txt" }

    private func withLock(_ body: () throws(FrontendError) -> Void) throws(FrontendError) {
        try LockFile.withLock(directory + "/.maps.lock", wrap: FrontendError.init, body)
    }

    func lines(_ map: String) -> [String] {
        guard let file = fopen(path(map), "r") else { return [] }
        defer { fclose(file) }
        var result: [String] = []
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, file) > 0, let line {
            var text = String(cString: line)
            if text.hasSuffix("\n") { text.removeLast() }
            if !text.isEmpty { result.append(text) }
        }
        free(line)
        return result
    }

    /// Streams `map` into a new file without the lines `drop` selects, adds `newLines`, and
    /// renames the new file over the map.
    private func rewrite(_ map: String, newLines: [String], drop: (String) -> Bool) throws(FrontendError) {
        let target = path(map)
        let temp = directory + "/.\(map).txt.new-\(getpid())"
        guard let output = fopen(temp, "w") else { throw .io(step: "create", path: temp, errno: errno) }
        var ok = false
        defer {
            if !ok { unlink(temp) }
        }
        if let input = fopen(target, "r") {
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            while getline(&line, &capacity, input) > 0, let line {
                var text = String(cString: line)
                if text.hasSuffix("\n") { text.removeLast() }
                if !text.isEmpty && !drop(text) { fputs(text + "\n", output) }
            }
            free(line)
            fclose(input)
        }
        for line in newLines { fputs(line + "\n", output) }
        guard fflush(output) == 0, fsync(fileno(output)) == 0 else {
            let code = errno
            fclose(output)
            throw .io(step: "write", path: temp, errno: code)
        }
        fchmod(fileno(output), 0o644)
        // mod_rewrite notices a new map by its mtime, and the kernel's file timestamps are as
        // coarse as its clock tick: two changes a millisecond apart could look identical. Make
        // the new map's mtime strictly later than the one it replaces.
        var old = stat()
        var new = stat()
        if stat(target, &old) == 0, fstat(fileno(output), &new) == 0,
           (new.st_mtim.tv_sec, new.st_mtim.tv_nsec) <= (old.st_mtim.tv_sec, old.st_mtim.tv_nsec) {
            var later = old.st_mtim
            later.tv_nsec += 1_000_000
            if later.tv_nsec >= 1_000_000_000 {
                later.tv_sec += 1
                later.tv_nsec -= 1_000_000_000
            }
            var times = [later, later]
            futimens(fileno(output), &times)
        }
        fclose(output)
        beforeRename?(temp)
        guard rename(temp, target) == 0 else { throw .io(step: "rename", path: target, errno: errno) }
        ok = true
    }
}
