#if canImport(Glibc)
import Glibc
#endif

/// A directory of environment variables, one file per variable (name = file name, content =
/// value, no trailing newline), as cartridges and the original node expect.
public struct EnvDirectory: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 128, first == 95 || (first >= 65 && first <= 90) || (first >= 97 && first <= 122)
        else { return false }
        return bytes.allSatisfy { $0 == 95 || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) }
    }

    /// Every variable; `.erb` templates, `.rpmnew` files and non-regular files are skipped, one
    /// trailing newline is stripped and NUL bytes removed.
    public func read() -> [String: String] {
        var result: [String: String] = [:]
        guard let dir = opendir(path) else { return result }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard Self.isValidName(name) else { continue }
            var st = stat()
            guard lstat(path + "/" + name, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size < 1 << 20 else { continue }
            guard var value = readSmallFile(path + "/" + name) else { continue }
            value.removeAll { $0 == "\0" }
            if value.hasSuffix("\n") { value.removeLast() }
            result[name] = value
        }
        return result
    }

    public func value(_ name: String) -> String? {
        guard Self.isValidName(name), var value = readSmallFile(path + "/" + name) else { return nil }
        if value.hasSuffix("\n") { value.removeLast() }
        return value
    }

    /// Writes one variable crash-safely (temp file, rename).
    public func write(_ name: String, _ value: String, mode: mode_t = 0o644) throws(GearsError) {
        guard Self.isValidName(name) else {
            throw .invalidArgument(field: "environment variable name", value: name, reason: "expected letters, digits and '_', not starting with a digit")
        }
        guard !value.contains("\0"), value.utf8.count <= 128 * 1024 else {
            throw .invalidArgument(field: "value of \(name)", value: String(value.prefix(40)), reason: "no NUL bytes and at most 128 KiB")
        }
        try writeFileAtomically(path + "/" + name, value, mode: mode)
    }

    public func remove(_ name: String) {
        guard Self.isValidName(name) else { return }
        unlink(path + "/" + name)
    }
}

func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = Glibc.read(fd, &buffer, buffer.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += buffer[0..<n]
        if bytes.count > 1 << 20 { return nil }
    }
    return String(decoding: bytes, as: UTF8.self)
}

public func writeFileAtomically(_ path: String, _ text: String, mode: mode_t = 0o644) throws(GearsError) {
    let temp = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard fd >= 0 else { throw .io(step: "create", path: temp, errno: errno) }
    let bytes = Array(text.utf8)
    let written = bytes.isEmpty ? 0 : Glibc.write(fd, bytes, bytes.count)
    let code = errno
    fchmod(fd, mode)
    close(fd)
    guard written == bytes.count else {
        unlink(temp)
        throw .io(step: "write", path: temp, errno: code)
    }
    guard rename(temp, path) == 0 else {
        let code = errno
        unlink(temp)
        throw .io(step: "rename", path: path, errno: code)
    }
}
