import Containment
import Gears
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// A cartridge of the gear as the gear itself sees it: a directory of the home holding
/// `metadata/manifest.yml` (the gear's own copy, which the gear may change: fine, since
/// everything here runs as the gear).
public struct InGearCartridge: Sendable, Equatable {
    public var name: String
    public var directory: String
}

/// The gear this process runs as, from the inside: identity from the process's uid (`getpwuid`:
/// the user name is the gear's uuid, the home its home), the environment the login shell
/// (`oo-trap-user`) built, and the cartridges found in the home. Nothing here is privileged:
/// `gear` refuses to run as root, so the kernel's permissions are the boundary.
public struct InGear: Sendable {
    public var uuid: String
    /// The home, without a trailing slash.
    public var home: String
    public var environment: [String: String]
    public var cartridges: [InGearCartridge]
    /// The primary cartridge's directory name (from `OPENSHIFT_PRIMARY_CARTRIDGE_DIR`).
    public var primary: String?
    public var hookTimeoutSeconds: Double = 600

    public init(uuid: String, home: String, environment: [String: String]) {
        self.uuid = uuid
        self.home = home.count > 1 && home.hasSuffix("/") ? String(home.dropLast()) : home
        self.environment = environment
        cartridges = Self.cartridges(in: self.home)
        if let dir = environment["OPENSHIFT_PRIMARY_CARTRIDGE_DIR"] {
            let trimmed = dir.hasSuffix("/") ? String(dir.dropLast()) : dir
            let name = String(trimmed.split(separator: "/").last ?? "")
            primary = cartridges.contains { $0.name == name } ? name : nil
        }
    }

    /// The gear of the calling process; refused for root and for users without a home.
    public static func current(environment: [String: String]) throws(InGearError) -> InGear {
        // A sandbox gear runs as the node's own user: its identity is what the node handed it
        // (nothing here is privileged, so the environment may name it).
        if let home = environment["OPENSHIFT_SANDBOX_GEAR"], let uuid = environment["OPENSHIFT_GEAR_UUID"], home.hasPrefix("/") {
            return InGear(uuid: uuid, home: home, environment: environment)
        }
        let uid = getuid()
        guard uid != 0 && geteuid() != 0 else {
            throw .notAGear(reason: "gear runs as a gear's user, never as root (it is run inside the gear, over SSH)")
        }
        guard let entry = getpwuid(uid), let namePointer = entry.pointee.pw_name, let homePointer = entry.pointee.pw_dir else {
            throw .notAGear(reason: "uid \(uid) has no passwd entry: gear must run as a gear's user")
        }
        let name = String(cString: namePointer)
        let home = String(cString: homePointer)
        var st = stat()
        guard home.hasPrefix("/"), lstat(home, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw .notAGear(reason: "the home \(home) of \(name) is not a directory: gear must run as a gear's user")
        }
        return InGear(uuid: name, home: home, environment: environment)
    }

    /// Directories of `home` (not hidden) that hold `metadata/manifest.yml`, sorted by name.
    static func cartridges(in home: String) -> [InGearCartridge] {
        (FileSystem.entries(home) ?? []).filter { !$0.hasPrefix(".") }.compactMap { name in
            var st = stat()
            let directory = home + "/" + name
            guard lstat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR,
                  lstat(directory + "/metadata/manifest.yml", &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
            return InGearCartridge(name: name, directory: directory)
        }
    }

    /// Cartridges in start order: secondaries first, the primary last (stop runs it reversed).
    public var startOrder: [InGearCartridge] {
        cartridges.filter { $0.name != primary } + cartridges.filter { $0.name == primary }
    }

    /// The environment a cartridge's hook gets: this process's, plus the cartridge's `env/*`.
    public func environment(for cartridge: InGearCartridge) -> [String: String] {
        var env = environment
        env.merge(Self.readEnvironment(cartridge.directory + "/env")) { $1 }
        return env
    }

    /// `<directory>/*`: one variable per regular file (valid names only, never through a link),
    /// value without its final newline; bounded like the node's reader.
    static func readEnvironment(_ directory: String) -> [String: String] {
        var result: [String: String] = [:]
        var total = 0
        for name in FileSystem.entries(directory) ?? [] where GearHome.isVariableName(name) {
            guard result.count < GearHome.environmentEntryLimit else { break }
            let fd = open(directory + "/" + name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                  let bytes = try? FileSystem.readAll(fd, limit: GearHome.environmentValueLimit, path: name) else { continue }
            total += bytes.count
            guard total <= GearHome.environmentTotalLimit else { break }
            var value = String(decoding: bytes.filter { $0 != 0 }, as: UTF8.self)
            if value.hasSuffix("\n") { value.removeLast() }
            result[name] = value
        }
        return result
    }

    /// The snapshot and restore rules of every cartridge (`metadata/managed_files.yml`).
    public var snapshotRules: [(cartridge: String, rules: SnapshotRules)] {
        cartridges.compactMap { cartridge in
            guard let text = FileSystem.read(cartridge.directory + "/metadata/managed_files.yml", limit: 1 << 20) else { return nil }
            return (cartridge.name, SnapshotRules(managedFilesYAML: text))
        }
    }

    // MARK: Hooks

    /// Whether the cartridge has an executable `bin/control`.
    public func hasControl(_ cartridge: InGearCartridge) -> Bool {
        access(cartridge.directory + "/bin/control", X_OK) == 0
    }

    /// Runs `bin/control <action>` of a cartridge as this process (the gear), from its directory,
    /// with its environment; output captured (bounded), a time limit.
    public func control(_ action: String, _ cartridge: InGearCartridge) throws(InGearError) -> Spawner.Result {
        do throws(SystemError) {
            return try Spawner.run([cartridge.directory + "/bin/control", action], environment: environment(for: cartridge),
                                   directory: cartridge.directory, timeoutSeconds: hookTimeoutSeconds)
        } catch {
            throw .system(error)
        }
    }

    // MARK: State

    var statePath: String { home + "/app-root/runtime/.state" }
    var stopLockPath: String { home + "/app-root/runtime/.stop_lock" }

    public var state: GearState {
        guard let text = FileSystem.read(statePath, limit: 64) else { return .unknown }
        return GearState(rawValue: text.split(whereSeparator: { $0 == "\n" || $0 == " " }).first.map(String.init) ?? "") ?? .unknown
    }

    public var hasStopLock: Bool { access(stopLockPath, F_OK) == 0 }

    func setState(_ state: GearState) throws(InGearError) {
        // Whole or absent after a crash (temp + rename); not fsynced: the state is re-derived by the next start or stop.
        do throws(SystemError) {
            try FileSystem.writeAtomically(statePath, Array((state.rawValue + "\n").utf8), mode: 0o660, durable: false)
        } catch {
            throw .system(error)
        }
    }

    func setStopLock(_ present: Bool) throws(InGearError) {
        if present {
            let fd = open(stopLockPath, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw .system(SystemError(step: "create", path: stopLockPath, errno: errno)) }
            close(fd)
        } else if unlink(stopLockPath) != 0 && errno != ENOENT {
            throw .system(SystemError(step: "unlink", path: stopLockPath, errno: errno))
        }
    }
}
