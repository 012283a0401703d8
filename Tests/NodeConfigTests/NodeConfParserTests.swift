import Testing

@testable import NodeConfig

@Suite("node.conf parsing")
struct NodeConfParserTests {
    @Test("shell-style assignments are read as a shell would read them, without expansion")
    func assignments() throws {
        let text = """
            # comment
            PUBLIC_HOSTNAME=node1.example.com
              CLOUD_DOMAIN="apps.example.com"   # trailing comment
            GEAR_GECOS='OpenShift guest'
            export BROKER_HOST=broker.example.com
            ESCAPED="a \\"quoted\\" \\$HOME \\\\ value"
            EMPTY=
            LITERAL="$HOME"

            """
        let entries = try NodeConfParser.parse(text, file: "node.conf")
        let values = Dictionary(entries.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
        #expect(values["PUBLIC_HOSTNAME"] == "node1.example.com")
        #expect(values["CLOUD_DOMAIN"] == "apps.example.com")
        #expect(values["GEAR_GECOS"] == "OpenShift guest")
        #expect(values["BROKER_HOST"] == "broker.example.com")
        #expect(values["ESCAPED"] == "a \"quoted\" $HOME \\ value")
        #expect(values["EMPTY"] == "")
        #expect(values["LITERAL"] == "$HOME")
        #expect(entries.first { $0.key == "CLOUD_DOMAIN" }?.line == 3)
    }

    @Test("a bad line is reported with its file and line number", arguments: [
        ("A=1\nNOT AN ASSIGNMENT\n", 2, "expected KEY=value"),
        ("A=1\nB=2\nC=\"unterminated\n", 3, "unterminated double quote"),
        ("X='open\n", 1, "unterminated single quote"),
        ("1BAD=value\n", 1, "invalid key name '1BAD'"),
        ("A=two words\n", 1, "unquoted space in value"),
    ])
    func badLine(text: String, line: Int, reason: String) {
        #expect {
            try NodeConfParser.parse(text, file: "/etc/openshift/node.conf")
        } throws: { error in
            guard case let .malformedLine(file, errorLine, _, errorReason) = error as? NodeConfigError else { return false }
            return file == "/etc/openshift/node.conf" && errorLine == line && errorReason.hasPrefix(reason)
        }
    }

    @Test("the error sentence names file, line and the offending text")
    func errorSentence() {
        let error = NodeConfigError.malformedLine(file: "node.conf", line: 7, text: "garbage", reason: "expected KEY=value")
        #expect(error.description == "node.conf:7: expected KEY=value: 'garbage'")
        #expect(error.kind == .invalidArgument)
    }
}

@Suite("node configuration")
struct NodeConfigurationTests {
    @Test("unset keys have their documented defaults")
    func defaults() {
        let configuration = NodeConfiguration()
        #expect(configuration.cartridgeBasePath == "/usr/libexec/openshift/cartridges")
        #expect(configuration.cartridgeRepoDir == "/var/lib/openshift/.cartridge_repository")
        #expect(configuration.gearBaseDir == "/var/lib/openshift")
        #expect(configuration.integer("GEAR_MIN_UID") == 1000)
        #expect(configuration.watchCartridgeBasePath)
    }

    @Test("the file overrides defaults, keeps unknown keys, and the last assignment wins")
    func overrides() throws {
        let configuration = try NodeConfiguration(parsing: """
            CARTRIDGE_REPO_DIR=/srv/repo
            MY_PLUGIN_SETTING=on
            GEAR_MAX_UID=2000
            GEAR_MAX_UID=3000
            """, file: "node.conf")
        #expect(configuration.cartridgeRepoDir == "/srv/repo")
        #expect(configuration["MY_PLUGIN_SETTING"] == "on")
        #expect(configuration.integer("GEAR_MAX_UID") == 3000)
        #expect(configuration.origins["GEAR_MAX_UID"] == "node.conf:4")
    }

    @Test("a value of the wrong type is an error naming the key, value and line", arguments: [
        ("GEAR_MIN_UID=lots", "GEAR_MIN_UID", "an integer"),
        ("CARTRIDGE_WATCH=maybe", "CARTRIDGE_WATCH", "a boolean"),
        ("QUOTA_WARNING_PERCENT=high", "QUOTA_WARNING_PERCENT", "a number"),
    ])
    func typeErrors(line: String, key: String, expected: String) {
        #expect {
            try NodeConfiguration(parsing: "# header\n" + line, file: "node.conf")
        } throws: { error in
            guard case let .invalidValue(file, number, errorKey, _, errorExpected) = error as? NodeConfigError else { return false }
            return file == "node.conf" && number == 2 && errorKey == key && errorExpected.hasPrefix(expected)
        }
    }

    @Test("booleans accept the original's spellings", arguments: [("y", true), ("1", true), ("TRUE", true), ("no", false), ("0", false)])
    func booleans(text: String, value: Bool) throws {
        let configuration = try NodeConfiguration(parsing: "CARTRIDGE_WATCH=\(text)", file: "node.conf")
        #expect(configuration.watchCartridgeBasePath == value)
    }

    @Test("a missing default file gives defaults; a missing named file is an error")
    func missingFile() throws {
        let path = "/nonexistent/openshift/node.conf"
        #expect(try NodeConfiguration.load(file: path, missingIsDefault: true) == NodeConfiguration())
        #expect(throws: NodeConfigError.unreadable(file: path, errno: 2)) {
            try NodeConfiguration.load(file: path, missingIsDefault: false)
        }
    }

    @Test("node.conf.sample documents every key with its default, and matches the key table")
    func sampleFile() throws {
        let file = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/node.conf.sample"
        let sample = try NodeConfiguration.load(file: file, missingIsDefault: false)
        #expect(sample.values == NodeConfiguration().values, "node.conf.sample must set every key to its default")
        let text = try #require(try? String(contentsOfFileAtPath: file))
        #expect(text == NodeConfiguration.sampleText(), "regenerate with: openshift-node config-sample > node.conf.sample")
        for key in NodeConfigKey.all { #expect(text.contains("\n\(key.name)=\"\(key.defaultValue)\"\n")) }
    }
}

@Suite("path layout")
struct PathLayoutTests {
    @Test("sandbox mode puts every configured path under the root; command-line overrides stay as given")
    func sandbox() {
        let layout = PathLayout(root: "/tmp/sandbox/", overrides: ["CARTRIDGE_BASE_PATH": "/src/cartridges"])
        #expect(layout.cartridgeRepoDir == "/tmp/sandbox/var/lib/openshift/.cartridge_repository")
        #expect(layout.gearBaseDir == "/tmp/sandbox/var/lib/openshift")
        #expect(layout.cartridgeBasePath == "/src/cartridges")
        #expect(PathLayout.defaultConfigFile(root: "/tmp/sandbox") == "/tmp/sandbox/etc/openshift/node.conf")
    }

    @Test("node mode uses the configured paths")
    func nodeMode() {
        let layout = PathLayout()
        #expect(layout.cartridgeBasePath == "/usr/libexec/openshift/cartridges")
        #expect(!layout.isSandbox)
    }
}

extension String {
    init(contentsOfFileAtPath path: String) throws {
        switch readTextFile(path) {
        case .success(let text): self = text
        case .failure(let error): throw error
        }
    }
}
