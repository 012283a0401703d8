/// A request for one agent action, as any transport delivers it (MCollective, the local socket).
public struct AgentRequest: Sendable {
    public var agent: String
    public var action: String
    /// The inputs: a hash with Symbol (Ruby clients) or String (JSON) keys.
    public var data: AgentValue
    /// Who asked, as the transport knows it (`uid=0`, `local`); a claim, not a credential.
    public var caller: String
    public var requestID: String
    public var sender: String

    public init(agent: String = "openshift", action: String, data: AgentValue = .hash([]), caller: String = "local",
                requestID: String = "", sender: String = "local") {
        self.agent = agent
        self.action = action
        self.data = data
        self.caller = caller
        self.requestID = requestID
        self.sender = sender
    }
}

/// The RPC reply: MCollective's statuscode/statusmsg/data triple.
public struct AgentReply: Sendable, Equatable {
    /// 0 OK, 1 aborted, 2 unknown action, 3 missing data, 4 invalid data, 5 unknown error.
    public var statuscode: Int
    public var statusmsg: String
    /// Symbol-keyed; every output the catalogue declares is present.
    public var data: AgentValue

    public init(statuscode: Int = 0, statusmsg: String = "OK", data: AgentValue = .hash([])) {
        self.statuscode = statuscode
        self.statusmsg = statusmsg
        self.data = data
    }

    public static func failure(_ code: Int, _ message: String) -> AgentReply {
        AgentReply(statuscode: code, statusmsg: message, data: .hash([]))
    }

    /// The reply as Ruby writes it: `{:statuscode, :statusmsg, :data}`.
    public var body: AgentValue {
        .symbols(["statuscode": .int(statuscode), "statusmsg": .string(statusmsg), "data": data])
    }
}

/// Something that answers requests for one agent name. The seam between transports and actions:
/// MCollective and the local socket hold these and never look inside.
public protocol AgentHandler: Sendable {
    var name: String { get }
    func handle(_ request: AgentRequest) async -> AgentReply
}
