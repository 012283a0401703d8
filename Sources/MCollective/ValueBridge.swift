import Agent

/// Converts between Ruby Marshal values and the transport-neutral values of the agent.
extension AgentValue {
    init(ruby value: RubyValue) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .int(let n): self = .int(n)
        case .float(let d): self = .float(d)
        case .string(let bytes, _): self = .string(String(decoding: bytes, as: UTF8.self))
        case .symbol(let name): self = .symbol(name)
        case .array(let items): self = .array(items.map(AgentValue.init(ruby:)))
        case .hash(let table): self = .hash(table.pairs.map { Pair(AgentValue(ruby: $0.key), AgentValue(ruby: $0.value)) })
        case let .regexp(source, _): self = .string("/" + source + "/")
        }
    }

    var ruby: RubyValue {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .int(let n): return .int(n)
        case .float(let d): return .float(d)
        case .string(let s): return .str(s)
        case .symbol(let s): return .symbol(s)
        case .array(let items): return .array(items.map(\.ruby))
        case .hash(let pairs): return .hash(RubyHash(pairs.map { (key: $0.key.ruby, value: $0.value.ruby) }))
        }
    }
}
