/// A gear's Kerberos principals as the original's `.k5login` kept them: an insertion-ordered map
/// from principal to the set of key ids that own it. Pure: parse, change, render.
///
/// File format: each principal is preceded by one `# id: <id>` line per owner and records are
/// separated by a blank line. A principal written by hand (no id line) has the nil owner, and
/// keeps the principal when named owners are removed.
public struct K5Login: Sendable, Equatable {
    public struct Entry: Sendable, Equatable {
        public var principal: String
        /// Owner ids in insertion order; nil is the "no owner" id.
        public var owners: [String?]
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    /// The original's parser: lines stripped, blank lines skipped; `# id: x` lines (matched
    /// anywhere in the line) collect owners for the next principal (an empty id is nil); a
    /// principal line with no owner before it gets the nil owner; other `#` lines are kept as
    /// entries with whatever owners preceded them.
    public init(text: String) {
        var pending: [String?] = []
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = raw.trimmingASCIIWhitespace()
            if line.isEmpty { continue }
            if let id = Self.ownerID(in: line) {
                if !pending.contains(id) { pending.append(id) }
                continue
            }
            if !line.hasPrefix("#") && pending.isEmpty { pending.append(nil) }
            if let index = entries.firstIndex(where: { $0.principal == line }) {
                entries[index].owners = pending
            } else {
                entries.append(Entry(principal: line, owners: pending))
            }
            pending = []
        }
    }

    /// The principals, in file order.
    public var principals: [String] { entries.map(\.principal) }

    public func owners(of principal: String) -> [String?]? { entries.first { $0.principal == principal }?.owners }

    /// Adds `id` to the principal's owners (a nil id adds none); a new principal is appended.
    public mutating func add(_ principal: String, id: String?) {
        if let index = entries.firstIndex(where: { $0.principal == principal }) {
            if let id, !entries[index].owners.contains(id) { entries[index].owners.append(id) }
        } else {
            entries.append(Entry(principal: principal, owners: id.map { [$0] } ?? []))
        }
    }

    /// Removes `id` from the principal's owners, and the principal once none is left. A
    /// principal that also has the nil owner survives the removal of named ids.
    public mutating func remove(_ principal: String, id: String?) {
        guard let index = entries.firstIndex(where: { $0.principal == principal }) else { return }
        entries[index].owners.removeAll { $0 == id }
        if entries[index].owners.isEmpty { entries.remove(at: index) }
    }

    /// Makes `principals` the whole set (comment lines included go); blank ids add no owner.
    public mutating func replace(_ principals: [(String, String?)]) {
        entries = []
        for (principal, id) in principals {
            let owner = id.flatMap { $0.trimmingASCIIWhitespace().isEmpty ? nil : $0 }
            if let owner {
                add(principal, id: owner)
            } else if owners(of: principal) == nil {
                entries.append(Entry(principal: principal, owners: []))
            }
        }
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// `# id: <id>` per owner, the principal, a blank line between records, one final newline.
    public func render() -> String {
        var text = ""
        for entry in entries {
            for owner in entry.owners { text += "# id: \(owner ?? "")\n" }
            text += entry.principal + "\n\n"
        }
        return text.isEmpty ? text : String(text.dropLast())
    }

    /// The id of a `#\s*id\s*:\s*(.*)$` line ("" is nil), or nil if the line is not one.
    static func ownerID(in line: String) -> String?? {
        var rest = Substring(line)
        while let hash = rest.firstIndex(of: "#") {
            var cursor = rest[rest.index(after: hash)...].drop { $0 == " " || $0 == "\t" }
            if cursor.hasPrefix("id") {
                cursor = cursor.dropFirst(2).drop { $0 == " " || $0 == "\t" }
                if cursor.hasPrefix(":") {
                    let id = cursor.dropFirst().drop { $0 == " " || $0 == "\t" }
                    return .some(id.isEmpty ? nil : String(id))
                }
            }
            rest = rest[rest.index(after: hash)...]
        }
        return .none
    }
}

extension StringProtocol {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" || $0 == "\u{0B}" || $0 == "\u{0C}" }
        return String(self.drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}
