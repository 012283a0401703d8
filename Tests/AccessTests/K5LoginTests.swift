@testable import Access
import Testing

@Suite("k5login: the original's file format and owner semantics")
struct K5LoginTests {
    @Test("owners are '# id:' lines before each principal, records separated by one blank line, one final newline")
    func format() {
        var k5 = K5Login()
        #expect(k5.render() == "")
        k5.add("alice@EXAMPLE.COM", id: "id1")
        k5.add("alice@EXAMPLE.COM", id: "id2")
        k5.add("bob@EXAMPLE.COM", id: nil)
        #expect(k5.render() == "# id: id1\n# id: id2\nalice@EXAMPLE.COM\n\nbob@EXAMPLE.COM\n")
    }

    @Test("the parser: stripped lines, unanchored id lines, '' id is nil, unowned principals get nil, comment lines kept")
    func parsing() {
        let k5 = K5Login(text: """
              # id: a
            #id:b
            alice@R

            bob@R
            # comments that don't matter
            # id:
            carol@R
            x # id : c
            dave@R
            """)
        #expect(k5.principals == ["alice@R", "bob@R", "# comments that don't matter", "carol@R", "dave@R"])
        #expect(k5.owners(of: "alice@R") == ["a", "b"])
        #expect(k5.owners(of: "bob@R") == [nil])
        #expect(k5.owners(of: "# comments that don't matter") == [])
        #expect(k5.owners(of: "carol@R") == [nil])
        #expect(k5.owners(of: "dave@R") == ["c"])
    }

    @Test("parse and render round trip")
    func roundTrip() {
        var k5 = K5Login()
        k5.add("alice@R", id: "a")
        k5.add("bob@R", id: "b")
        k5.add("bob@R", id: "c")
        #expect(K5Login(text: k5.render()) == k5)
        #expect(K5Login(text: k5.render()).render() == k5.render())
    }

    @Test("add: a new principal gets its id (none for nil); an existing one gains the id")
    func add() {
        var k5 = K5Login()
        k5.add("alice@R", id: nil)
        #expect(k5.owners(of: "alice@R") == [])
        k5.add("alice@R", id: "a")
        k5.add("alice@R", id: "a")
        k5.add("alice@R", id: nil)
        #expect(k5.owners(of: "alice@R") == ["a"])
    }

    @Test("remove drops an owner, and the principal once no owner is left; the nil owner survives named removals")
    func remove() {
        var k5 = K5Login(text: "# id: a\n# id: b\nalice@R\n\nbob@R\n\n# id: c\ncarol@R\n")
        k5.remove("alice@R", id: "a")
        #expect(k5.owners(of: "alice@R") == ["b"])
        k5.remove("alice@R", id: "b")
        #expect(k5.owners(of: "alice@R") == nil)
        // The original's test_preserve_null_id: a principal written by hand is not removed by a named id.
        var preserved = K5Login(text: "# id: \n# id: a\nbob@R\n")
        preserved.remove("bob@R", id: "a")
        #expect(preserved.principals == ["bob@R"])
        k5.remove("bob@R", id: "x")
        #expect(k5.principals == ["bob@R", "carol@R"])
        k5.remove("carol@R", id: "c")
        k5.remove("bob@R", id: nil)
        #expect(k5.isEmpty && k5.render() == "")
    }

    @Test("replace clears everything, comment lines included; blank ids add no owner")
    func replace() {
        var k5 = K5Login(text: "# just a comment\n\n# id: a\nalice@R\n")
        k5.replace([("bob@R", "b"), ("bob@R", "c"), ("carol@R", " "), ("dave@R", nil)])
        #expect(k5.render() == "# id: b\n# id: c\nbob@R\n\ncarol@R\n\ndave@R\n")
        k5.replace([])
        #expect(k5.isEmpty)
    }
}

@Suite("the Kerberos configuration: k5login_directory in [libdefaults] only, parsed within limits")
struct KerberosConfigurationTests {
    @Test("k5login_directory counts in [libdefaults], after subsections and comments")
    func libdefaults() throws {
        let text = """
            # a comment
            [realms]
                GEARS.TEST = {
                    kdc = 127.0.0.1:88
                    k5login_directory = /wrong
                }
            [libdefaults]
                default_realm = GEARS.TEST
                ; k5login_directory = /commented
                k5login_directory = /etc/k5login.d/
                k5login_directory = /second
            """
        #expect(try KerberosConfiguration.parse(text, path: "t").k5loginDirectory == "/etc/k5login.d")
    }

    @Test("the same key outside [libdefaults], or at the top without a section, is ignored (as MIT does)")
    func elsewhere() throws {
        #expect(try KerberosConfiguration.parse("k5login_directory = /random/location\n", path: "t").k5loginDirectory == nil)
        #expect(try KerberosConfiguration.parse("[appdefaults]\nk5login_directory = /x\n", path: "t").k5loginDirectory == nil)
        #expect(try KerberosConfiguration.parse("[libdefaults]\n x = {\n k5login_directory = /x\n }\n", path: "t").k5loginDirectory == nil)
    }

    @Test("a relative directory or one with .. is refused with the file and line")
    func refused() {
        for value in ["relative/dir", "/a/../etc"] {
            do {
                _ = try KerberosConfiguration.parse("[libdefaults]\nk5login_directory = \(value)\n", path: "/etc/krb5.conf")
                Issue.record("\(value) accepted")
            } catch {
                #expect(error.description.hasPrefix("Kerberos configuration /etc/krb5.conf line 2:"))
            }
        }
        #expect(throws: AccessError.self) {
            try KerberosConfiguration.parse(String(repeating: "a = {\n", count: 20), path: "t")
        }
    }

    @Test("a missing file means the homes")
    func missing() throws {
        #expect(try KerberosConfiguration.load("/nonexistent/krb5.conf").k5loginDirectory == nil)
    }
}
