import CLinux
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The one way root touches a gear's files.
///
/// A gear's home holds files and links its user controls, and root works there (writing the
/// environment, owning cartridge files, removing a deconfigured cartridge). Paths are never
/// resolved as strings: the home is opened once, beneath `GEAR_BASE_DIR` without following
/// links, and every operation resolves its relative path from that descriptor with `openat2`
/// (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), acting on the last component with the `*at` calls
/// and `AT_SYMLINK_NOFOLLOW`. A link planted anywhere on a path makes the operation fail (ELOOP)
/// instead of reaching outside the gear; a directory swapped while a tree is removed or owned is
/// handled as whatever is there, never followed. Reads are bounded and take regular files only.
///
/// The sandbox gets a `GearHome` whose ownership calls do nothing (its gears are directories of
/// the invoking user); everything else is the same code.
public final class GearHome: @unchecked Sendable {
    /// Who a file belongs to.
    public enum Owner: Sendable {
        /// root, with the gear's group: the gear may read, never write.
        case root
        /// The gear's user and group.
        case gear
    }

    /// The ids and label of the gear, and whether they are applied at all (not in the sandbox).
    public struct Ownership: Sendable {
        public var uid: UInt32
        public var gid: UInt32
        public var label: MCSLabel?
        public var enforced: Bool

        public init(uid: UInt32, gid: UInt32, label: MCSLabel?, enforced: Bool) {
            self.uid = uid
            self.gid = gid
            self.label = label
            self.enforced = enforced
        }
    }

    /// Limits of what root reads from a gear.
    public static let fileLimit = 1 << 20
    public static let environmentEntryLimit = 1024
    public static let environmentValueLimit = 128 * 1024
    public static let environmentTotalLimit = 4 << 20

    /// The home's path, for messages and for the values the gear sees (`OPENSHIFT_HOMEDIR`).
    public let path: String
    public let ownership: Ownership
    /// The home directory, open (O_PATH is not enough for `fdopendir`, so O_RDONLY).
    let fd: Int32

    init(fd: Int32, path: String, ownership: Ownership) {
        self.fd = fd
        self.path = path
        self.ownership = ownership
    }

    deinit { close(fd) }

    /// Opens the existing home `<base>/<name>` (never through a link).
    public static func open(base: String, name: String, ownership: Ownership) throws(ContainmentError) -> GearHome {
        try GearIdentity.validate(uuid: name)
        let basefd = Glibc.open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard basefd >= 0 else { throw .system(step: "open", target: base, errno: errno) }
        defer { close(basefd) }
        let fd = openat(basefd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw .system(step: "open gear home", target: base + "/" + name, errno: errno) }
        return GearHome(fd: fd, path: base + "/" + name, ownership: ownership)
    }

    /// Creates the home `<base>/<name>`: root's, the gear's group may enter (0750).
    public static func create(base: String, name: String, ownership: Ownership) throws(ContainmentError) -> GearHome {
        try GearIdentity.validate(uuid: name)
        let basefd = Glibc.open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard basefd >= 0 else { throw .system(step: "open", target: base, errno: errno) }
        defer { close(basefd) }
        guard mkdirat(basefd, name, 0o700) == 0 else { throw .system(step: "mkdir", target: base + "/" + name, errno: errno) }
        let home = try open(base: base, name: name, ownership: ownership)
        try home.own(home.fd, relativeTo: home.fd, ".", owner: .root, mode: 0o750, display: home.path)
        return home
    }

    // MARK: Resolving

    /// Refuses absolute paths, `.`, `..`, empty components and NULs before anything is opened.
    static func validate(_ relative: String) throws(ContainmentError) {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false)
        guard !relative.hasPrefix("/"), parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }), !relative.utf8.contains(0) else {
            throw .invalidArgument(field: "path in gear home", value: relative, reason: "must be relative, without '.', '..' or empty components")
        }
    }

    /// `a/b/c` -> (descriptor of `a/b`, `c`, whether the caller must close it); "" is the home itself.
    private func parent(of relative: String) throws(ContainmentError) -> (fd: Int32, name: String, owned: Bool) {
        if relative.isEmpty { return (fd, ".", false) }
        try Self.validate(relative)
        guard let slash = relative.lastIndex(of: "/") else { return (fd, relative, false) }
        let directory = String(relative[..<slash])
        let parentfd = cl_open_beneath(fd, directory, O_RDONLY | O_DIRECTORY, 0)
        guard parentfd >= 0 else { throw .system(step: "open (links are not followed in a gear)", target: display(directory), errno: errno) }
        return (parentfd, String(relative[relative.index(after: slash)...]), true)
    }

    private func withParent<T>(_ relative: String, _ body: (Int32, String) throws(ContainmentError) -> T) throws(ContainmentError) -> T {
        let (parentfd, name, owned) = try parent(of: relative)
        defer { if owned { close(parentfd) } }
        return try body(parentfd, name)
    }

    /// Opens `relative` beneath the home; the caller closes the descriptor.
    func openBeneath(_ relative: String, _ flags: Int32, mode: mode_t = 0) throws(ContainmentError) -> Int32 {
        if relative.isEmpty { return dup(fd) }
        try Self.validate(relative)
        let opened = cl_open_beneath(fd, relative, flags, UInt32(mode))
        guard opened >= 0 else { throw .system(step: "open (links are not followed in a gear)", target: display(relative), errno: errno) }
        return opened
    }

    func display(_ relative: String) -> String { relative.isEmpty ? path : path + "/" + relative }

    // MARK: Reading

    /// What is at `relative` (a link is reported as a link), nil if nothing or unreachable.
    public func status(_ relative: String) -> stat? {
        try? withParent(relative) { (parentfd, name) throws(ContainmentError) -> stat? in
            var st = stat()
            return fstatat(parentfd, name, &st, cl_at_symlink_nofollow()) == 0 ? st : nil
        }
    }

    public func exists(_ relative: String) -> Bool { status(relative) != nil }

    public func isDirectory(_ relative: String) -> Bool { status(relative).map { ($0.st_mode & S_IFMT) == S_IFDIR } ?? false }

    /// The names in a directory of the home, sorted; nil if it is not a directory reached without links.
    public func entries(_ relative: String = "") -> [String]? {
        guard let dirfd = try? openBeneath(relative, O_RDONLY | O_DIRECTORY) else { return nil }
        return FileSystem.entries(ofDescriptor: dirfd)
    }

    /// A regular file's contents, at most `limit` bytes. FIFOs, devices, links and directories
    /// are refused without blocking.
    public func read(_ relative: String, limit: Int = GearHome.fileLimit) throws(ContainmentError) -> [UInt8] {
        let file = try openBeneath(relative, O_RDONLY | O_NONBLOCK | O_NOCTTY)
        defer { close(file) }
        var st = stat()
        guard fstat(file, &st) == 0 else { throw .system(step: "fstat", target: display(relative), errno: errno) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw .system(step: "read (not a regular file)", target: display(relative), errno: EINVAL) }
        do { return try FileSystem.readAll(file, limit: limit, path: display(relative)) } catch { throw .system(step: error.step, target: error.path, errno: error.errno) }
    }

    public func readText(_ relative: String, limit: Int = GearHome.fileLimit) -> String? {
        (try? read(relative, limit: limit)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A directory of environment variables (one file per variable, the name is the file name):
    /// regular files with valid names only, NULs removed, one trailing newline dropped, each
    /// value and the whole bounded. Nothing reached through a link.
    public func environment(_ relative: String) -> [String: String] {
        guard let dirfd = try? openBeneath(relative, O_RDONLY | O_DIRECTORY) else { return [:] }
        defer { close(dirfd) }
        guard let names = FileSystem.entries(ofDescriptor: dup(dirfd)) else { return [:] }
        var result: [String: String] = [:]
        var total = 0
        for name in names where Self.isVariableName(name) {
            guard result.count < Self.environmentEntryLimit else { break }
            let file = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC)
            guard file >= 0 else { continue }
            defer { close(file) }
            var st = stat()
            guard fstat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                  let bytes = try? FileSystem.readAll(file, limit: Self.environmentValueLimit, path: name) else { continue }
            total += bytes.count
            guard total <= Self.environmentTotalLimit else { break }
            var value = String(decoding: bytes.filter { $0 != 0 }, as: UTF8.self)
            if value.hasSuffix("\n") { value.removeLast() }
            result[name] = value
        }
        return result
    }

    /// An environment variable name: a letter or `_`, then letters, digits and `_`, at most 128.
    public static func isVariableName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 128, first == 95 || (first >= 65 && first <= 90) || (first >= 97 && first <= 122)
        else { return false }
        return bytes.allSatisfy { $0 == 95 || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
    }

    // MARK: Changing

    /// Creates a directory (an existing directory is accepted), then gives it `owner` and `mode`.
    ///
    /// The parent is resolved once; the directory is then opened (never through a link) and owned
    /// and moded through that descriptor, so both act on the very directory that is there. A new
    /// directory is made with its mode (root's until it is given to its owner) and changed only
    /// where that differs (the umask, a set-group-id parent): every change is a journal entry.
    public func makeDirectory(_ relative: String, mode: mode_t, owner: Owner) throws(ContainmentError) {
        let done = try withParent(relative) { (parentfd, name) throws(ContainmentError) -> Bool in
            if mkdirat(parentfd, name, mode) != 0 && errno != EEXIST {
                throw .system(step: "mkdir", target: display(relative), errno: errno)
            }
            let dirfd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dirfd >= 0 else {
                // An existing directory we may not read (not root: the sandbox) is owned and moded by path below.
                if errno == EACCES { return false }
                // Something else than a directory (a file, a link) is there.
                throw .system(step: "mkdir", target: display(relative), errno: errno == ENOTDIR || errno == ELOOP ? EEXIST : errno)
            }
            defer { close(dirfd) }
            try own(dirfd, relativeTo: parentfd, name, owner: owner, mode: mode, display: display(relative))
            return true
        }
        if !done {
            try setOwner(relative, owner)
            try setMode(relative, mode)
        }
    }

    /// Gives the directory or new file open at `fd` (`name` in `parentfd`) `owner` (and its label)
    /// and exactly `mode`, changing only what differs.
    private func own(_ fd: Int32, relativeTo parentfd: Int32, _ name: String, owner: Owner, mode: mode_t,
                     display: String) throws(ContainmentError) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .system(step: "fstat", target: display, errno: errno) }
        if let (uid, gid) = ids(owner) {
            if st.st_uid != uid || st.st_gid != gid {
                guard fchown(fd, uid, gid) == 0 else { throw .system(step: "lchown", target: display, errno: errno) }
                // What the change of owner cleared (set-id bits, not on directories) is read again.
                guard fstat(fd, &st) == 0 else { throw .system(step: "fstat", target: display, errno: errno) }
            }
            try label(parentfd, name)
        }
        if st.st_mode & 0o7777 != mode {
            guard fchmod(fd, mode) == 0 else { throw .system(step: "chmod", target: display, errno: errno) }
        }
    }

    /// Replaces a file atomically (a temporary file beside it, renamed over it), created with
    /// `owner` and `mode` before it becomes visible. Not fsynced: what must survive a power loss
    /// (the node's gear records) is written by the node outside the home, durably; a gear's files
    /// survive the death of the writing process whole or not at all, like the original's.
    public func write(_ relative: String, _ bytes: [UInt8], mode: mode_t, owner: Owner) throws(ContainmentError) {
        let ids = ids(owner)
        let shown = display(relative)
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            do throws(SystemError) {
                try FileSystem.writeAtomically(in: parentfd, name: name, bytes, mode: mode, displayPath: shown, durable: false) { file throws(SystemError) in
                    if let (uid, gid) = ids {
                        guard fchown(file, uid, gid) == 0 else { throw SystemError(step: "fchown", path: shown, errno: errno) }
                    }
                }
            } catch {
                throw ContainmentError(error)
            }
            try label(parentfd, name)
        }
    }

    public func write(_ relative: String, _ text: String, mode: mode_t, owner: Owner) throws(ContainmentError) {
        try write(relative, Array(text.utf8), mode: mode, owner: owner)
    }

    /// Creates new files in one directory (none may exist yet: `O_EXCL`), each written, owned and
    /// labelled through its descriptor. For a gear being set up, whose record already says so:
    /// a setup killed half way is removed whole, so no file needs a rename to appear complete.
    public func writeNewFiles(in directory: String, _ files: [(name: String, text: String)], mode: mode_t,
                              owner: Owner) throws(ContainmentError) {
        let dirfd = try openBeneath(directory, O_RDONLY | O_DIRECTORY)
        defer { close(dirfd) }
        for (name, text) in files {
            let shown = display(directory + "/" + name)
            guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
                throw .invalidArgument(field: "file name in gear home", value: name, reason: "one path component")
            }
            let file = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
            guard file >= 0 else { throw .system(step: "create", target: shown, errno: errno) }
            defer { close(file) }
            // Owned (and moded, where the umask changed it) before anything is written.
            try own(file, relativeTo: dirfd, name, owner: owner, mode: mode, display: shown)
            do { try FileSystem.writeAll(file, Array(text.utf8), path: shown) } catch { throw ContainmentError(error) }
        }
    }

    /// Creates an empty file if nothing is there; an existing regular file is kept. Either way
    /// it gets `owner`.
    public func createFile(_ relative: String, mode: mode_t, owner: Owner) throws(ContainmentError) {
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            let file = openat(parentfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode)
            guard file >= 0 else { throw .system(step: "create", target: display(relative), errno: errno) }
            close(file)
        }
        try setOwner(relative, owner)
    }

    /// Removes a file, a link, or a whole tree (by descriptor walk, never following a link).
    /// Nothing there is not an error; anything left behind is.
    public func remove(_ relative: String) throws(ContainmentError) {
        guard !relative.isEmpty else { throw .invalidArgument(field: "path in gear home", value: "", reason: "the home itself is removed with the gear") }
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            do throws(SystemError) { try FileSystem.removeTree(in: parentfd, named: name) } catch {
                throw .system(step: error.step, target: display(relative) + " (at \(error.path))", errno: error.errno)
            }
        }
    }

    /// Gives one entry (the link itself, when it is one) to `owner`, and its MCS label.
    public func setOwner(_ relative: String, _ owner: Owner) throws(ContainmentError) {
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            try setOwner(parentfd, name, owner, display: display(relative))
        }
    }

    /// Gives a whole tree to `owner` by descriptor walk. A hard link to a file the gear does not
    /// already own is not given to it (it could be a way to a file outside the gear).
    public func setOwnerRecursively(_ relative: String, _ owner: Owner) throws(ContainmentError) {
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            try ownTree(parentfd, name, owner, display: display(relative), depth: 0)
        }
    }

    public func setMode(_ relative: String, _ mode: mode_t) throws(ContainmentError) {
        let target = try openBeneath(relative, cl_o_path())
        defer { close(target) }
        var st = stat()
        guard fstat(target, &st) == 0 else { throw .system(step: "fstat", target: display(relative), errno: errno) }
        guard (st.st_mode & S_IFMT) != S_IFLNK else { return }
        // chmod through the descriptor's /proc entry: the very inode that was opened.
        guard chmod("/proc/self/fd/\(target)", mode) == 0 else { throw .system(step: "chmod", target: display(relative), errno: errno) }
    }

    public func symlink(_ target: String, at relative: String) throws(ContainmentError) {
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            guard symlinkat(target, parentfd, name) == 0 || errno == EEXIST else { throw .system(step: "symlink", target: display(relative), errno: errno) }
        }
    }

    /// Copies a tree the node trusts (a cartridge from the repository) to `relative`, which must
    /// not exist, every entry given to `owner` as it is created.
    public func copyIn(from source: String, to relative: String, owner: Owner) throws(ContainmentError) {
        try withParent(relative) { (parentfd, name) throws(ContainmentError) in
            var copy = TreeCopy(ownership: ids(owner).map { .set(uid: $0.0, gid: $0.1) } ?? .preserve, preserveHardLinks: false)
            do throws(SystemError) { try copy.copy(from: source, into: parentfd, as: name, displayTarget: display(relative)) } catch {
                throw .system(step: error.step, target: error.path, errno: error.errno)
            }
        }
        if ownership.enforced && SELinux.isEnabled { try setOwnerRecursively(relative, owner) }
    }

    // MARK: Owners and labels

    private func ids(_ owner: Owner) -> (UInt32, UInt32)? {
        guard ownership.enforced else { return nil }
        return owner == .gear ? (ownership.uid, ownership.gid) : (0, ownership.gid)
    }

    private func setOwner(_ parentfd: Int32, _ name: String, _ owner: Owner, display: String) throws(ContainmentError) {
        guard let (uid, gid) = ids(owner) else { return }
        // A hard link the gear made to a file it does not own (possible where the kernel's
        // protected_hardlinks is off) is left alone: it may be a file outside the gear.
        var st = stat()
        if fstatat(parentfd, name, &st, cl_at_symlink_nofollow()) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_nlink > 1,
           st.st_uid != ownership.uid {
            if st.st_uid == uid && st.st_gid == gid { return }
            throw .invalidArgument(field: "file in gear home", value: display, reason: "a hard link to a file the gear does not own is left alone")
        }
        guard cl_fchownat_nofollow(parentfd, name, uid, gid) == 0 else { throw .system(step: "lchown", target: display, errno: errno) }
        try label(parentfd, name)
    }

    /// Applies the gear's MCS label to an entry (not to a link) when SELinux is on.
    private func label(_ parentfd: Int32, _ name: String) throws(ContainmentError) {
        guard ownership.enforced, SELinux.isEnabled, let label = ownership.label else { return }
        let target = openat(parentfd, name, cl_o_path() | O_NOFOLLOW | O_CLOEXEC)
        guard target >= 0 else { return }
        defer { close(target) }
        var st = stat()
        guard fstat(target, &st) == 0, (st.st_mode & S_IFMT) != S_IFLNK else { return }
        let path = "/proc/self/fd/\(target)"
        let current = (try? SELinux.fileContext(path)) ?? "system_u:object_r:openshift_var_lib_t:s0"
        let parts = current.split(separator: ":", maxSplits: 3).map(String.init)
        if parts.count >= 3 { try SELinux.setFileContext(path, "\(parts[0]):\(parts[1]):\(parts[2]):\(label)") }
    }

    private func ownTree(_ parentfd: Int32, _ name: String, _ owner: Owner, display: String, depth: Int) throws(ContainmentError) {
        guard ownership.enforced else { return }
        var st = stat()
        guard fstatat(parentfd, name, &st, cl_at_symlink_nofollow()) == 0 else { return }
        let kind = st.st_mode & S_IFMT
        if kind == S_IFREG && st.st_nlink > 1 && st.st_uid != ownership.uid { return }
        try setOwner(parentfd, name, owner, display: display)
        guard kind == S_IFDIR, depth < 512 else { return }
        let dirfd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dirfd >= 0 else { return }
        defer { close(dirfd) }
        for child in FileSystem.entries(ofDescriptor: dup(dirfd)) ?? [] {
            try ownTree(dirfd, child, owner, display: display + "/" + child, depth: depth + 1)
        }
    }
}
