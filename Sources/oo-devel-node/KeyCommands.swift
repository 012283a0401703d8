import Access
import Agent
import ArgumentParser
import Gears
import NodeCLI

/// Runs a change of a gear's keys with the node's services; failures exit with the kind's code.
func performKeys(_ options: GearOptions, _ body: (GearKeys) throws -> Void) throws {
    try runReportingFailures {
        let layout = try options.node.layout()
        let services = try NodeServices(layout: layout)
        do {
            try body(GearKeys(gears: services.gears, kerberosConfigFile: layout.path("KRB5_CONFIG_FILE")))
        } catch let error as AccessError {
            throw CommandFailure(error)
        }
    }
}

/// `--with-ssh-keys` as JSON: `[{"key": ..., "type": ..., "comment": ..., "login": ...}, ...]`.
func keyEntries(_ json: String, bodyField: String) throws -> [KeyEntry] {
    guard let value = try? AgentValue.parse(json: json), case .array(let items) = value else {
        throw ValidationError("--with-ssh-keys must be a JSON array of {\"key\", \"type\", \"comment\", \"login\"} objects")
    }
    return try items.enumerated().map { index, item in
        guard case .hash = item else { throw ValidationError("--with-ssh-keys entry \(index + 1) must be a JSON object") }
        func field(_ name: String) -> String? { item[name]?.string.flatMap { $0.isEmpty ? nil : $0 } }
        return KeyEntry(type: field("type"), content: field(bodyField) ?? field(bodyField == "key" ? "content" : "key"),
                        comment: field("comment"), login: field("login"))
    }
}

struct AuthorizedSSHKeyAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorized-ssh-key-add",
        abstract: "Authorize an SSH key (or, with type krb5-principal, a Kerberos principal) on a gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: [.customShort("k"), .customLong("with-ssh-key")], help: "The base64 key body, or the principal.") var key: String
    @Option(name: [.customShort("T"), .customLong("with-ssh-key-type")], help: "ssh-rsa, ssh-ed25519, ..., or krb5-principal.") var type: String
    @Option(name: [.customShort("m"), .customLong("with-ssh-key-comment")], help: "The key's name (the key id is OPENSHIFT-<uuid>-<comment>).") var comment: String?
    @Option(name: .customLong("with-ssh-key-login"), help: "The owner's login, given to the gear shell as OPENSHIFT_LOGIN.") var login: String?

    func run() throws {
        try performKeys(gear) { keys in
            try keys.add(gear.uuid, [KeyEntry(type: type, content: key, comment: comment, login: login)])
        }
    }
}

struct AuthorizedSSHKeyRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorized-ssh-key-remove",
        abstract: "Remove a gear's SSH key by its comment (or, without one, by key body), or a principal's owner.")
    @OptionGroup var gear: GearOptions
    @Option(name: [.customShort("k"), .customLong("with-ssh-key")], help: "The base64 key body, or the principal.") var key: String?
    @Option(name: [.customShort("T"), .customLong("with-ssh-key-type")], help: "The key's type (krb5-principal for a principal).") var type: String?
    @Option(name: [.customShort("m"), .customLong("with-ssh-comment")], help: "The key's name (the broker's option name).") var comment: String?

    func validate() throws {
        if key == nil && comment == nil { throw ValidationError("give --with-ssh-key or --with-ssh-comment") }
    }

    func run() throws {
        try performKeys(gear) { keys in try keys.remove(gear.uuid, [KeyEntry(type: type, content: key, comment: comment)]) }
    }
}

struct AuthorizedSSHKeyBatchAdd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorized-ssh-key-batch-add", abstract: "Authorize several keys and principals on a gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-ssh-keys"), help: #"JSON: [{"content": ..., "type": ..., "comment": ..., "login": ...}]"#) var json: String

    func run() throws {
        let entries = try keyEntries(json, bodyField: "content")
        try performKeys(gear) { keys in try keys.add(gear.uuid, entries) }
    }
}

struct AuthorizedSSHKeyBatchRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorized-ssh-key-batch-remove", abstract: "Remove several keys and principals from a gear.")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-ssh-keys"), help: #"JSON: [{"content": ..., "type": ..., "comment": ...}]"#) var json: String

    func run() throws {
        let entries = try keyEntries(json, bodyField: "content")
        try performKeys(gear) { keys in try keys.remove(gear.uuid, entries) }
    }
}

struct AuthorizedSSHKeysReplace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authorized-ssh-keys-replace", abstract: "Make a list the gear's whole set of keys and principals ([] removes all).")
    @OptionGroup var gear: GearOptions
    @Option(name: .customLong("with-ssh-keys"), help: #"JSON: [{"key": ..., "type": ..., "comment": ..., "login": ...}]"#) var json = "[]"

    func run() throws {
        let entries = try keyEntries(json, bodyField: "key")
        try performKeys(gear) { keys in try keys.replace(gear.uuid, entries) }
    }
}
