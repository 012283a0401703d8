@testable import Access
import Testing

@Suite("authorized_keys: the original's line format and semantics")
struct AuthorizedKeysTests {
    static let shell = "/usr/bin/oo-trap-user"
    func file(_ text: String = "") -> AuthorizedKeys { AuthorizedKeys(uuid: "5504", shell: Self.shell, text: text) }

    @Test("a key's line is the original's, byte for byte, with and without a login")
    func lineFormat() {
        let keys = file()
        #expect(keys.line(for: AuthorizedKey(type: "ssh-rsa", body: "AAAAB3Nza", comment: "52ab-default"))
                == #"command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa AAAAB3Nza OPENSHIFT-5504-52ab-default"#)
        #expect(keys.line(for: AuthorizedKey(type: "ssh-ed25519", body: "AAAAC3Nz", comment: "domain-k", login: "alice@example.com"))
                == #"command="OPENSHIFT_LOGIN=alice@example.com /usr/bin/oo-trap-user",no-X11-forwarding ssh-ed25519 AAAAC3Nz OPENSHIFT-5504-domain-k"#)
        // The original's test: a nil comment gives an id ending in '-'.
        #expect(AuthorizedKeys(uuid: "5504", shell: "/bin/bash").line(for: AuthorizedKey(type: "ssh-rsa", body: "testkey", comment: ""))
                == #"command="/bin/bash",no-X11-forwarding ssh-rsa testkey OPENSHIFT-5504-"#)
    }

    @Test("the file is the lines joined by newlines plus one; an empty set is a single newline")
    func rendering() {
        var keys = file()
        #expect(keys.render() == "\n")
        keys.add(AuthorizedKey(type: "ssh-rsa", body: "AAAA", comment: "a"))
        keys.add(AuthorizedKey(type: "ssh-rsa", body: "BBBB", comment: "b"))
        #expect(keys.render() == """
            command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa AAAA OPENSHIFT-5504-a
            command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa BBBB OPENSHIFT-5504-b

            """)
        keys.replace([])
        #expect(keys.render() == "\n")
    }

    @Test("parse and render round trip: ids are last fields, blank lines dropped, a repeated id keeps its first place")
    func roundTrip() {
        let text = """
            command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa AAAA OPENSHIFT-5504-a

            ssh-rsa CCCC
            command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa BBBB OPENSHIFT-5504-b
            command="/usr/bin/oo-trap-user",no-X11-forwarding ssh-rsa DDDD OPENSHIFT-5504-a

            """
        let keys = file(text)
        #expect(keys.ids == ["OPENSHIFT-5504-a", "CCCC", "OPENSHIFT-5504-b"])
        #expect(keys.lines[0].contains("DDDD"))
        #expect(file(keys.render()) == keys)
        let clean = file(keys.render())
        #expect(clean.render() == keys.render())
    }

    @Test("add replaces the line with the same id where it stands, else appends")
    func addSemantics() {
        var keys = file()
        keys.add(AuthorizedKey(type: "ssh-rsa", body: "AAAA", comment: "a"))
        keys.add(AuthorizedKey(type: "ssh-rsa", body: "BBBB", comment: "b"))
        keys.add(AuthorizedKey(type: "ssh-ed25519", body: "CCCC", comment: "a", login: "bob"))
        #expect(keys.ids == ["OPENSHIFT-5504-a", "OPENSHIFT-5504-b"])
        #expect(keys.lines[0] == #"command="OPENSHIFT_LOGIN=bob /usr/bin/oo-trap-user",no-X11-forwarding ssh-ed25519 CCCC OPENSHIFT-5504-a"#)
    }

    @Test("remove with a comment drops lines ending in the id; without, lines holding the key body as a field")
    func removeSemantics() {
        var keys = file()
        for (body, comment) in [("AAAA", "a"), ("BBBB", "b"), ("AAAA", "c"), ("AAAAX", "d")] {
            keys.add(AuthorizedKey(type: "ssh-rsa", body: body, comment: comment))
        }
        keys.remove(body: "ignored", comment: "b")
        #expect(keys.ids == ["OPENSHIFT-5504-a", "OPENSHIFT-5504-c", "OPENSHIFT-5504-d"])
        keys.remove(body: "AAAA", comment: nil)
        #expect(keys.ids == ["OPENSHIFT-5504-d"], "AAAAX is not the body AAAA")
        keys.remove(body: nil, comment: "zzz")
        #expect(keys.ids == ["OPENSHIFT-5504-d"])
        // "ends with": comment "d" of another gear's id is not this gear's.
        var other = file("ssh-rsa EEEE OPENSHIFT-9999-d\n")
        other.remove(body: nil, comment: "d")
        #expect(other.ids == ["OPENSHIFT-9999-d"])
    }

    @Test("replace makes the list the whole set, in its order")
    func replaceSemantics() {
        var keys = file("ssh-rsa OLD OPENSHIFT-5504-old\n")
        keys.replace([AuthorizedKey(type: "ssh-rsa", body: "BBBB", comment: "b"), AuthorizedKey(type: "ssh-rsa", body: "AAAA", comment: "a")])
        #expect(keys.ids == ["OPENSHIFT-5504-b", "OPENSHIFT-5504-a"])
    }
}

@Suite("key validation: nothing a broker sends can add an option, a field or a line")
struct KeyRulesTests {
    @Test("accepted key types", arguments: [
        "ssh-rsa", "ssh-dss", "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-rsa-cert-v01@openssh.com", "ssh-dss-cert-v00@openssh.com", "ssh-ed25519-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com", "sk-ssh-ed25519-cert-v01@openssh.com",
    ])
    func acceptedTypes(_ type: String) throws {
        try KeyRules.checkType(type)
    }

    @Test("refused key types", arguments: [
        "", "rsa", "ssh-foo", "SSH-RSA", "ssh-rsa ", "ssh-rsa\n", "x ssh-rsa", "ecdsa-sha2-", "ecdsa-sha2-NIST",
        "ssh-rsa,command=\"sh\"", "sk-ssh-ed25519", "krb5-principal", "ssh-rsa-cert-v02@openssh.com",
    ])
    func refusedTypes(_ type: String) {
        #expect(throws: AccessError.self) { try KeyRules.checkType(type) }
        do { try KeyRules.checkType(type) } catch { #expect(error.description.hasPrefix("invalid ssh key type")) }
    }

    @Test("refused key bodies", arguments: ["", "AAAA BBBB", "AAAA\nssh-rsa BBBB evil", "AAAA\n", "AAA=B", "AAAA===", "====", "AA\"AA", "AAAA\r"])
    func refusedBodies(_ body: String) {
        #expect(throws: AccessError.self) { try KeyRules.checkBody(body) }
        do { try KeyRules.checkBody(body) } catch { #expect(error.description.hasPrefix("invalid ssh key '")) }
    }

    @Test("accepted bodies are base64")
    func acceptedBodies() throws {
        for body in ["AAAAB3NzaC1yc2EAAAADAQABAAABAQC7", "AAAA+/==", "AAAA="] { try KeyRules.checkBody(body) }
        #expect(throws: AccessError.self) { try KeyRules.checkBody(String(repeating: "A", count: KeyRules.bodyLimit + 1)) }
    }

    @Test("refused comments and logins", arguments: ["", "a b", "a\nb", "a\"b", "a,b", "a'b", "a$b", "a=b", "ä", "a/b", "a\\b"])
    func refusedCommentsAndLogins(_ value: String) {
        do { try KeyRules.checkComment(value); Issue.record("comment \(value) accepted") } catch {
            #expect(error.description.hasPrefix("invalid ssh key comment"))
        }
        do { try KeyRules.checkLogin(value); Issue.record("login \(value) accepted") } catch {
            #expect(error.description.hasPrefix("invalid ssh key login"))
        }
    }

    @Test("comments and logins: letters, digits, _ . - @ +, 1 to 256")
    func acceptedCommentsAndLogins() throws {
        for value in ["52ab0c-default", "domain-k.e_y", "application-x", "alice+tag@example.com"] {
            try KeyRules.checkComment(value)
            try KeyRules.checkLogin(value)
        }
        try KeyRules.checkComment(String(repeating: "a", count: 256))
        #expect(throws: AccessError.self) { try KeyRules.checkComment(String(repeating: "a", count: 257)) }
        #expect(throws: AccessError.self) { try KeyRules.checkLogin(String(repeating: "a", count: 257)) }
    }

    @Test("accepted principals", arguments: ["alice@GEARS.TEST", "host/node1.example.com@EXAMPLE.COM", "HOST$@AD.EXAMPLE", "a.b-c_d@R"])
    func acceptedPrincipals(_ principal: String) throws {
        try KeyRules.checkPrincipal(principal)
    }

    @Test("refused principals", arguments: [
        "", "alice", "alice@", "@REALM", "alice@R@S", "# id: x@R", "#alice@R", "alice\n@R", "alice@R\nbob@R", "al ice@R",
        "a/b/c@R", "/b@R", "a/@R", "a\\b@R", "alice@R EALM", "alice@R\u{7f}", "älice@R",
    ])
    func refusedPrincipals(_ principal: String) {
        do { try KeyRules.checkPrincipal(principal); Issue.record("principal \(principal) accepted") } catch {
            #expect(error.description.hasPrefix("invalid Kerberos principal"))
        }
        #expect(throws: AccessError.self) { try KeyRules.checkPrincipal(String(repeating: "a", count: 250) + "@REALM.X") }
    }

    @Test("an entry needs its type and key; the error names the field")
    func entries() throws {
        #expect(throws: AccessError.self) { try KeyEntry(type: nil, content: "AAAA", comment: "a").sshKey() }
        #expect(throws: AccessError.self) { try KeyEntry(type: "ssh-rsa", content: nil, comment: "a").sshKey() }
        #expect(throws: AccessError.self) { try KeyEntry(type: "ssh-rsa", content: "AAAA", comment: "a", login: "x y").sshKey() }
        #expect(try KeyEntry(type: "ssh-rsa", content: "AAAA", comment: nil).sshKey().comment == "")
        let principal = try KeyEntry(type: "krb5-principal", content: "a@R", comment: "k").principal()
        #expect(principal.principal == "a@R" && principal.id == "k")
    }
}
