import CYaml

/// The bounds within which the node reads any YAML (manifests, `managed_files.yml`), checked
/// before a tree is built.
///
/// A manifest comes from a package, a broker or a gear; none of them may make the node run out of
/// memory or stack. Yams composes recursively (100,000 nested `[` overflow the stack) and a tree
/// with aliases expands when it is converted (a 463-byte "billion laughs" grows to gigabytes), so
/// `check` walks libyaml's event stream first: no tree, no recursion, constant work per event,
/// and it stops at the first event past a limit. Real manifests are a few KB, a few hundred
/// nodes and a few levels deep.
public enum YAMLLimits {
    /// The largest text accepted, in bytes.
    public static let maximumBytes = 1 << 20
    /// Collections nested in one another: a node with this many enclosing collections is refused.
    public static let maximumDepth = 64
    /// Nodes (scalars, collections, and mapping keys) of the document with every alias expanded.
    public static let maximumNodes = 100_000

    /// Throws the first limit `yaml` exceeds. Text libyaml cannot parse is left to the composer,
    /// which reports it with its own message.
    public static func check(_ yaml: String) throws(YAMLLimitError) {
        let size = yaml.utf8.count
        guard size <= maximumBytes else {
            throw YAMLLimitError(reason: "YAML text of \(size) bytes is larger than \(maximumBytes) bytes", line: nil)
        }
        var text = yaml
        let result: YAMLLimitError? = text.withUTF8 { buffer in
            var walk = EventWalk()
            return walk.run(buffer)
        }
        if let result { throw result }
    }
}

/// A YAML document beyond one of `YAMLLimits`; `line` is where the walk stopped (1-based).
public struct YAMLLimitError: Error, CustomStringConvertible, Equatable {
    public var reason: String
    public var line: Int?

    public var description: String { line.map { "\(reason) at line \($0)" } ?? reason }
}

/// One pass over the events, tracking for each open collection its expanded size and height,
/// and for each anchor the size and height of the node it names (what an alias repeats).
private struct EventWalk {
    struct Extent {
        /// Nodes, with aliases expanded; saturates just past the budget.
        var size = 0
        /// Levels of collections below the node (0 for a scalar or an empty collection).
        var height = 0
    }

    struct Open {
        var anchor: String?
        var extent = Extent(size: 1)
    }

    var stack: [Open] = []
    var anchors: [String: Extent] = [:]
    var total = 0

    mutating func run(_ buffer: UnsafeBufferPointer<UInt8>) -> YAMLLimitError? {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return nil }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, base, buffer.count)
        var event = yaml_event_t()
        while true {
            guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
            defer { yaml_event_delete(&event) }
            let line = Int(event.start_mark.line) + 1
            switch event.type {
            case YAML_STREAM_END_EVENT:
                return nil
            case YAML_SCALAR_EVENT:
                if let error = add(Extent(size: 1), line: line) { return error }
                if let anchor = name(event.data.scalar.anchor) { anchors[anchor] = Extent(size: 1) }
            case YAML_ALIAS_EVENT:
                // An unknown alias (or one to a collection still open) is the composer's error.
                let repeated = name(event.data.alias.anchor).flatMap { anchors[$0] } ?? Extent(size: 1)
                if let error = add(repeated, line: line) { return error }
            case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                if let error = add(Extent(size: 1), line: line) { return error }
                let anchor = event.type == YAML_SEQUENCE_START_EVENT
                    ? name(event.data.sequence_start.anchor) : name(event.data.mapping_start.anchor)
                stack.append(Open(anchor: anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                guard let closed = stack.popLast() else { return nil }
                if let anchor = closed.anchor { anchors[anchor] = closed.extent }
                if !stack.isEmpty {
                    stack[stack.count - 1].extent.size = saturating(stack[stack.count - 1].extent.size, closed.extent.size - 1)
                    stack[stack.count - 1].extent.height = max(stack[stack.count - 1].extent.height, closed.extent.height + 1)
                }
            default:
                continue
            }
        }
    }

    /// Accounts for a node of `extent` at the current depth: a collection start counts itself
    /// (its children are added as they come), a scalar or an alias counts all it stands for.
    mutating func add(_ extent: Extent, line: Int) -> YAMLLimitError? {
        let depth = stack.count
        if depth + extent.height >= YAMLLimits.maximumDepth {
            return YAMLLimitError(reason: "YAML nesting deeper than \(YAMLLimits.maximumDepth) levels", line: line)
        }
        total = saturating(total, extent.size)
        if total > YAMLLimits.maximumNodes {
            return YAMLLimitError(
                reason: "YAML document of more than \(YAMLLimits.maximumNodes) nodes with its aliases expanded", line: line)
        }
        if !stack.isEmpty {
            stack[stack.count - 1].extent.size = saturating(stack[stack.count - 1].extent.size, extent.size)
            stack[stack.count - 1].extent.height = max(stack[stack.count - 1].extent.height, extent.height + 1)
        }
        return nil
    }

    /// Sums stop just past the budget, so a bomb's sizes never overflow.
    func saturating(_ a: Int, _ b: Int) -> Int { min(a + b, YAMLLimits.maximumNodes + 1) }

    func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}
