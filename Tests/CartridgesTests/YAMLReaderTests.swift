import Testing

@testable import Cartridges

/// The node's own composer over libyaml's events (it replaced Yams): what a manifest's YAML
/// reads as, and what it refuses, with where.
@Suite("YAML reader")
struct YAMLReaderTests {
    func read(_ yaml: String) throws -> ManifestValue { try ManifestValue.parse(yaml: yaml) }

    @Test("scalars keep their text and whether they were quoted; the core schema's plain nulls are null")
    func scalars() throws {
        let value = try read("""
            a: 1.10
            b: '1.10'
            c: "x\\ty"
            d: ~
            e: null
            f: NULL
            g:
            h: 'null'
            i: |
              two
              lines
            j: [x, "", '']

            """)
        let map = try #require(value.map)
        #expect(map["a"] == .scalar("1.10", quoted: false))
        #expect(map["b"] == .scalar("1.10", quoted: true))
        #expect(map["c"] == .scalar("x\ty", quoted: true))
        #expect(map["d"] == .null && map["e"] == .null && map["f"] == .null && map["g"] == .null)
        #expect(map["h"] == .scalar("null", quoted: true))
        #expect(map["i"] == .scalar("two\nlines\n", quoted: true))
        #expect(map["j"] == .list([.scalar("x", quoted: false), .scalar("", quoted: true), .scalar("", quoted: true)]))
        #expect(map.keys == ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"], "document order")
    }

    @Test("a duplicate key's last value wins, in the first one's place; aliases repeat what they name, also as keys")
    func keysAndAliases() throws {
        let map = try #require(try read("a: 1\nb: 2\na: 3\n").map)
        #expect(map.pairs.map(\.key) == ["a", "b"] && map["a"] == .scalar("3", quoted: false))

        let aliased = try #require(try read("k: &name shared\nv: &list [1, {x: y}]\n*name : *list\nw: *list\n").map)
        #expect(aliased["shared"] == aliased["v"])
        #expect(aliased["w"] == .list([.scalar("1", quoted: false), .map(try #require(try read("x: y").map))]))
    }

    @Test("empty text is an empty mapping; an explicit empty document is null; a top-level scalar is itself")
    func documents() throws {
        #expect(try read("") == .map(ManifestMap()))
        #expect(try read("# only a comment\n") == .map(ManifestMap()))
        #expect(try read("---\n") == .null)
        #expect(try read("just text") == .scalar("just text", quoted: false))
    }

    @Test("what is not one readable document is refused with what and where", arguments: [
        ("Name: [unclosed\n", "did not find expected ',' or ']' at line 2, column 1, while parsing a flow sequence at line 1, column 7"),
        ("a: *nowhere\n", "an undefined alias at line 1, column 4"),
        ("a: 1\n---\nb: 2\n", "a second YAML document at line 2, column 1: expected a single document"),
        ("? [a, b]\n: c\n", "a mapping key that is not a scalar at line 1, column 3"),
        ("a: &x [1, *x]\n", "an undefined alias at line 1, column 11"),
        ("a: b: c\n", "mapping values are not allowed in this context at line 1, column 5"),
    ])
    func refused(yaml: String, message: String) {
        let error = #expect(throws: YAMLSyntaxError.self) { try read(yaml) }
        #expect(error?.description == message)
    }

    @Test("a manifest's YAML error names the file and says what and where, on one line")
    func manifestError() {
        let error = #expect(throws: CartridgesError.self) {
            try ManifestDocument.parse(yaml: "Name: mock\nVersion: [1.0\n", path: "/src/mock/metadata/manifest.yml")
        }
        #expect(error?.description.hasPrefix("/src/mock/metadata/manifest.yml: invalid YAML") == true, "\(String(describing: error))")
        #expect(error?.description.contains("at line 3, column 1") == true, "\(String(describing: error))")
    }
}
