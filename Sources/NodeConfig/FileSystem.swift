#if canImport(Glibc)
import Glibc
#endif

/// The two directory operations every module needs, written once.
public enum FileSystem {
    /// The names in a directory, without `.` and `..`, sorted; nil if it cannot be read.
    public static func entries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// A whole (small) file as text, nil if it cannot be read.
    public static func read(_ path: String) -> String? {
        switch readTextFile(path) {
        case .success(let text): return text
        case .failure: return nil
        }
    }

    /// `rm -rf` without following symbolic links. Best effort: the caller checks what is left.
    public static func removeTree(_ path: String) {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            chmod(path, 0o700)
            for name in entries(path) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}
