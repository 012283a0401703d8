import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif

/// One input of an action, as an MCollective DDL declares it.
public struct InputSpec: Sendable {
    public enum Kind: Sendable, Equatable {
        /// A String matching `validation` (a Ruby regex source, or a named validator such as
        /// `shellsafe`), at most `maxLength` characters (0: unlimited).
        case string(validation: String, maxLength: Int)
        case list([String])
        case integer, number, float, boolean
        /// Not validated: the broker sends Hashes and Arrays here (`cartridge_do.args`, `get_facts.facts`).
        case any
    }

    public var name: String
    public var prompt: String
    public var description: String
    public var kind: Kind
    public var optional: Bool
    /// Extra checks the original agent applied on top of the DDL (`shellsafe` for cartridge_do).
    public var alsoShellsafe: Bool

    public init(_ name: String, _ kind: Kind, optional: Bool = false, prompt: String? = nil, description: String? = nil,
                alsoShellsafe: Bool = false) {
        self.name = name
        self.kind = kind
        self.optional = optional
        self.prompt = prompt ?? name
        self.description = description ?? name
        self.alsoShellsafe = alsoShellsafe
    }
}

/// One output key of an action. Every declared output is present in a reply, nil unless set.
public struct OutputSpec: Sendable {
    public var name: String
    public var description: String
    public var displayAs: String

    public init(_ name: String, _ description: String, displayAs: String) {
        self.name = name
        self.description = description
        self.displayAs = displayAs
    }
}

/// One action of an agent: its inputs and outputs. The catalogue of these is the single source
/// for request validation and for the DDL file `mco` clients load.
public struct ActionSpec: Sendable {
    public var name: String
    public var description: String
    public var inputs: [InputSpec]
    public var outputs: [OutputSpec]

    public init(_ name: String, _ description: String, inputs: [InputSpec] = [], outputs: [OutputSpec] = []) {
        self.name = name
        self.description = description
        self.inputs = inputs
        self.outputs = outputs
    }
}

/// An agent's metadata and actions.
public struct AgentCatalogue: Sendable {
    public var name: String
    public var description: String
    public var author: String
    public var license: String
    public var version: String
    public var url: String
    /// Seconds; MCollective clients wait this long (plus discovery) for replies.
    public var timeout: Int
    public var actions: [ActionSpec]

    public func action(_ name: String) -> ActionSpec? { actions.first { $0.name == name } }
}
