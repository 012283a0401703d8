import CLibYAML

/// The bounds within which the node reads any YAML (manifests, `managed_files.yml`), checked
/// while the document is read, before anything is built past them.
///
/// A manifest comes from a package, a broker or a gear; none of them may make the node run out of
/// memory or stack. A recursive composer overflows the stack on 100,000 nested `[`, and a tree
/// with aliases expands when it is converted (a 463-byte "billion laughs" grows to gigabytes), so
/// the reader walks libyaml's event stream: no recursion, constant work per event, and it stops
/// at the first event past a limit. Real manifests are a few KB, a few hundred nodes and a few
/// levels deep.
public enum YAMLLimits {
    /// The largest text accepted, in bytes.
    public static let maximumBytes = 1 << 20
    /// Collections nested in one another: a node with this many enclosing collections is refused.
    public static let maximumDepth = 64
    /// Nodes (scalars, collections, and mapping keys) of the document with every alias expanded.
    public static let maximumNodes = 100_000

    /// Throws the first limit `yaml` exceeds. Text libyaml cannot parse is not this check's
    /// business: it stops there without an error, and `ManifestValue.parse` reports it.
    public static func check(_ yaml: String) throws(YAMLLimitError) {
        do {
            _ = try YAMLReader.read(yaml, building: false)
        } catch .limit(let error) {
            throw error
        } catch {
            return
        }
    }
}

/// A YAML document beyond one of `YAMLLimits`; `line` is where the walk stopped (1-based).
public struct YAMLLimitError: Error, CustomStringConvertible, Equatable {
    public var reason: String
    public var line: Int?

    public var description: String { line.map { "\(reason) at line \($0)" } ?? reason }
}

/// Text that is not one YAML document the node reads: libyaml's own problem, or a composition
/// the node refuses (a collection as a mapping key, an undefined alias, a second document).
public struct YAMLSyntaxError: Error, CustomStringConvertible, Equatable {
    public var description: String
}

enum YAMLReadError: Error {
    case limit(YAMLLimitError)
    case syntax(YAMLSyntaxError)
}

/// One pass over libyaml's events that checks the limits and, when `building`, composes the
/// `ManifestValue` as it goes.
///
/// It keeps, for each open collection, its expanded size and height and the value being built,
/// and for each anchor the size and height of the node it names (what an alias repeats) and that
/// node. Scalars keep their text; a plain `~`, `null`, `Null`, `NULL` or empty scalar is null,
/// as YAML's core schema (and the original's parser) reads it. Tags are not interpreted.
struct YAMLReader {
    struct Extent {
        /// Nodes, with aliases expanded; saturates just past the budget.
        var size = 0
        /// Levels of collections below the node (0 for a scalar or an empty collection).
        var height = 0
    }

    /// A collection still open: its anchor, its extent so far, and its contents.
    struct Open {
        var anchor: String?
        var extent = Extent(size: 1)
        var isMapping: Bool
        var items: [ManifestValue] = []
        var map = ManifestMap()
        /// In a mapping, the key read and waiting for its value.
        var key: String?
    }

    /// What an anchor names: its extent, its value, and its text when it is a scalar (a key).
    struct Anchored {
        var extent: Extent
        var value: ManifestValue
        var text: String?
    }

    let building: Bool
    var stack: [Open] = []
    var anchors: [String: Anchored] = [:]
    var total = 0
    var root: ManifestValue?
    var documents = 0

    /// Reads `yaml`: the document's value (an empty stream is an empty map), or the first limit
    /// or syntax problem met. Without `building`, the value is not built and nil is returned.
    static func read(_ yaml: String, building: Bool) throws(YAMLReadError) -> ManifestValue? {
        let size = yaml.utf8.count
        guard size <= YAMLLimits.maximumBytes else {
            throw .limit(YAMLLimitError(reason: "YAML text of \(size) bytes is larger than \(YAMLLimits.maximumBytes) bytes", line: nil))
        }
        var text = yaml
        let result: Result<ManifestValue?, YAMLReadError> = text.withUTF8 { buffer in
            var reader = YAMLReader(building: building)
            do throws(YAMLReadError) {
                return .success(try reader.run(buffer))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    init(building: Bool) { self.building = building }

    mutating func run(_ buffer: UnsafeBufferPointer<UInt8>) throws(YAMLReadError) -> ManifestValue? {
        let empty: ManifestValue? = building ? .map(ManifestMap()) : nil
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return empty }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw .syntax(YAMLSyntaxError(description: "libyaml: out of memory")) }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, base, buffer.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else { throw .syntax(Self.problem(of: parser)) }
            defer { yaml_event_delete(&event) }
            let line = Int(event.start_mark.line) + 1
            let column = Int(event.start_mark.column) + 1
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return building ? (root ?? empty) : nil
            case YAML_DOCUMENT_START_EVENT:
                documents += 1
                if documents > 1 {
                    throw .syntax(YAMLSyntaxError(description: "a second YAML document at line \(line), column \(column): expected a single document"))
                }
            case YAML_SCALAR_EVENT:
                try add(Extent(size: 1), line: line)
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: Int(scalar.length)), as: UTF8.self)
                let plain = scalar.style == YAML_PLAIN_SCALAR_STYLE || scalar.style == YAML_ANY_SCALAR_STYLE
                let value: ManifestValue = plain && Self.nulls.contains(text) ? .null : .scalar(text, quoted: !plain)
                if let anchor = Self.name(scalar.anchor) {
                    anchors[anchor] = Anchored(extent: Extent(size: 1), value: building ? value : .null, text: text)
                }
                try place(value, key: text, line: line, column: column)
            case YAML_ALIAS_EVENT:
                guard let name = Self.name(event.data.alias.anchor), let anchored = anchors[name] else {
                    throw .syntax(YAMLSyntaxError(description: "an undefined alias at line \(line), column \(column)"))
                }
                try add(anchored.extent, line: line)
                try place(anchored.value, key: anchored.text, line: line, column: column)
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                try add(Extent(size: 1), line: line)
                if let open = stack.last, open.isMapping, open.key == nil {
                    throw .syntax(YAMLSyntaxError(description: "a mapping key that is not a scalar at line \(line), column \(column)"))
                }
                let mapping = event.type == YAML_MAPPING_START_EVENT
                let anchor = mapping ? Self.name(event.data.mapping_start.anchor) : Self.name(event.data.sequence_start.anchor)
                stack.append(Open(anchor: anchor, isMapping: mapping))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = stack.popLast() else { continue }
                let value: ManifestValue = !building ? .null : closed.isMapping ? .map(closed.map) : .list(closed.items)
                if let anchor = closed.anchor { anchors[anchor] = Anchored(extent: closed.extent, value: value, text: nil) }
                if !stack.isEmpty {
                    stack[stack.count - 1].extent.size = saturating(stack[stack.count - 1].extent.size, closed.extent.size - 1)
                    stack[stack.count - 1].extent.height = max(stack[stack.count - 1].extent.height, closed.extent.height + 1)
                }
                try place(value, key: nil, line: line, column: column)
            default:
                continue
            }
        }
    }

    static let nulls: Set<String> = ["", "~", "null", "Null", "NULL"]

    /// Puts a complete node where it belongs: the document's root, an item of the open sequence,
    /// or the key or the value of the open mapping (the last duplicate key wins, in the place of
    /// the first). `key` is the node's text when it is a scalar.
    mutating func place(_ value: ManifestValue, key: String?, line: Int, column: Int) throws(YAMLReadError) {
        guard !stack.isEmpty else {
            root = value
            return
        }
        let top = stack.count - 1
        if stack[top].isMapping {
            guard let pending = stack[top].key else {
                guard let key else {
                    throw .syntax(YAMLSyntaxError(description: "a mapping key that is not a scalar at line \(line), column \(column)"))
                }
                stack[top].key = key
                return
            }
            if building { stack[top].map[pending] = value }
            stack[top].key = nil
        } else if building {
            stack[top].items.append(value)
        }
    }

    /// Accounts for a node of `extent` at the current depth: a collection start counts itself
    /// (its children are added as they come), a scalar or an alias counts all it stands for.
    mutating func add(_ extent: Extent, line: Int) throws(YAMLReadError) {
        let depth = stack.count
        if depth + extent.height >= YAMLLimits.maximumDepth {
            throw .limit(YAMLLimitError(reason: "YAML nesting deeper than \(YAMLLimits.maximumDepth) levels", line: line))
        }
        total = saturating(total, extent.size)
        if total > YAMLLimits.maximumNodes {
            throw .limit(YAMLLimitError(
                reason: "YAML document of more than \(YAMLLimits.maximumNodes) nodes with its aliases expanded", line: line))
        }
        if !stack.isEmpty {
            stack[stack.count - 1].extent.size = saturating(stack[stack.count - 1].extent.size, extent.size)
            stack[stack.count - 1].extent.height = max(stack[stack.count - 1].extent.height, extent.height + 1)
        }
    }

    /// Sums stop just past the budget, so a bomb's sizes never overflow.
    func saturating(_ a: Int, _ b: Int) -> Int { min(a + b, YAMLLimits.maximumNodes + 1) }

    static func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    /// libyaml's description of why it stopped: its problem, where, and what it was reading.
    static func problem(of parser: yaml_parser_t) -> YAMLSyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        let mark = parser.problem_mark
        var text = "\(problem) at line \(mark.line + 1), column \(mark.column + 1)"
        if let context = parser.context.map({ String(cString: $0) }) {
            text += ", \(context) at line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1)"
        }
        return YAMLSyntaxError(description: text)
    }
}
