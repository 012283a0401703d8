import Synchronization

/// A frontend: something that routes a gear's public host names (`fqdn`, aliases) to its
/// connections. The model hands each plugin the gear's whole new state and the state it served
/// before; the plugin makes what it serves match. `nil` removes the gear.
///
/// Two implementations: `ApacheFrontend` (RewriteMaps for a real Apache) and `InMemoryFrontend`
/// (for tests of code above the seam). Both pass `FrontendPluginContract`.
public protocol FrontendPlugin: Sendable {
    var name: String { get }
    func apply(_ frontend: GearFrontend?, previous: GearFrontend?, uuid: String) throws(FrontendError)
    /// What the plugin serves for a gear now, read back from its own storage.
    func served(_ uuid: String) throws(FrontendError) -> GearFrontend?
    /// Compares everything the plugin serves with `documents()` (read while the plugin's own
    /// writers are held off) plus, for the gears in `keep`, what it serves for them now; returns
    /// one line per difference and, with `repair`, makes the served state match.
    func reconcile(repair: Bool, keep: Set<String>, documents: () -> [GearFrontend]) throws(FrontendError) -> [String]
}

/// Routes kept in memory: what a router would serve, without one.
public final class InMemoryFrontend: FrontendPlugin {
    public let name = "memory"
    private let state = Mutex<[String: GearFrontend]>([:])

    public init() {}

    public func apply(_ frontend: GearFrontend?, previous: GearFrontend?, uuid: String) throws(FrontendError) {
        state.withLock { $0[uuid] = frontend }
    }

    public func served(_ uuid: String) throws(FrontendError) -> GearFrontend? { state.withLock { $0[uuid] } }

    public func reconcile(repair: Bool, keep: Set<String>, documents: () -> [GearFrontend]) throws(FrontendError) -> [String] {
        let expected = Dictionary(documents().map { ($0.uuid, $0) }, uniquingKeysWith: { first, _ in first })
        return state.withLock { served in
            var wanted = expected
            for uuid in keep { wanted[uuid] = served[uuid] }
            let drift = Set(served.keys).union(wanted.keys).sorted().filter { served[$0] != wanted[$0] }.map { "gear \($0) differs" }
            if repair { served = wanted }
            return drift
        }
    }

    /// The route a request for `host` and `path` takes: longest matching path prefix.
    public func route(host: String, path: String) -> (GearFrontend, Connection)? {
        state.withLock { gears in
            guard let gear = gears.values.first(where: { $0.fqdn == host || $0.aliases.contains(host) }) else { return nil }
            let match = gear.connections.filter { $0.path.isEmpty || path == $0.path || path.hasPrefix($0.path + "/") }
                .max { $0.path.count < $1.path.count }
            return match.map { (gear, $0) }
        }
    }
}

extension FrontendPlugin {
    /// A plugin that cannot read back what it serves reports no drift and repairs nothing.
    public func reconcile(repair: Bool, keep: Set<String>, documents: () -> [GearFrontend]) throws(FrontendError) -> [String] { [] }
}
