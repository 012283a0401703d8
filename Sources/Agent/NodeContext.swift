import Access
import Cartridges
import Containment
import Frontend
import Gears
import NodeConfig

/// What the actions work on: this node's configuration, repository, gears and routes.
public struct NodeContext: Sendable {
    public var layout: PathLayout
    public var repository: CartridgeRepository
    public var gears: GearManager
    public var frontend: FrontendManager?
    /// `resource_limits.conf` keys (node_profile, max_active_gears, quota_blocks, ...).
    public var resourceLimits: [String: String]
    /// The name this node answers to (MCollective identity); also `execute_parallel`'s key.
    public var identity: String

    public init(layout: PathLayout, repository: CartridgeRepository, gears: GearManager, frontend: FrontendManager?,
                resourceLimits: [String: String] = [:], identity: String) {
        self.layout = layout
        self.repository = repository
        self.gears = gears
        self.frontend = frontend
        self.resourceLimits = resourceLimits
        self.identity = identity
    }

    public var configuration: NodeConfiguration { layout.configuration }
}

extension NodeContext {
    /// The gears' authorized_keys and k5login files (KRB5_CONFIG_FILE says where k5login files go).
    public var keys: GearKeys { GearKeys(gears: gears, kerberosConfigFile: layout.path("KRB5_CONFIG_FILE")) }
}
