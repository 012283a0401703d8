/// An SSH key the node writes for a gear (already checked by `KeyRules`).
public struct AuthorizedKey: Sendable, Equatable {
    public var type: String
    public var body: String
    /// The key's name ("" when the broker sent none: the id then ends in `-`, as the original's).
    public var comment: String
    public var login: String?

    public init(type: String, body: String, comment: String, login: String? = nil) {
        self.type = type
        self.body = body
        self.comment = comment
        self.login = login
    }
}

/// A gear's `.ssh/authorized_keys` as the original kept it: an insertion-ordered map from key id
/// (a line's last field, `OPENSHIFT-<uuid>-<comment>`) to the whole line. Pure: parse, change,
/// render; the file work is `GearKeys`'.
///
/// Each line is `command="[OPENSHIFT_LOGIN=<login> ]<shell>",no-X11-forwarding <type> <body> <id>`:
/// every login runs the gear shell, which only then decides what the client may do.
public struct AuthorizedKeys: Sendable, Equatable {
    public let uuid: String
    public let shell: String
    private var order: [String] = []
    private var byID: [String: String] = [:]

    /// Parses a file's text: a line's id is its last field; blank lines are skipped; a later
    /// line with the same id replaces the earlier one where it stood.
    public init(uuid: String, shell: String, text: String = "") {
        self.uuid = uuid
        self.shell = shell
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(raw)
            guard let id = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).last.map(String.init) else { continue }
            set(id, line)
        }
    }

    /// The lines, in file order.
    public var lines: [String] { order.map { byID[$0]! } }

    /// The key ids, in file order.
    public var ids: [String] { order }

    /// `OPENSHIFT-<uuid>-<comment>`.
    public func id(comment: String) -> String { "OPENSHIFT-\(uuid)-\(comment)" }

    /// The line the node writes for a key.
    public func line(for key: AuthorizedKey) -> String {
        let login = key.login.map { "OPENSHIFT_LOGIN=\($0) " } ?? ""
        return "command=\"\(login)\(shell)\",no-X11-forwarding \(key.type) \(key.body) \(id(comment: key.comment))"
    }

    /// Replaces the line with the key's id where it stands, or appends it.
    public mutating func add(_ key: AuthorizedKey) {
        set(id(comment: key.comment), line(for: key))
    }

    /// With a comment: removes the lines that end with `OPENSHIFT-<uuid>-<comment>`. Without:
    /// removes every line that has `body` as one of its fields.
    public mutating func remove(body: String?, comment: String?) {
        let drop: (String) -> Bool
        if let comment {
            let suffix = id(comment: comment)
            drop = { $0.hasSuffix(suffix) }
        } else if let body {
            drop = { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).contains { $0 == body } }
        } else {
            return
        }
        let dropped = Set(order.filter { drop(byID[$0]!) })
        order.removeAll { dropped.contains($0) }
        for id in dropped { byID[id] = nil }
    }

    /// Makes `keys` the whole set (an empty list empties the file).
    public mutating func replace(_ keys: [AuthorizedKey]) {
        order = []
        byID = [:]
        for key in keys { add(key) }
    }

    /// The file's text: the lines joined by newlines, plus one; an empty set is a single newline.
    public func render() -> String {
        lines.joined(separator: "\n") + "\n"
    }

    private mutating func set(_ id: String, _ line: String) {
        if byID[id] == nil { order.append(id) }
        byID[id] = line
    }
}
