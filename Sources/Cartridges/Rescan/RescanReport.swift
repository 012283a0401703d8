/// What a rescan of `CARTRIDGE_BASE_PATH` did, cartridge by cartridge.
public struct RescanReport: Sendable {
    public enum Outcome: Sendable, Equatable {
        /// Copied into the repository (new or changed); the tuples it provides.
        case installed([String])
        /// Already in the repository with identical content.
        case unchanged([String])
        /// Not installed; the reason names what was wrong and where.
        case failed(String)
    }

    public struct Item: Sendable {
        public var source: String
        public var outcome: Outcome
    }

    public var basePath: String
    public var items: [Item] = []
    /// Problems found while reloading the repository itself (bad directories, bad manifests).
    public var repositoryProblems: [String] = []
    /// Set when the base path itself could not be read.
    public var basePathProblem: String?
    /// Entries in the repository after the rescan.
    public var entryCount = 0

    public var installed: Int { items.filter { if case .installed = $0.outcome { true } else { false } }.count }
    public var unchanged: Int { items.filter { if case .unchanged = $0.outcome { true } else { false } }.count }
    public var failed: Int { items.filter { if case .failed = $0.outcome { true } else { false } }.count }

    public var summary: String {
        "rescan of \(basePath): \(installed) installed, \(unchanged) unchanged, \(failed) failed; \(entryCount) entries in the repository"
    }
}
