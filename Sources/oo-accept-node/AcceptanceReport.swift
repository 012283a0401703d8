/// Everything the checks found, in the order they ran.
struct AcceptanceReport: Sendable {
    struct Entry: Sendable, Equatable {
        var check: String
        var finding: Finding
    }

    var entries: [Entry] = []

    var failures: [Entry] { entries.filter { $0.finding.severity == .failure } }
    var warnings: [Entry] { entries.filter { $0.finding.severity == .warning } }
    var notes: [Entry] { entries.filter { $0.finding.severity == .note } }
    var passed: Bool { failures.isEmpty }

    /// The line the original printed for a finding: `FAIL: <what>: <what to do>`.
    static func line(_ finding: Finding) -> String {
        switch finding.severity {
        case .failure: return "FAIL: \(finding.message): \(finding.fix)"
        case .warning: return "WARN: \(finding.message): \(finding.fix)"
        case .note: return "INFO: \(finding.message)"
        }
    }

    /// The object monitoring reads: `{"status", "failures", "warnings", "notes"}`, each finding
    /// as `{"check", "message", "fix"}`.
    struct JSON: Encodable {
        struct Item: Encodable {
            var check: String
            var message: String
            var fix: String
        }

        var status: String
        var failures: [Item]
        var warnings: [Item]
        var notes: [Item]
    }

    var json: JSON {
        func items(_ entries: [Entry]) -> [JSON.Item] {
            entries.map { JSON.Item(check: $0.check, message: $0.finding.message, fix: $0.finding.fix) }
        }
        return JSON(status: passed ? "PASS" : "FAIL", failures: items(failures), warnings: items(warnings), notes: items(notes))
    }
}
