import Cartridges

/// A rescan report for people (`lines`) and for scripts (`Encodable`).
public struct RescanReportJSON: Encodable {
    struct Item: Encodable {
        var source: String
        var status: String
        var tuples: [String]?
        var error: String?
    }

    var basePath: String
    var items: [Item]
    var repositoryProblems: [String]
    var basePathProblem: String?
    var entries: Int

    enum CodingKeys: String, CodingKey {
        case items, entries
        case basePath = "base_path"
        case repositoryProblems = "repository_problems"
        case basePathProblem = "base_path_problem"
    }

    public init(_ report: RescanReport) {
        basePath = report.basePath
        repositoryProblems = report.repositoryProblems
        basePathProblem = report.basePathProblem
        entries = report.entryCount
        items = report.items.map { item in
            switch item.outcome {
            case .installed(let tuples): return Item(source: item.source, status: "installed", tuples: tuples)
            case .unchanged(let tuples): return Item(source: item.source, status: "unchanged", tuples: tuples)
            case .failed(let reason): return Item(source: item.source, status: "failed", error: reason)
            }
        }
        self.summary = report.summary
    }

    private let summary: String

    public var lines: [String] {
        var lines = repositoryProblems.map { "skipped repository entry: \($0)" }
        for item in items {
            switch item.status {
            case "failed": lines.append("failed \(item.source): \(item.error ?? "")")
            default: lines.append("\(item.status) \(item.source): \((item.tuples ?? []).joined(separator: " "))")
            }
        }
        lines.append(summary)
        return lines
    }
}
