/// One entry of a manifest's `Endpoints`: a private IP/port pair of the cartridge, optionally
/// exposed on a public port and mapped into the frontend.
public struct Endpoint: Sendable, Equatable {
    public struct Mapping: Sendable, Equatable {
        public var frontend: String
        public var backend: String
        public var options: ManifestMap?
    }

    /// Environment variable names, already prefixed `OPENSHIFT_<SHORT>_`.
    public var privateIPName: String?
    public var privatePortName: String?
    public var publicPortName: String?
    public var websocketPortName: String?
    public var privatePort: Int
    public var websocketPort: Int?
    public var protocols: [String]
    public var mappings: [Mapping]
    public var options: ManifestMap?
    public var description: String?

    /// Builds the endpoints of a (projected) manifest, collecting every entry's problem the way
    /// the original did, into one message.
    static func parse(_ value: ManifestValue?, shortName tag: String) -> Result<[Endpoint], EndpointProblem> {
        guard let value, value != .null else { return .success([]) }
        guard let entries = value.list else { return .failure(EndpointProblem("Couldn't parse endpoints: Endpoints is not a list")) }
        var endpoints: [Endpoint] = []
        var errors: [String] = []
        for entry in entries {
            switch parseEntry(entry, tag: tag) {
            case .success(let endpoint): endpoints.append(endpoint)
            case .failure(let problem): errors.append("Couldn't parse endpoint entry '\(render(entry))': \(problem.message)")
            }
        }
        return errors.isEmpty ? .success(endpoints) : .failure(EndpointProblem("Couldn't parse endpoints: " + errors.joined(separator: "\n")))
    }

    private static func parseEntry(_ entry: ManifestValue, tag: String) -> Result<Endpoint, EndpointProblem> {
        guard let map = entry.map else { return .failure(EndpointProblem("Non-Hash endpoint entry: \(render(entry))")) }
        func named(_ key: String) -> String? { map[key]?.string.map { "OPENSHIFT_\(tag)_\($0)" } }
        if map["Private-IP-Name"] != nil || map["Private-Port-Name"] != nil || map["Private-Port"] != nil {
            if (map["Private-IP-Name"]?.string ?? "").isEmpty { return .failure(EndpointProblem("Private-IP-Name is a required element")) }
            if (map["Private-Port-Name"]?.string ?? "").isEmpty {
                return .failure(EndpointProblem("Private-Port-Name is a required element"))
            }
            guard let port = map["Private-Port"], port != .null else { return .failure(EndpointProblem("Private-Port is a required element")) }
            guard let number = port.integer, (0...65535).contains(number) else {
                return .failure(EndpointProblem("Private-Port is not valid"))
            }
        }
        var websocketPort: Int?
        if let ws = map["WebSocket-Port"], ws != .null {
            guard let number = ws.integer, (0...65535).contains(number) else { return .failure(EndpointProblem("WebSocket-Port is not valid")) }
            websocketPort = number
        }
        let protocols: [String]
        if let given = map["Protocols"]?.stringList {
            protocols = given
        } else {
            protocols = map["Mappings"] != nil ? ["http"] : ["tcp"]
        }
        let slashed = protocols.allSatisfy { ["http", "https", "ws", "wss"].contains($0) }
        func path(_ text: String) -> String { slashed && !text.isEmpty && !text.hasPrefix("/") ? "/" + text : text }
        var mappings: [Mapping] = []
        if let list = map["Mappings"], list != .null {
            guard let items = list.list else { return .failure(EndpointProblem("Mappings is not valid")) }
            for item in items {
                guard let m = item.map else { return .failure(EndpointProblem("Mappings is not valid")) }
                mappings.append(Mapping(frontend: path(m["Frontend"]?.string ?? ""), backend: path(m["Backend"]?.string ?? ""),
                                        options: m["Options"]?.map))
            }
        }
        return .success(Endpoint(
            privateIPName: named("Private-IP-Name"), privatePortName: named("Private-Port-Name"),
            publicPortName: named("Public-Port-Name"), websocketPortName: named("WebSocket-Port-Name"),
            privatePort: map["Private-Port"]?.integer ?? 0, websocketPort: websocketPort, protocols: protocols,
            mappings: mappings, options: map["Options"]?.map, description: map["Description"]?.string))
    }
}

/// A short, single-line rendering of a value for error messages.
func render(_ value: ManifestValue) -> String {
    switch value {
    case .null: return "nil"
    case .scalar(let text, _): return printable(text)
    case .list(let items): return "[" + items.map(render).joined(separator: ", ") + "]"
    case .map(let map): return "{" + map.map { "\"\($0.key)\"=>\(render($0.value))" }.joined(separator: ", ") + "}"
    }
}

struct EndpointProblem: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
