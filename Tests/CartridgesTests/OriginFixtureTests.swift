import NodeTestSupport
import Testing

@testable import Cartridges

/// The manifests of the original system's cartridges (our fixtures keep their structure; see
/// Fixtures/origin-SOURCES.md) load and list the tuples the original would print.
@Suite("original cartridges")
struct OriginFixtureTests {
    static let fixtures = String(#filePath[..<#filePath.lastIndex(of: "/")!]) + "/Fixtures/origin"

    @Test("a rescan of the original cartridges installs all and lists the original's tuples")
    func listing() throws {
        let node = ScratchNode("origin-test")
        defer { node.destroy() }
        let repository = CartridgeRepository(configuration: .init(
            path: node.repositoryPath, cartridgeBasePath: Self.fixtures))
        let report = repository.rescan()
        let failures = report.items.compactMap { if case .failed(let reason) = $0.outcome { reason } else { nil } }
        #expect(failures.isEmpty)
        #expect(report.installed == 12)
        let expected = try #require(TestFiles.read(Self.fixtures + "-expected-tuples.txt"))
        #expect(repository.snapshot.listing == expected)
        // A cold load in a new repository object reads the same.
        let reloaded = CartridgeRepository(configuration: repository.configuration)
        #expect(try reloaded.load().problems.isEmpty)
        #expect(reloaded.snapshot.listing == expected)
    }

    @Test("projections carry each version's overrides, as the original's did")
    func projections() throws {
        func load(_ name: String) throws -> ManifestDocument {
            let path = Self.fixtures + "/\(name)/metadata/manifest.yml"
            return try ManifestDocument.parse(yaml: try #require(TestFiles.read(path)), path: path)
        }
        let php = try load("php")
        #expect(php.primary.version.text == "5.4")
        #expect(php.projections.map(\.displayName) == ["PHP 5.3", "PHP 5.4"])
        #expect(php.projections[0].map["Provides"]?.stringList == ["php-5.3", "php"])

        let mock = try load("mock")
        #expect(mock.primary.endpoints.count == 5)
        #expect(mock.projections.map(\.installBuildRequired) == [false, true, true])
        #expect(mock.projections[2].endpoints.count == 1, "0.3 replaces the whole endpoint list")
        #expect(mock.projections[2].endpoints[0].privatePort == 8123)
        #expect(mock.primary.endpoints[4].protocols == ["https"])
        #expect(mock.primary.endpoints[4].options?["ssl_to_gear"]?.boolean == true)

        let python = try load("python")
        #expect(python.projections.map { $0.map["Group-Overrides"]?.list?.first?.map?["components"]?.stringList?.first }
            == ["python-2.6", "python-2.7", "python-3.3"])

        #expect(try load("perl").primary.version.text == "5.10")
        #expect(try load("ruby").projections.map(\.version.text) == ["1.8", "1.9", "2.0"])
        #expect(try load("mock-plugin").primary.shortName == "MOCK_PLUGIN")
        #expect(try load("haproxy").primary.isWebProxy)
        #expect(try load("cron").primary.endpoints.isEmpty)
    }
}
