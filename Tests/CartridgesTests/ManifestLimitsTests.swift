import NodeTestSupport
import Testing

@testable import Cartridges

#if canImport(Glibc)
import Glibc
#endif

/// The peak resident set of this process, in KB (`VmHWM`).
func peakResidentKB() -> Int {
    let status = TestFiles.read("/proc/self/status") ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

@Suite("manifest limits")
struct ManifestLimitsTests {
    @Test("an alias bomb is refused before it expands, with the line where the budget ran out", .timeLimit(.minutes(3)))
    func aliasBomb() throws {
        #expect(HostileYAML.aliasBomb.utf8.count < 500)
        let before = peakResidentKB()
        let error = #expect(throws: CartridgesError.self) { try parse(HostileYAML.aliasBomb) }
        #expect(error == .manifestOverLimit(path: "/src/crtest/metadata/manifest.yml",
                                            reason: "YAML document of more than 100000 nodes with its aliases expanded at line 6"))
        #expect(error?.description
            == "/src/crtest/metadata/manifest.yml: YAML document of more than 100000 nodes with its aliases expanded at line 6")
        #expect(peakResidentKB() - before < 200 * 1024, "the bomb must not be expanded in memory")
    }

    @Test("100,000 nested brackets are refused at the 65th level without recursing", .timeLimit(.minutes(3)))
    func deepFlow() throws {
        let error = #expect(throws: CartridgesError.self) { try parse(HostileYAML.deepFlow) }
        #expect(error?.description == "/src/crtest/metadata/manifest.yml: YAML nesting deeper than 64 levels at line 1")
    }

    @Test("deep block mappings are refused at the line of the first node too deep")
    func deepBlock() throws {
        let text = (0..<100).map { String(repeating: "  ", count: $0) + "k\($0):" }.joined(separator: "\n") + " x\n"
        #expect(throws: YAMLLimitError(reason: "YAML nesting deeper than 64 levels", line: 64)) { try YAMLLimits.check(text) }
    }

    @Test("nesting limit: exactly what the converter accepted before, now checked before composing", arguments: [
        (String(repeating: "[", count: 63) + "x" + String(repeating: "]", count: 63), true),
        (String(repeating: "[", count: 64) + String(repeating: "]", count: 64), true),
        (String(repeating: "[", count: 64) + "x" + String(repeating: "]", count: 64), false),
        (String(repeating: "[", count: 65) + String(repeating: "]", count: 65), false),
    ])
    func nestingEdge(yaml: String, accepted: Bool) {
        #expect(((try? YAMLLimits.check(yaml)) != nil) == accepted)
        #expect(((try? ManifestValue.parse(yaml: yaml)) != nil) == accepted)
    }

    @Test("an alias counts as deep as what it repeats")
    func aliasDepth() {
        let deep = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        let text = "a: &a \(deep)\nb: [[[[[*a]]]]]\n"
        #expect(throws: YAMLLimitError(reason: "YAML nesting deeper than 64 levels", line: 2)) { try YAMLLimits.check(text) }
        #expect(throws: Never.self) { try YAMLLimits.check("a: &a \(deep)\nb: [[*a]]\n") }
    }

    @Test("the node budget counts every node once and refuses the first one over it")
    func nodeBudget() {
        let list = { (count: Int) in "[" + Array(repeating: "x", count: count).joined(separator: ",") + "]" }
        #expect(throws: Never.self) { try YAMLLimits.check(list(YAMLLimits.maximumNodes - 1)) }
        #expect(throws: YAMLLimitError(reason: "YAML document of more than 100000 nodes with its aliases expanded", line: 1)) {
            try YAMLLimits.check(list(YAMLLimits.maximumNodes))
        }
    }

    @Test("text larger than 1 MiB is refused before it is parsed")
    func size() {
        let text = "a: \"" + String(repeating: "x", count: YAMLLimits.maximumBytes) + "\"\n"
        let error = #expect(throws: CartridgesError.self) { try parse(text) }
        #expect(error?.description == "/src/crtest/metadata/manifest.yml: YAML text of \(text.utf8.count) bytes is larger than 1048576 bytes")
    }

    @Test("a manifest with a few harmless anchors and aliases parses as if they were written out")
    func harmlessAliases() throws {
        let withAliases = validManifest + """
            Provides: &provides [crtest-0.1, crtest]
            Group-Overrides:
              - components: *provides
            Additional-Control-Actions: &actions [threaddump]
            Version-Overrides:
              '0.1':
                Additional-Control-Actions: *actions

            """
        let written = validManifest + """
            Provides: [crtest-0.1, crtest]
            Group-Overrides:
              - components: [crtest-0.1, crtest]
            Additional-Control-Actions: [threaddump]
            Version-Overrides:
              '0.1':
                Additional-Control-Actions: [threaddump]

            """
        #expect(try ManifestValue.parse(yaml: withAliases) == ManifestValue.parse(yaml: written))
        let document = try parse(withAliases)
        #expect(group(document.primary) == ["crtest-0.1", "crtest"])
    }

    @Test("a hostile manifest in the base path fails its own rescan item; the others install", .timeLimit(.minutes(3)))
    func rescan() throws {
        let node = ScratchNode("limits-test")
        defer { node.destroy() }
        try TestFiles.write(node.basePath + "/good/metadata/manifest.yml", Crtest.m1)
        try TestFiles.write(node.basePath + "/bomb/metadata/manifest.yml", HostileYAML.aliasBomb)
        try TestFiles.write(node.basePath + "/deep/metadata/manifest.yml", HostileYAML.deepFlow)
        let repository = node.repository()
        let report = repository.rescan()
        #expect(report.installed == 1 && report.failed == 2)
        let failures = Dictionary(report.items.compactMap { item -> (String, String)? in
            if case .failed(let reason) = item.outcome { return (baseName(item.source), reason) }
            return nil
        }, uniquingKeysWith: { $1 })
        #expect(failures["bomb"] == node.basePath
            + "/bomb/metadata/manifest.yml: YAML document of more than 100000 nodes with its aliases expanded at line 6")
        #expect(failures["deep"] == node.basePath + "/deep/metadata/manifest.yml: YAML nesting deeper than 64 levels at line 1")
        #expect(repository.snapshot.listing == "(redhat, crtest, 0.1, 0.0.1)\n")
        // A restart sees the same: the daemon starts whatever the base path holds.
        let again = node.repository().rescan()
        #expect(again.unchanged == 1 && again.failed == 2)
    }
}
