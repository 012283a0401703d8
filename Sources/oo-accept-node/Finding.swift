/// What one check found: a failure (the node is not fit to serve), a warning (worth knowing,
/// not failing) or a note (state reported with `--verbose` and in JSON).
struct Finding: Sendable, Equatable {
    enum Severity: String, Sendable {
        case failure, warning, note
    }

    var severity: Severity
    /// What is wrong, naming the path, gear, account or host.
    var message: String
    /// What to do about it (empty for notes).
    var fix: String

    static func fail(_ message: String, fix: String) -> Finding { Finding(severity: .failure, message: message, fix: fix) }
    static func warn(_ message: String, fix: String) -> Finding { Finding(severity: .warning, message: message, fix: fix) }
    static func note(_ message: String) -> Finding { Finding(severity: .note, message: message, fix: "") }
}
