import NodeConfig
#if canImport(Glibc)
import Glibc
#endif

/// Builds cartridge source directories for tests and benchmarks.
public struct CartridgeBuilder: Sendable {
    public var name: String
    public var vendor = "redhat"
    public var shortName: String
    public var cartridgeVersion = "0.0.1"
    public var versions: [String]
    /// Extra manifest text appended verbatim (YAML at the top level).
    public var extraManifest = ""
    /// Extra files: relative path -> contents.
    public var files: [String: String] = ["bin/control": "#!/bin/bash\nexit 0\n"]
    /// Number of endpoints to declare.
    public var endpoints = 0

    public init(name: String, versions: [String] = ["0.1"], cartridgeVersion: String = "0.0.1", vendor: String = "redhat") {
        self.name = name
        self.versions = versions
        self.cartridgeVersion = cartridgeVersion
        self.vendor = vendor
        self.shortName = name.uppercased().filter { $0.isLetter || $0.isNumber }
    }

    public var manifest: String {
        var text = """
        Name: \(name)
        Cartridge-Short-Name: \(shortName)
        Display-Name: \(name) cartridge
        Cartridge-Vendor: \(vendor)
        Cartridge-Version: '\(cartridgeVersion)'
        Version: '\(versions.last ?? "0.1")'
        Versions: [\(versions.map { "'\($0)'" }.joined(separator: ", "))]
        Categories: [service, web_framework]

        """
        if endpoints > 0 {
            text += "Endpoints:\n"
            for i in 1...endpoints {
                text += """
                  - Private-IP-Name: IP\(i)
                    Private-Port-Name: PORT\(i)
                    Private-Port: \(8079 + i)
                    Public-Port-Name: PROXY_PORT\(i)
                    Mappings:
                      - Frontend: '/front\(i)'
                        Backend: '/back\(i)'

                """
            }
        }
        return text + extraManifest
    }

    /// Writes the cartridge into `directory/<dirName>` (default: the name) and returns its path.
    @discardableResult
    public func write(into directory: String, as dirName: String? = nil) throws -> String {
        let root = directory + "/" + (dirName ?? name)
        try TestFiles.write(root + "/metadata/manifest.yml", manifest)
        for (path, contents) in files {
            try TestFiles.write(root + "/" + path, contents, mode: path.hasPrefix("bin/") ? 0o755 : 0o644)
        }
        return root
    }
}

/// File helpers for tests: write with parents, temporary directories, removal.
public enum TestFiles {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public static func write(_ path: String, _ contents: String, mode: mode_t = 0o644) throws {
        try write(path, bytes: Array(contents.utf8), mode: mode)
    }

    /// Writes exactly `bytes`: for files that are not valid UTF-8 or hold NUL bytes.
    public static func write(_ path: String, bytes: [UInt8], mode: mode_t = 0o644) throws {
        try makeDirectories(String(path[..<path.lastIndex(of: "/")!]))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(description: "open \(path): errno \(errno)") }
        defer { close(fd) }
        guard bytes.isEmpty || Glibc.write(fd, bytes, bytes.count) == bytes.count else {
            throw Failure(description: "write \(path): errno \(errno)")
        }
        fchmod(fd, mode)
    }

    public static func read(_ path: String) -> String? { FileSystem.read(path) }

    /// A directory of environment variables as a test reads it (file name = name, content = value).
    public static func environment(_ directory: String) -> [String: String] {
        var result: [String: String] = [:]
        for name in FileSystem.entries(directory) ?? [] where !name.hasPrefix(".") {
            guard var value = FileSystem.read(directory + "/" + name) else { continue }
            if value.hasSuffix("\n") { value.removeLast() }
            result[name] = value
        }
        return result
    }

    public static func makeDirectories(_ path: String) throws {
        var current = ""
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, 0o755) != 0 && errno != EEXIST {
                throw Failure(description: "mkdir \(current): errno \(errno)")
            }
        }
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    /// A new empty directory under /tmp, unique to this call.
    public static func temporaryDirectory(_ label: String = "node-test") -> String {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        return String(cString: path!)
    }

    /// `rm -rf`, without following links.
    public static func remove(_ path: String) { FileSystem.removeTree(path) }

    /// Non-hidden entries of a directory, sorted.
    public static func list(_ path: String, includeHidden: Bool = false) -> [String] {
        (FileSystem.entries(path) ?? []).filter { includeHidden || !$0.hasPrefix(".") }
    }

    /// Every entry under `path`, hidden ones included, as sorted relative paths (directories end
    /// in `/`), without following links: what a test compares to show an operation left a tree
    /// as it found it. Empty when `path` does not exist.
    public static func tree(_ path: String) -> [String] {
        var result: [String] = []
        func walk(_ relative: String) {
            for name in FileSystem.entries(relative.isEmpty ? path : path + "/" + relative) ?? [] {
                let child = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                let isDirectory = lstat(path + "/" + child, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
                result.append(isDirectory ? child + "/" : child)
                if isDirectory { walk(child) }
            }
        }
        walk("")
        return result.sorted()
    }
}
