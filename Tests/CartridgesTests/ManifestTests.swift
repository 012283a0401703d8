import Testing

@testable import Cartridges

/// A minimal valid manifest; tests append or replace lines (the last duplicate key wins).
let validManifest = """
    Name: crtest
    Cartridge-Short-Name: CRTEST
    Cartridge-Vendor: redhat
    Cartridge-Version: '0.0.1'
    Version: '0.1'

    """

func parse(_ yaml: String) throws -> ManifestDocument {
    try ManifestDocument.parse(yaml: yaml, path: "/src/crtest/metadata/manifest.yml")
}

/// The message of the manifest error `yaml` raises, or nil if it parses.
func manifestError(_ yaml: String) -> String? {
    do {
        _ = try ManifestDocument.parse(yaml: yaml, path: "/src/crtest/metadata/manifest.yml")
        return nil
    } catch {
        guard case let .invalidManifest(path, _, reason) = error else { return "\(error)" }
        #expect(path == "/src/crtest/metadata/manifest.yml")
        return reason
    }
}

@Suite("manifest")
struct ManifestTests {
    @Test("a valid manifest projects one manifest per software version")
    func projections() throws {
        let document = try parse(validManifest + "Versions: ['0.1', '0.2', '0.3']\n")
        #expect(document.projections.map(\.version.text) == ["0.1", "0.2", "0.3"])
        #expect(document.primary.version.text == "0.1")
        #expect(document.projections.allSatisfy { $0.cartridgeVersion.text == "0.0.1" && $0.name == "crtest" })
        #expect(document.projections[1].map["Version"]?.string == "0.2")
        #expect(document.primary.tuple == "(redhat, crtest, 0.1, 0.0.1)")
        #expect(document.primary.ident == "redhat:crtest:0.1:0.0.1")
        #expect(document.primary.repositoryDirectory == "redhat-crtest/0.0.1")
    }

    @Test("versions are kept exactly as written, quoted or not: 1.10 stays 1.10")
    func literalVersions() throws {
        let document = try parse("""
            Name: php
            Cartridge-Short-Name: PHP
            Cartridge-Vendor: redhat
            Cartridge-Version: 0.0.10
            Version: 5.10
            Versions: [5.10, 1.1, '1.10']
            Version-Overrides:
              1.10:
                Display-Name: PHP 1.10
            """)
        #expect(document.projections.map(\.version.text) == ["1.1", "1.10", "5.10"])
        #expect(document.primary.version.text == "5.10")
        #expect(document.cartridgeVersion.text == "0.0.10")
        #expect(document.projections[1].displayName == "PHP 1.10")
        #expect(document.projections[0].displayName == nil)
    }

    @Test("validation follows the original's order and messages", arguments: [
        ("Name: x\n", "Version is a required element"),
        (validManifest + "Versions: '0.1'\n", "Versions is not valid"),
        (validManifest + "Compatible-Versions: 0.0.1\n", "Compatible-Versions is not valid"),
        (validManifest + "Cartridge-Short-Name:\n", "Cartridge-Short-Name is a required element"),
        (validManifest + "Cartridge-Short-Name: CR-TEST\n", "Cartridge-Short-Name is not valid"),
        (validManifest + "Name:\n", "Name is a required element"),
        (validManifest + "Cartridge-Vendor: 0a_\n", "Cartridge-Vendor '0a_' does not match pattern /\\A[a-z0-9](?:[a-z0-9_]*[a-z0-9]|)\\z/."),
        (validManifest + "Cartridge-Vendor:\n", "Cartridge-Vendor '' does not match pattern /\\A[a-z0-9](?:[a-z0-9_]*[a-z0-9]|)\\z/."),
        (validManifest + "Cartridge-Vendor: \(String(repeating: "a", count: 33))\n",
         "Cartridge-Vendor '\(String(repeating: "a", count: 33))' must be no longer than 32 characters."),
        (validManifest + "Name: 0a-\n", "Name '0a-' does not match pattern /\\A[a-z0-9](?:[-\\.a-z0-9_]*[a-z0-9]|)\\z/."),
        (validManifest + "Name: Crtest\n", "Name 'Crtest' does not match pattern /\\A[a-z0-9](?:[-\\.a-z0-9_]*[a-z0-9]|)\\z/."),
        (validManifest + "Name: \(String(repeating: "n", count: 33))\n",
         "Name '\(String(repeating: "n", count: 33))' must be no longer than 32 characters."),
        (validManifest + "Name: git\n", "Name 'git' is reserved."),
        (validManifest + "Name: app-root\n", "Name 'app-root' is reserved."),
        (validManifest + "Source-Url: Bad Url\n", "Source-Url is not valid"),
        (validManifest + "Categories: [external]\nScaling: {Min: 1, Max: 1}\n",
         "Scaling should either not be specified or have 0 for 'Min' and 'Max' in case of an 'external' cartridge."),
        (validManifest + "Scaling: {Min: 0}\n", "Scaling 'Min' and 'Max' cannot be 0 unless its an 'external' cartridge."),
    ])
    func validation(yaml: String, message: String) {
        #expect(manifestError(yaml) == message)
    }

    @Test("a malformed version is an error naming the field and the value, never 0.0.0", arguments: [
        (validManifest + "Version: 1.0rc\n", "Version", "1.0rc"),
        (validManifest + "Versions: ['0.1', '1.']\n", "Versions", "1."),
        (validManifest + "Cartridge-Version: 'abc'\n", "Cartridge-Version", "abc"),
        (validManifest + "Compatible-Versions: ['0.0.1', '../0']\n", "Compatible-Versions", "../0"),
    ])
    func malformedVersions(yaml: String, field: String, value: String) {
        #expect(manifestError(yaml) == "\(field) '\(value)' is not a valid version (expected digits separated by dots, like 1.10)")
    }

    @Test("Cartridge-Version is required: the repository directory is named after it")
    func cartridgeVersionRequired() {
        #expect(manifestError(validManifest + "Cartridge-Version:\n") == "Cartridge-Version is a required element")
    }

    @Test("overrides replace whole top-level keys for their version only")
    func overrides() throws {
        let document = try parse(validManifest + """
            Versions: ['0.1', '0.2']
            Display-Name: Test
            Categories: [web_framework]
            Group-Overrides:
              - components: [crtest]
            Version-Overrides:
              '0.2':
                Display-Name: Test 0.2
                Categories: [service]
                Group-Overrides:
                  - components: [crtest-0.2, web_proxy]

            """)
        let (v1, v2) = (document.projections[0], document.projections[1])
        #expect(v1.displayName == "Test" && v2.displayName == "Test 0.2")
        #expect(v1.categories == ["web_framework"] && v2.categories == ["service"])
        #expect(v1.isWebFramework && !v2.isWebFramework)
        #expect(v2.map["Group-Overrides"]?.list?.first?.map?["components"]?.stringList == ["crtest-0.2", "web_proxy"])
        #expect(v2.map["Version-Overrides"] != nil, "the projection keeps every other key")
    }

    @Test("overrides may not change what the repository indexes by", arguments: ["Name", "Cartridge-Vendor", "Cartridge-Version", "Version"])
    func overrideIdentity(field: String) {
        let yaml = validManifest + "Versions: ['0.1', '0.2']\nVersion-Overrides:\n  '0.2':\n    \(field): 'other'\n"
        #expect(manifestError(yaml) == "Version-Overrides for '0.2' may not change \(field)")
    }

    @Test("malformed overrides are errors, not crashes", arguments: [
        ("Version-Overrides: [a]\n", "Version-Overrides is not valid"),
        ("Version-Overrides:\n  '0.2': text\n", "Version-Overrides for '0.2' is not a mapping"),
        ("Version-Overrides:\n  latest: {}\n", "Version-Overrides key 'latest' is not a valid version"),
    ])
    func malformedOverrides(yaml: String, message: String) {
        #expect(manifestError(validManifest + yaml) == message)
    }

    @Test("duplicate keys: the last one wins, as the original's YAML parser did")
    func duplicateKeys() throws {
        let document = try parse(validManifest + "Name: crftest\nCartridge-Vendor: example\n")
        #expect(document.name == "crftest")
        #expect(document.vendor == "example")
    }

    @Test("invalid YAML names the file")
    func invalidYAML() {
        #expect {
            try parse("Name: [unclosed\n")
        } throws: { error in
            guard case let .unparsableManifest(path, _) = error as? CartridgesError else { return false }
            return path == "/src/crtest/metadata/manifest.yml"
        }
    }

    @Test("endpoints: names are prefixed with the short name; http mappings get a leading slash")
    func endpoints() throws {
        let document = try parse(validManifest + """
            Cartridge-Short-Name: mock
            Endpoints:
              - Private-IP-Name: IP1
                Private-Port-Name: PORT1
                Private-Port: 8080
                Public-Port-Name: PROXY_PORT1
                WebSocket-Port-Name: WS_PORT
                WebSocket-Port: 8000
                Mappings:
                  - Frontend: front1a
                    Backend: back1a
                  - Frontend: ''
                    Backend: ''
                    Options: { websocket: true }
              - Private-IP-Name: IP2
                Private-Port-Name: PORT2
                Private-Port: 9090
                Protocols: [tls]
                Mappings:
                  - Frontend: sni
                    Backend: raw
              - Private-IP-Name: IP3
                Private-Port-Name: PORT3
                Private-Port: 5432

            """)
        let endpoints = document.primary.endpoints
        #expect(document.primary.shortName == "MOCK")
        #expect(endpoints.count == 3)
        #expect(endpoints[0].privateIPName == "OPENSHIFT_MOCK_IP1")
        #expect(endpoints[0].privatePortName == "OPENSHIFT_MOCK_PORT1")
        #expect(endpoints[0].publicPortName == "OPENSHIFT_MOCK_PROXY_PORT1")
        #expect(endpoints[0].websocketPortName == "OPENSHIFT_MOCK_WS_PORT")
        #expect(endpoints[0].privatePort == 8080 && endpoints[0].websocketPort == 8000)
        #expect(endpoints[0].protocols == ["http"])
        #expect(endpoints[0].mappings.map(\.frontend) == ["/front1a", ""])
        #expect(endpoints[0].mappings.map(\.backend) == ["/back1a", ""])
        #expect(endpoints[0].mappings[1].options?["websocket"]?.boolean == true)
        #expect(endpoints[1].mappings[0].frontend == "sni", "non-http protocols keep paths verbatim")
        #expect(endpoints[2].protocols == ["tcp"])
        #expect(document.primary.publicEndpoints.count == 1)
    }

    @Test("endpoint errors are collected with the original's wording", arguments: [
        ("  - Private-Port-Name: P\n    Private-Port: 1\n", "Private-IP-Name is a required element"),
        ("  - Private-IP-Name: ''\n    Private-Port-Name: P\n    Private-Port: 1\n", "Private-IP-Name is a required element"),
        ("  - Private-IP-Name: I\n    Private-Port: 1\n", "Private-Port-Name is a required element"),
        ("  - Private-IP-Name: I\n    Private-Port-Name: P\n", "Private-Port is a required element"),
        ("  - Private-IP-Name: I\n    Private-Port-Name: P\n    Private-Port: ''\n", "Private-Port is not valid"),
        ("  - Private-IP-Name: I\n    Private-Port-Name: P\n    Private-Port: '8080'\n", "Private-Port is not valid"),
        ("  - just text\n", "Non-Hash endpoint entry: just text"),
    ])
    func endpointErrors(entry: String, message: String) throws {
        let error = try #require(manifestError(validManifest + "Endpoints:\n" + entry))
        #expect(error.hasPrefix("Couldn't parse endpoints: Couldn't parse endpoint entry '"))
        #expect(error.hasSuffix(message))
    }

    @Test("a manifest supplied as text needs a Source-Url unless it is external")
    func textManifests() throws {
        #expect(throws: CartridgesError.self) {
            try ManifestDocument.parse(yaml: validManifest, path: "url", fromURL: true)
        }
        let external = try ManifestDocument.parse(yaml: validManifest + "Categories: [external]\nScaling: {Min: 0, Max: 0}\n",
                                                  path: "url", fromURL: true)
        #expect(external.primary.sourceURL == nil)
        let downloadable = try ManifestDocument.parse(yaml: validManifest + "Source-Url: https://example.com/c.zip\n",
                                                      path: "url", fromURL: true)
        #expect(downloadable.primary.sourceURL == "https://example.com/c.zip")
    }

    @Test("hostile YAML is refused cleanly", arguments: [
        "a: &a [*a]\n",
        String(repeating: "[", count: 200) + String(repeating: "]", count: 200),
        "- not\n- a\n- map\n",
        "\u{0}\u{1}",
    ])
    func hostile(yaml: String) {
        #expect(throws: CartridgesError.self) { try parse(yaml) }
    }
}
