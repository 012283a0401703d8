import Cartridges
import NodeConfig

/// The listing both admin commands print.
public enum AdminListing {
    /// Loads the repository and prints it: tuples, or JSON entries with `--json`. Entries that
    /// could not be loaded are named on stderr; the good ones are listed regardless.
    public static func print(_ repository: CartridgeRepository, json: Bool) throws {
        let report: CartridgeRepository.LoadReport
        do {
            report = try repository.load()
        } catch {
            throw CommandFailure(error)
        }
        for problem in report.problems { printError("warning: skipped repository entry: \(problem)") }
        if json {
            printLine(Listing.json(Listing.entries(repository)))
        } else {
            let text = Listing.text(repository.snapshot)
            printText(text)
        }
    }
}

/// Directory listing for the command-line tools (non-hidden subdirectories, sorted).
public enum FileSystemListing {
    public static func directories(in path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw CommandFailure("cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { closedir(dir) }
        var result: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard !name.hasPrefix(".") else { continue }
            var st = stat()
            if stat(path + "/" + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR { result.append(path + "/" + name) }
        }
        return result.sorted()
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
