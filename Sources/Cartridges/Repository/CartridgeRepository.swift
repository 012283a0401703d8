import Dispatch
import Logging
import NodeConfig
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The node's cartridge repository: `<CARTRIDGE_REPO_DIR>/<vendor>-<name>/<cartridge version>/`.
///
/// One per node and per process (`shared(for:)`), plus `init` for tests pointed at any directory.
/// The disk is the truth and the index follows it:
/// - installs build a copy beside the target and swap it in with one atomic rename, then
///   record the source's fingerprint (`.<cv>.source`), so re-installing unchanged content is a
///   stat walk and no copy;
/// - every writer holds the repository lock file exclusively; loads hold it shared;
/// - the in-memory index is an immutable `RepositorySnapshot` replaced, under a mutex, only after
///   the disk has changed; readers take the current snapshot and are never blocked by writers.
/// Bad entries (a broken manifest, a stray file, a directory that does not match its manifest)
/// are reported and skipped, never fatal to the others.
public final class CartridgeRepository: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// The repository root (`CARTRIDGE_REPO_DIR`).
        public var path: String
        /// Where packaged cartridges are (`CARTRIDGE_BASE_PATH`): rescanned, and protected from erase.
        public var cartridgeBasePath: String

        public init(path: String, cartridgeBasePath: String) {
            self.path = path
            self.cartridgeBasePath = cartridgeBasePath
        }

        public init(layout: PathLayout) {
            self.init(path: layout.cartridgeRepoDir, cartridgeBasePath: layout.cartridgeBasePath)
        }
    }

    /// The outcome of one install.
    public struct InstallResult: Sendable {
        let installed: InstalledVersion
        /// False when identical content was already installed and nothing was copied.
        public var changed: Bool
        public var path: String

        /// The installed projections, one per software version, ascending.
        public var manifests: [Manifest] { installed.projections }
        /// Their listing lines, without building them.
        public var tuples: [String] { installed.tuples }
    }

    /// What the repository recorded about an installed version's source (`.<cv>.source`).
    struct SourceStamp: Sendable, Equatable {
        var key: RepositorySnapshot.CartridgeKey
        var cartridgeVersion: String
        var text: String

        var source: String? {
            text.split(separator: "\n").first { $0.hasPrefix("source=") }.map { String($0.dropFirst(7)) }
        }
    }

    /// The index plus the source stamps, replaced together.
    struct State: Sendable {
        var snapshot = RepositorySnapshot()
        /// Canonical source directory -> stamp of the version installed from it.
        var stamps: [String: SourceStamp] = [:]
        /// What `.index` holds, or will hold once written.
        var index = RepositoryIndex()
        /// True when `index` differs from the file (an entry was read from its manifest).
        var indexStale = true
        /// How many manifests the last full read parsed from their files.
        var manifestsRead = 0
        /// The index file this state was read from or written as: when the file is another one,
        /// another process has changed the repository.
        var indexFile: RepositoryIndex.FileStamp?
    }

    /// Problems met while loading; the good entries are loaded regardless.
    public struct LoadReport: Sendable {
        public var problems: [String]
        public var entryCount: Int
        /// How many manifests were read and parsed because the index could not vouch for them.
        public var manifestsRead: Int
    }

    public let configuration: Configuration
    public var path: String { configuration.path }
    private let lock: RepositoryLock
    private let logger: Logger
    private let state = Mutex(State())
    private let afterFileCopied: (@Sendable (Int) -> Void)?

    /// - Parameter afterFileCopied: test seam, called after each file an install copies.
    public init(configuration: Configuration, logger: Logger = Logger(label: "openshift.cartridges"),
                afterFileCopied: (@Sendable (Int) -> Void)? = nil) {
        self.configuration = configuration
        self.lock = RepositoryLock(path: configuration.path + "/.lock")
        self.logger = logger
        self.afterFileCopied = afterFileCopied
    }

    private static let instances = Mutex<[Configuration: CartridgeRepository]>([:])

    /// The process's repository for this layout (created, not loaded, on first use).
    public static func shared(for layout: PathLayout, logger: Logger = Logger(label: "openshift.cartridges")) -> CartridgeRepository {
        let configuration = Configuration(layout: layout)
        return instances.withLock { instances in
            if let existing = instances[configuration] { return existing }
            let repository = CartridgeRepository(configuration: configuration, logger: logger)
            instances[configuration] = repository
            return repository
        }
    }

    /// The current index. Immutable: later changes produce a new snapshot.
    public var snapshot: RepositorySnapshot { state.withLock { $0.snapshot } }

    /// The snapshot, first re-loaded (through the index, so at the cost of an `lstat` per
    /// entry) if another process has changed the repository since it was taken: every writer
    /// replaces the index file, so a different file means a change. What queries answer from,
    /// so that `cartridge_repository list` and `cartridge-list` give one listing.
    public func current() -> RepositorySnapshot {
        let (snapshot, known) = state.withLock { ($0.snapshot, $0.indexFile) }
        if let known, RepositoryIndex.FileStamp.of(indexPath) == known { return snapshot }
        _ = try? load()
        return self.snapshot
    }

    // MARK: Load

    /// Reads the whole repository from disk into a new snapshot: through the persisted index,
    /// re-reading only the manifests it cannot vouch for (and then writing it anew, if allowed).
    @discardableResult
    public func load() throws(CartridgesError) -> LoadReport {
        try ensureRoot()
        let (fresh, problems) = try lock.withLock(.shared) { () throws(CartridgesError) in
            var (fresh, problems) = try readAll()
            // Under the shared lock no writer runs; readers writing one index at once each
            // rename a whole file. A reader that may not write the repository leaves it be.
            if fresh.indexStale, (try? fresh.index.write(indexPath)) != nil {
                fresh.indexStale = false
                fresh.indexFile = RepositoryIndex.FileStamp.of(indexPath)
            }
            return (fresh, problems)
        }
        state.withLock { $0 = fresh }
        let snapshot = fresh.snapshot
        for problem in problems { logger.warning("skipped repository entry", metadata: ["problem": "\(problem)"]) }
        return LoadReport(problems: problems, entryCount: snapshot.count, manifestsRead: fresh.manifestsRead)
    }

    var indexPath: String { path + "/" + RepositoryIndex.fileName }

    /// Writes the index if it no longer matches the file. Called by writers, holding the
    /// exclusive lock, once their changes are on disk: an index is a cache, so a writer killed
    /// before this leaves one that the next load finds stale, entry by entry.
    private func persistIndex() {
        let (index, stale) = state.withLock { ($0.index, $0.indexStale) }
        guard stale else { return }
        FileSystem.removeTemporaries(of: indexPath)
        do {
            try index.write(indexPath)
            let file = RepositoryIndex.FileStamp.of(indexPath)
            state.withLock { if $0.index == index { $0.indexStale = false; $0.indexFile = file } }
        } catch {
            logger.warning("cannot write the repository index; loads will read every manifest",
                           metadata: ["path": "\(indexPath)", "error": "\(error)"])
        }
    }

    private func ensureRoot() throws(CartridgesError) {
        if !Posix.isDirectory(path) { try Posix.makeDirectories(path) }
    }

    private func readAll() throws(CartridgesError) -> (State, [String]) {
        var state = State()
        // Examined before being read: if it is replaced meanwhile, `current()` loads again.
        state.indexFile = RepositoryIndex.FileStamp.of(indexPath)
        let known = RepositoryIndex.read(indexPath)
        var problems: [String] = []
        var keys: [RepositorySnapshot.CartridgeKey] = []
        for entry in try Posix.listDirectory(path) where !entry.hasPrefix(".") {
            let directory = path + "/" + entry
            guard Posix.isDirectory(directory, followLinks: false) else {
                problems.append("\(directory): not a cartridge directory")
                continue
            }
            guard let key = Self.cartridgeKey(directoryName: entry) else {
                problems.append("\(directory): not a <vendor>-<name> directory")
                continue
            }
            keys.append(key)
        }
        // Cartridge directories are independent: read them on every core.
        let results = Mutex([CartridgeRead?](repeating: nil, count: keys.count))
        let work = keys
        let now = RepositoryIndex.now()
        DispatchQueue.concurrentPerform(iterations: work.count) { index in
            let result = readCartridge(work[index], known: known, now: now)
            results.withLock { $0[index] = result }
        }
        var reread = 0
        for (key, result) in zip(keys, results.withLock { $0 }) {
            guard let result else { continue }
            problems += result.problems
            reread += result.reread
            state.snapshot.replace(key, with: result.versions)
            for stamp in result.stamps { if let source = stamp.source { state.stamps[source] = stamp } }
            for entry in result.entries { state.index.entries[RepositoryIndex.key(entry.directory, entry.cartridgeVersion)] = entry }
        }
        state.manifestsRead = reread
        state.indexStale = known == nil || reread > 0 || known!.entries.count != state.index.entries.count
        return (state, problems)
    }

    /// Vendors cannot contain `-`, so the first `-` separates vendor from name.
    static func cartridgeKey(directoryName: String) -> RepositorySnapshot.CartridgeKey? {
        guard let dash = directoryName.firstIndex(of: "-") else { return nil }
        let key = RepositorySnapshot.CartridgeKey(vendor: String(directoryName[..<dash]),
                                                  name: String(directoryName[directoryName.index(after: dash)...]))
        return key.vendor.isEmpty || key.name.isEmpty ? nil : key
    }

    /// What one cartridge directory holds.
    struct CartridgeRead: Sendable {
        var versions: [InstalledVersion] = []
        var stamps: [SourceStamp] = []
        var problems: [String] = []
        /// The index entries of its good versions.
        var entries: [RepositoryIndex.Entry] = []
        /// How many manifests were read from disk rather than taken from the index.
        var reread = 0
    }

    /// Reads every cartridge version of one cartridge directory, taking each manifest from
    /// `known` when its entry still matches the files, from the manifest file otherwise.
    private func readCartridge(_ key: RepositorySnapshot.CartridgeKey, known: RepositoryIndex?, now: Int64) -> CartridgeRead {
        let name = key.vendor + "-" + key.name
        let directory = path + "/" + name
        var read = CartridgeRead()
        let entries: [String]
        do {
            entries = try Posix.listDirectory(directory)
        } catch {
            if case .io(_, _, let code) = error, code == ENOENT { return read }
            read.problems.append("\(error)")
            return read
        }
        // Entries are examined relative to the directory, not by walking its path again.
        let dirfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else {
            if errno != ENOENT { read.problems.append("\(CartridgesError.io(step: "open", path: directory, errno: errno))") }
            return read
        }
        defer { close(dirfd) }
        for entry in entries where !entry.hasPrefix(".") {
            let versionDirectory = directory + "/" + entry
            guard CartridgeVersion(entry) != nil,
                  let st = try? Posix.status(at: dirfd, entry, path: versionDirectory, followLinks: false), (st.st_mode & S_IFMT) == S_IFDIR
            else {
                read.problems.append("\(versionDirectory): not a cartridge version directory")
                continue
            }
            let manifestPath = versionDirectory + "/metadata/manifest.yml"
            let stampPath = directory + "/." + entry + ".source"
            do {
                // Examined before being read: a change after this is a newer ctime next time.
                let manifestStamp = RepositoryIndex.FileStamp(try Posix.status(at: dirfd, entry + "/metadata/manifest.yml", path: manifestPath))
                let sourceStamp = (try? Posix.status(at: dirfd, "." + entry + ".source", path: stampPath)).map(RepositoryIndex.FileStamp.init)
                let settled = RepositoryIndex.isSettled(manifestStamp, now: now)
                    && (sourceStamp.map { RepositoryIndex.isSettled($0, now: now) } ?? true)
                if let recorded = known?.entries[RepositoryIndex.key(name, entry)], recorded.settled,
                   recorded.manifest == manifestStamp, recorded.stamp == sourceStamp,
                   let cv = CartridgeVersion(entry) {
                    let versions = recorded.versions.compactMap(CartridgeVersion.init)
                    if versions.count == recorded.versions.count, !versions.isEmpty {
                        // Vouched for: nothing is read, parsed or validated again.
                        read.versions.append(InstalledVersion(key: key, cartridgeVersion: cv, versions: versions, path: manifestPath,
                                                              encodedMap: recorded.encodedMap))
                        if let text = recorded.stampText { read.stamps.append(SourceStamp(key: key, cartridgeVersion: entry, text: text)) }
                        read.entries.append(recorded)
                        continue
                    }
                }
                read.reread += 1
                if manifestStamp.size == 0 {
                    read.problems.append("\(manifestPath): manifest is empty (corrupted?)")
                    continue
                }
                let map = try ManifestDocument.topMap(yaml: try Posix.readText(manifestPath), path: manifestPath)
                let stampText = sourceStamp == nil ? nil : try? Posix.readText(stampPath)
                let document = try ManifestDocument.parse(map: map, path: manifestPath)
                guard document.vendor == key.vendor, document.name == key.name, document.cartridgeVersion.text == entry else {
                    read.problems.append("\(manifestPath): manifest describes (\(document.vendor), \(document.name), "
                        + "\(document.cartridgeVersion)), which belongs in \(document.primary.repositoryDirectory), "
                        + "not \(name)/\(entry)")
                    continue
                }
                read.versions.append(InstalledVersion(key: key, document: document, path: manifestPath))
                if let stampText { read.stamps.append(SourceStamp(key: key, cartridgeVersion: entry, text: stampText)) }
                read.entries.append(RepositoryIndex.Entry(
                    directory: name, cartridgeVersion: entry, manifest: manifestStamp,
                    versions: document.projections.map(\.version.text), encodedMap: RepositoryIndex.encodeMap(map),
                    stamp: stampText == nil ? nil : sourceStamp, stampText: stampText, settled: settled))
            } catch {
                read.problems.append(error.description)
            }
        }
        return read
    }

    /// Re-reads one cartridge's directory into the index (after this process changed it, or to
    /// see what another process did to it). The caller holds the exclusive lock and calls
    /// `persistIndex` once its changes are done.
    private func refresh(_ key: RepositorySnapshot.CartridgeKey) {
        let known = state.withLock { $0.index }
        let read = readCartridge(key, known: known, now: RepositoryIndex.now())
        for problem in read.problems { logger.warning("skipped repository entry", metadata: ["problem": "\(problem)"]) }
        let name = key.vendor + "-" + key.name
        state.withLock { state in
            state.snapshot.replace(key, with: read.versions)
            state.stamps = state.stamps.filter { $0.value.key != key }
            for stamp in read.stamps { if let source = stamp.source { state.stamps[source] = stamp } }
            let before = state.index.entries.count
            state.index.entries = state.index.entries.filter { $0.value.directory != name }
            for entry in read.entries { state.index.entries[RepositoryIndex.key(entry.directory, entry.cartridgeVersion)] = entry }
            if read.reread > 0 || before != state.index.entries.count { state.indexStale = true }
        }
    }

    // MARK: Install

    /// Installs the cartridge in `source` (a directory holding `metadata/manifest.yml`).
    @discardableResult
    public func install(from source: String) throws(CartridgesError) -> InstallResult {
        try ensureRoot()
        return try lock.withLock(.exclusive) { () throws(CartridgesError) in
            defer { persistIndex() }
            return try installLocked(source)
        }
    }

    /// A source's canonical path and current stamp, computed before taking the lock's time.
    struct Probe: Sendable {
        var canonical: String
        var stamp: String
    }

    /// Canonical path and fingerprint stamp of a source (nil if it cannot be read; the install
    /// then reports why). `canonicalBase` is the canonical path of the source's directory, if
    /// known: a source that is a directory there, not a link, is then canonical without asking
    /// `realpath`, which reads every component of the path again for each source.
    static func probe(_ source: String, canonicalBase: String? = nil) -> Probe? {
        let canonical: String
        if let canonicalBase, Posix.isDirectory(source, followLinks: false) {
            canonical = canonicalBase + "/" + baseName(source)
        } else {
            guard Posix.isDirectory(source), let resolved = try? Posix.realPath(source) else { return nil }
            canonical = resolved
        }
        guard let fingerprint = try? FileTree.fingerprint(canonical) else { return nil }
        return Probe(canonical: canonical, stamp: "source=\(canonical)\nfingerprint=\(fingerprint)\n")
    }

    private func installLocked(_ source: String, probe: Probe? = nil, root canonicalRoot: String? = nil) throws(CartridgesError) -> InstallResult {
        guard Posix.isDirectory(source) else {
            throw .invalidSource(path: source, reason: "Illegal path to cartridge source")
        }
        let canonical: String
        if let probe { canonical = probe.canonical } else { canonical = try Posix.realPath(source) }
        let root: String
        if let canonicalRoot { root = canonicalRoot } else { root = try Posix.realPath(path) }
        if canonical == root || canonical.hasPrefix(root + "/") || root.hasPrefix(canonical + "/") || canonical == "/" {
            throw .invalidSource(path: source, reason: "Source cannot be inside, or contain, the cartridge repository \(root)")
        }
        let manifestPath = canonical + "/metadata/manifest.yml"
        guard Posix.isRegularFile(manifestPath) else {
            throw .invalidSource(path: source + "/metadata/manifest.yml", reason: "Cartridge manifest.yml missing")
        }
        // Fingerprint before copying: if the source changes during the copy, the next rescan
        // sees a different fingerprint and copies again.
        let stamp: String
        if let probe { stamp = probe.stamp } else { stamp = "source=\(canonical)\nfingerprint=\(try FileTree.fingerprint(canonical))\n" }

        // Unchanged since it was installed: no need to even parse the manifest again.
        if let unchanged = unchangedInstall(source: canonical, stamp: stamp) { return unchanged }

        let document = try ManifestDocument.parse(yaml: try Posix.readText(manifestPath), path: source + "/metadata/manifest.yml")
        let key = RepositorySnapshot.CartridgeKey(vendor: document.vendor, name: document.name)
        let cv = document.cartridgeVersion.text
        let parent = path + "/" + key.vendor + "-" + key.name
        let target = parent + "/" + cv
        let stampPath = parent + "/." + cv + ".source"
        if Posix.isDirectory(target, followLinks: false), (try? Posix.readText(stampPath)) == stamp {
            refresh(key)
            if let unchanged = unchangedInstall(source: canonical, stamp: stamp) { return unchanged }
        }

        try Posix.makeDirectories(parent)
        try removeLeftovers(in: parent)
        let staging = parent + "/.\(cv).staging-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        do {
            try FileTree.copy(from: canonical, to: staging, progress: afterFileCopied)
            try Posix.syncFileSystem(of: staging)
            if Posix.exists(target) {
                try Posix.exchange(staging, target)
            } else {
                try Posix.rename(staging, target)
            }
        } catch {
            try? Posix.removeTree(staging)
            throw error
        }
        // After an exchange, `staging` holds the previous copy.
        try? Posix.removeTree(staging)
        try Posix.writeAtomically(stampPath, Array(stamp.utf8))
        refresh(key)
        logger.debug("installed cartridge", metadata: ["cartridge.path": "\(target)", "cartridge.source": "\(canonical)"])
        return InstallResult(installed: InstalledVersion(key: key, document: document, path: target + "/metadata/manifest.yml"),
                             changed: true, path: target)
    }

    /// The install result for a source whose recorded stamp still matches, if it does.
    private func unchangedInstall(source: String, stamp: String) -> InstallResult? {
        let (known, snapshot) = state.withLock { ($0.stamps[source], $0.snapshot) }
        guard let known, known.text == stamp, let cv = CartridgeVersion(known.cartridgeVersion),
              let installed = snapshot.installed(known.key, cv) else { return nil }
        let target = path + "/" + known.key.vendor + "-" + known.key.name + "/" + known.cartridgeVersion
        guard Posix.isDirectory(target, followLinks: false) else { return nil }
        return InstallResult(installed: installed, changed: false, path: target)
    }

    /// Removes staging and erase directories left by a writer that died. Only called with the
    /// exclusive lock held, when no other writer can be using them.
    private func removeLeftovers(in parent: String) throws(CartridgesError) {
        for entry in try Posix.listDirectory(parent) where entry.hasPrefix(".") && (entry.contains(".staging-") || entry.contains(".erasing-")) {
            logger.info("removing leftover of an interrupted change", metadata: ["path": "\(parent)/\(entry)"])
            try Posix.removeTree(parent + "/" + entry)
        }
    }

    // MARK: Erase

    /// Erases a cartridge version (every software version it provides, as the original did).
    /// Refused, unless `force`, when a gear uses it or `CARTRIDGE_BASE_PATH` ships it.
    @discardableResult
    public func erase(vendor: String, name: String, version: String, cartridgeVersion: String, force: Bool = false,
                      usage: any CartridgeUsage) throws(CartridgesError) -> Manifest
    {
        if let problem = ManifestDocument.vendorProblem(vendor) {
            throw .invalidArgument(field: "cartridge_vendor", value: vendor, reason: problem)
        }
        if let problem = ManifestDocument.nameProblem(name), !problem.hasSuffix("is reserved.") {
            throw .invalidArgument(field: "name", value: name, reason: problem)
        }
        for (field, value) in [("version", version), ("cartridge_version", cartridgeVersion)] where CartridgeVersion(value) == nil {
            throw .invalidArgument(field: field, value: value, reason: "expected digits separated by dots, like 1.10")
        }
        try ensureRoot()
        return try lock.withLock(.exclusive) { () throws(CartridgesError) -> Manifest in
            let key = RepositorySnapshot.CartridgeKey(vendor: vendor, name: name)
            refresh(key)
            let manifest = try snapshot.select(vendor: vendor, name: name, version: version, cartridgeVersion: cartridgeVersion)
            if !force {
                let uses = usage.gears(using: vendor, name: name, cartridgeVersion: cartridgeVersion)
                if !uses.isEmpty {
                    throw .eraseRefused(ident: manifest.tuple,
                                        reason: "Cannot erase cartridge used by gears: \(manifest.tuple) is used by gear(s) \(uses.joined(separator: ", ")); --force erases it anyway")
                }
                if let source = shippedCartridges()[ShippedKey(vendor: vendor, name: name, cartridgeVersion: cartridgeVersion)] {
                    throw .eraseRefused(ident: manifest.tuple,
                                        reason: "Cannot erase cartridge installed in CARTRIDGE_BASE_PATH: \(manifest.tuple) is shipped by \(source); --force erases it anyway")
                }
            }
            let parent = path + "/" + vendor + "-" + name
            let trash = parent + "/.\(cartridgeVersion).erasing-\(getpid())"
            try Posix.rename(parent + "/" + cartridgeVersion, trash)
            try Posix.unlink(parent + "/." + cartridgeVersion + ".source")
            try Posix.removeTree(trash)
            if (try? Posix.listDirectory(parent))?.isEmpty == true { rmdir(parent) }
            refresh(key)
            persistIndex()
            logger.debug("erased cartridge", metadata: ["cartridge": "\(manifest.tuple)"])
            return manifest
        }
    }

    // MARK: Base path

    public struct ShippedKey: Hashable, Sendable {
        public var vendor: String
        public var name: String
        public var cartridgeVersion: String

        public init(vendor: String, name: String, cartridgeVersion: String) {
            self.vendor = vendor
            self.name = name
            self.cartridgeVersion = cartridgeVersion
        }
    }

    /// The cartridge versions `CARTRIDGE_BASE_PATH` ships now, with their source directories.
    /// Unreadable or invalid sources are left out (a rescan reports them).
    public func shippedCartridges() -> [ShippedKey: String] {
        var shipped: [ShippedKey: String] = [:]
        let base = configuration.cartridgeBasePath
        for entry in (try? Posix.listDirectory(base)) ?? [] where !entry.hasPrefix(".") {
            let manifestPath = base + "/" + entry + "/metadata/manifest.yml"
            guard let text = try? Posix.readText(manifestPath),
                  let document = try? ManifestDocument.parse(yaml: text, path: manifestPath) else { continue }
            shipped[ShippedKey(vendor: document.vendor, name: document.name, cartridgeVersion: document.cartridgeVersion.text)] =
                base + "/" + entry
        }
        return shipped
    }

    /// Installs every cartridge directory of `CARTRIDGE_BASE_PATH`, after re-reading the
    /// repository from disk so that changes made by other processes are seen. Never throws:
    /// every problem is in the report, and one bad cartridge does not stop the others.
    public func rescan() -> RescanReport {
        let base = configuration.cartridgeBasePath
        var report = RescanReport(basePath: base)
        do {
            try ensureRoot()
            try lock.withLock(.exclusive) { () throws(CartridgesError) in
                let (fresh, problems) = try readAll()
                state.withLock { $0 = fresh }
                defer { persistIndex() }
                report.repositoryProblems = problems
                guard Posix.isDirectory(base) else {
                    report.basePathProblem = "CARTRIDGE_BASE_PATH \(base) is not a directory"
                    return
                }
                var installedFrom: [String: String] = [:]
                let sources = try Posix.listDirectory(base).filter { !$0.hasPrefix(".") }.map { base + "/" + $0 }
                let canonicalBase = try? Posix.realPath(base)
                let root = try Posix.realPath(path)
                // Fingerprinting is a walk of stats per cartridge: do it on every core first.
                let probes = Mutex([Probe?](repeating: nil, count: sources.count))
                DispatchQueue.concurrentPerform(iterations: sources.count) { index in
                    let probe = Self.probe(sources[index], canonicalBase: canonicalBase)
                    probes.withLock { $0[index] = probe }
                }
                for (source, probe) in zip(sources, probes.withLock { $0 }) {
                    let outcome: RescanReport.Outcome
                    do throws(CartridgesError) {
                        guard Posix.isDirectory(source) else {
                            throw CartridgesError.invalidSource(path: source, reason: "Not a cartridge directory")
                        }
                        let result = try installLocked(source, probe: probe, root: root)
                        if let earlier = installedFrom[result.path] {
                            throw CartridgesError.invalidSource(
                                path: source, reason: "Same vendor, name and Cartridge-Version as \(earlier), which was installed instead")
                        }
                        installedFrom[result.path] = source
                        let tuples = result.tuples
                        outcome = result.changed ? .installed(tuples) : .unchanged(tuples)
                    } catch {
                        outcome = .failed(error.description)
                    }
                    report.items.append(.init(source: source, outcome: outcome))
                }
            }
        } catch {
            report.basePathProblem = error.description
        }
        report.entryCount = snapshot.count
        return report
    }
}
