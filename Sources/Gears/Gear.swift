import Containment

/// A gear as the node records it: identity plus the broker's names for it.
public struct Gear: Sendable, Equatable {
    public var identity: GearIdentity
    public var appUUID: String
    public var appName: String
    public var gearName: String
    public var namespace: String

    public var uuid: String { identity.uuid }
    public var home: String { identity.home }
}

/// What the broker sends to create a gear (`app-create`).
public struct GearCreateRequest: Sendable {
    public var uuid: String
    public var uid: UInt32?
    public var appUUID: String
    public var appName: String
    public var gearName: String
    public var namespace: String

    public init(uuid: String, uid: UInt32? = nil, appUUID: String? = nil, appName: String = "app", gearName: String? = nil,
                namespace: String = "ns") {
        self.uuid = uuid
        self.uid = uid
        self.appUUID = appUUID ?? uuid
        self.appName = appName
        self.gearName = gearName ?? uuid
        self.namespace = namespace
    }
}

/// The status of one gear, for `oo-admin-ctl-gears` and the agent.
public struct GearStatus: Sendable, Codable, Equatable {
    public var uuid: String
    public var uid: UInt32
    public var state: GearState
    public var stopLock: Bool
    public var cartridges: [String]
    public var mcsLabel: String?
    public var selinux: String

    enum CodingKeys: String, CodingKey {
        case uuid, uid, state, cartridges, selinux
        case stopLock = "stop_lock"
        case mcsLabel = "mcs_label"
    }
}
