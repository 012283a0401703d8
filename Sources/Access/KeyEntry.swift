/// One entry of the broker's key lists (`--with-ssh-keys` hashes, or the single-key options):
/// an SSH public key, or with type `krb5-principal` a Kerberos principal. Fields are as the
/// broker sent them; `validated()` turns an entry into what the node will write, or refuses it.
///
/// The node checks every field itself (the original trusted the broker verbatim): a value that
/// could add an option, a field or a line to authorized_keys or .k5login is refused.
public struct KeyEntry: Sendable, Equatable {
    /// `ssh-rsa`, `ssh-ed25519`, ..., or `krb5-principal`.
    public var type: String?
    /// The key body (base64), or the principal.
    public var content: String?
    /// The key's name; the last part of the key id `OPENSHIFT-<uuid>-<comment>`, or a principal's owner id.
    public var comment: String?
    /// The owning user's login, exported to the gear shell as `OPENSHIFT_LOGIN`.
    public var login: String?

    public static let principalType = "krb5-principal"

    public init(type: String?, content: String?, comment: String?, login: String? = nil) {
        self.type = type
        self.content = content
        self.comment = comment
        self.login = login
    }

    public var isPrincipal: Bool { type == Self.principalType }

    /// The SSH key this entry adds. Type and key body are required.
    public func sshKey() throws(AccessError) -> AuthorizedKey {
        guard let type else { throw .invalidArgument(field: "ssh key type", value: "", reason: "missing") }
        guard let content else { throw .invalidArgument(field: "ssh key", value: "", reason: "missing") }
        try KeyRules.checkType(type)
        try KeyRules.checkBody(content)
        if let comment { try KeyRules.checkComment(comment) }
        if let login { try KeyRules.checkLogin(login) }
        return AuthorizedKey(type: type, body: content, comment: comment ?? "", login: login)
    }

    /// The principal and owner id this entry names (type `krb5-principal`).
    public func principal() throws(AccessError) -> (principal: String, id: String?) {
        guard let content else { throw .invalidArgument(field: "Kerberos principal", value: "", reason: "missing") }
        try KeyRules.checkPrincipal(content)
        if let comment { try KeyRules.checkComment(comment) }
        return (content, comment)
    }
}
