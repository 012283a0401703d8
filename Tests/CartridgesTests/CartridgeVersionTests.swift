import Testing

@testable import Cartridges

@Suite("cartridge versions")
struct CartridgeVersionTests {
    @Test("valid versions are digits separated by dots, kept as written", arguments: ["0", "5.3", "0.0.27", "1.10", "10.0.1", "007"])
    func valid(text: String) throws {
        let version = try #require(CartridgeVersion(text))
        #expect(version.text == text)
    }

    @Test("anything else is refused", arguments: [
        "", "1.", ".1", "1..2", "5.3-beta", "1.0rc", "_", "../1", "1/2", "1.0\n", "1 .0", "v1", "1.\u{1}",
        String(repeating: "1", count: 65), String(repeating: "9", count: 30) + "a",
    ])
    func invalid(text: String) {
        #expect(CartridgeVersion(text) == nil)
    }

    @Test("ordering is numeric segment by segment", arguments: [
        ("1.9", "1.10"), ("0.0.9", "0.0.10"), ("2", "10"), ("1.0", "1.0.1"), ("5.3", "5.4"),
        ("99999999999999999999999999999", "100000000000000000000000000000"),
    ])
    func ordering(smaller: String, larger: String) throws {
        let a = try #require(CartridgeVersion(smaller))
        let b = try #require(CartridgeVersion(larger))
        #expect(a < b)
        #expect(!(b < a))
    }

    @Test("1.10 is not 1.1, and 1 and 1.0 stay distinct keys in a stable order")
    func literalIdentity() throws {
        let v110 = try #require(CartridgeVersion("1.10"))
        let v11 = try #require(CartridgeVersion("1.1"))
        #expect(v110 != v11)
        #expect(v11 < v110)
        let one = try #require(CartridgeVersion("1"))
        let oneZero = try #require(CartridgeVersion("1.0"))
        #expect(one != oneZero)
        #expect(one < oneZero)
        #expect([oneZero, one].sorted() == [one, oneZero])
    }
}
