import Access
import NodeConfig
import NodeTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Everything a tree holds that a user relies on: each entry's path, type, permission bits,
/// content (regular files) or target (links). Owners are left out: a restored gear has a new uid.
struct TreeEntry: Equatable, CustomStringConvertible {
    var path: String
    var kind: String
    var mode: UInt32
    var content: [UInt8]

    var description: String { "\(path) \(kind) \(String(mode, radix: 8)) \(content.count) bytes" }
}

enum Tree {
    /// The entries under `root`, sorted; `excluding` names home-relative paths left out (with what is under them).
    static func entries(_ root: String, excluding: Set<String> = []) -> [TreeEntry] {
        var result: [TreeEntry] = []
        func walk(_ relative: String) {
            let full = relative.isEmpty ? root : root + "/" + relative
            for name in FileSystem.entries(full) ?? [] {
                let path = relative.isEmpty ? name : relative + "/" + name
                if excluding.contains(path) { continue }
                var st = stat()
                guard lstat(root + "/" + path, &st) == 0 else { continue }
                let mode = UInt32(st.st_mode & 0o7777)
                switch st.st_mode & S_IFMT {
                case S_IFDIR:
                    result.append(TreeEntry(path: path, kind: "dir", mode: mode, content: []))
                    walk(path)
                case S_IFLNK:
                    var buffer = [CChar](repeating: 0, count: 4097)
                    let n = readlink(root + "/" + path, &buffer, 4096)
                    result.append(TreeEntry(path: path, kind: "link", mode: 0, content: Array(buffer[0..<max(0, n)].map { UInt8(bitPattern: $0) })))
                case S_IFREG:
                    result.append(TreeEntry(path: path, kind: "file", mode: mode, content: (try? FileSystem.readBytes(root + "/" + path, limit: 1 << 30)) ?? []))
                default:
                    result.append(TreeEntry(path: path, kind: "other", mode: mode, content: []))
                }
            }
        }
        walk("")
        return result.sorted { $0.path < $1.path }
    }
}

enum Archives {
    /// `bytes` compressed by the real gzip.
    static func gzip(_ bytes: [UInt8]) throws -> [UInt8] {
        let scratch = TestFiles.temporaryDirectory("gzip")
        defer { TestFiles.remove(scratch) }
        try TestFiles.write(scratch + "/a.tar", bytes: bytes)
        let result = try ProcessRunner.run(["/bin/gzip", "-n", scratch + "/a.tar"])
        guard result.status == 0 else { throw TestFiles.Failure(description: "gzip: \(result.stderr)") }
        return try FileSystem.readBytes(scratch + "/a.tar.gz", limit: 1 << 30)
    }
}

/// A directory laid out like a gear's home (as the gear sees it), for restores without root.
struct FakeGear {
    let root: String
    let home: String
    let uuid = "0123abcd"

    init() throws {
        root = TestFiles.temporaryDirectory("fake-gear")
        home = root + "/" + uuid
        for directory in [".tmp", "app-root/data/old/deep", "app-root/runtime", "app-root/logs", "app-deployments", ".env"] {
            try TestFiles.makeDirectories(home + "/" + directory)
        }
        try TestFiles.write(home + "/app-root/data/old/deep/file", "old data")
        try TestFiles.write(home + "/app-root/data/.hidden", "old hidden")
        try TestFiles.write(home + "/app-root/runtime/.state", "stopped\n")
        try TestFiles.write(home + "/.env/OPENSHIFT_GEAR_NAME", "myapp")
        symlink("../data", home + "/app-root/runtime/data")
    }

    var gear: InGear { InGear(uuid: uuid, home: home, environment: ["OPENSHIFT_GEAR_NAME": "myapp", "PATH": "/usr/bin:/bin"]) }

    func remove() { TestFiles.remove(root) }

    /// Runs `gear restore` in this process with `archive` (gzip bytes) on its input.
    func restore(_ archive: [UInt8], includeGit: Bool = false) throws(InGearError) -> [String] {
        let path = root + "/archive.tar.gz"
        try! TestFiles.write(path, bytes: archive)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(fd) }
        final class Lines: @unchecked Sendable { var lines: [String] = [] }
        let said = Lines()
        try GearRestore(gear: gear, includeGit: includeGit, say: { said.lines.append($0) }).run(input: fd)
        return said.lines
    }
}
