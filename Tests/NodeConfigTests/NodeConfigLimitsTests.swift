import Testing

@testable import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Every value of node.conf is checked when the file is loaded, so nothing downstream ever sees
/// a uid of -5, a port of 70000 or a path with a NUL in it.
@Suite("node.conf limits")
struct NodeConfigLimitsTests {
    static let file = "/etc/openshift/node.conf"

    /// The error `text` (after a comment line, so the value is on line 2) raises, as printed.
    func message(_ text: String) -> String? {
        do {
            _ = try NodeConfiguration(parsing: "# node.conf\n" + text + "\n", file: Self.file)
            return nil
        } catch {
            #expect(error.kind == .invalidArgument)
            return error.description
        }
    }

    @Test("a value outside its key's limits is refused with file, line and what the key takes", arguments: [
        ("GEAR_MIN_UID=-5", "GEAR_MIN_UID must be an integer from 1 to 4294967294 (a uid), found '-5'"),
        ("GEAR_MIN_UID=0", "GEAR_MIN_UID must be an integer from 1 to 4294967294 (a uid), found '0'"),
        ("GEAR_MAX_UID=4294967295", "GEAR_MAX_UID must be an integer from 1 to 4294967294 (a uid), found '4294967295'"),
        ("GEAR_MAX_UID=99999999999999999999", "GEAR_MAX_UID must be an integer from 1 to 4294967294 (a uid), found '99999999999999999999'"),
        ("PORT_BEGIN=70000", "PORT_BEGIN must be an integer from 1 to 65535 (a port), found '70000'"),
        ("PORT_BEGIN=0", "PORT_BEGIN must be an integer from 1 to 65535 (a port), found '0'"),
        ("FRONTEND_WAKE_PORT=-1", "FRONTEND_WAKE_PORT must be an integer from 0 to 65535 (a port, 0 for off), found '-1'"),
        ("PORTS_PER_USER=0", "PORTS_PER_USER must be an integer from 1 to 65535 (a port count), found '0'"),
        ("UID_BEGIN=-1", "UID_BEGIN must be an integer from 0 to 4294967294 (a uid offset), found '-1'"),
        ("WRAPAROUND_UID=0", "WRAPAROUND_UID must be an integer from 1 to 131072 (a uid modulus), found '0'"),
        ("IP_ADDRESS_WRAPAROUND_OFFSET=1000", "IP_ADDRESS_WRAPAROUND_OFFSET must be an integer from 0 to 999 (a block offset), found '1000'"),
        ("USER_VARIABLE_MAX_COUNT=-1", "USER_VARIABLE_MAX_COUNT must be an integer of at least 0 (a count), found '-1'"),
        ("AGENT_MAX_CONCURRENT=0", "AGENT_MAX_CONCURRENT must be an integer from 1 to 1024 (a count), found '0'"),
        ("AGENT_ACTION_TIMEOUT=0", "AGENT_ACTION_TIMEOUT must be an integer from 1 to 86400 (seconds), found '0'"),
        ("CARTRIDGE_RESCAN_DEBOUNCE_MS=-10", "CARTRIDGE_RESCAN_DEBOUNCE_MS must be an integer from 0 to 3600000 (milliseconds), found '-10'"),
        ("SELINUX_MCS_SET_SIZE=0", "SELINUX_MCS_SET_SIZE must be an integer from 1 to 65536 (a category count), found '0'"),
        ("SELINUX_MCS_GROUP_SIZE=0", "SELINUX_MCS_GROUP_SIZE must be an integer from 1 to 16 (a category count), found '0'"),
        ("SELINUX_MCS_UID_OFFSET=-1", "SELINUX_MCS_UID_OFFSET must be an integer from 0 to 4294967294 (a uid offset), found '-1'"),
        ("SELINUX_MLS_NUM=-1", "SELINUX_MLS_NUM must be an integer from 0 to 1023 (a sensitivity), found '-1'"),
        ("QUOTA_WARNING_PERCENT=101", "QUOTA_WARNING_PERCENT must be a number from 0 to 100 (a percentage), found '101'"),
        ("QUOTA_WARNING_PERCENT=nan", "QUOTA_WARNING_PERCENT must be a number from 0 to 100 (a percentage), found 'nan'"),
        ("GEAR_BASE_DIR=var/lib/openshift", "GEAR_BASE_DIR must be an absolute path (starting with /), found 'var/lib/openshift'"),
        ("CARTRIDGE_REPO_DIR=", "CARTRIDGE_REPO_DIR must be an absolute path (starting with /), found ''"),
        ("GEAR_BASE_DIR=/var/lib/../../etc", "GEAR_BASE_DIR must be a path without '..' components, found '/var/lib/../../etc'"),
        ("GEAR_SHELL=\"/bin/sh\u{1b}[2J\"", "GEAR_SHELL must be a path without control characters, found '/bin/sh\\u{1b}[2J'"),
        ("PUBLIC_HOSTNAME=\"node\u{7}\"", "PUBLIC_HOSTNAME must be text without control characters, found 'node\\u{7}'"),
        ("GEAR_GECOS=\"a\tb\"", "GEAR_GECOS must be text without control characters, found 'a\\u{9}b'"),
    ])
    func outOfLimits(line: String, expected: String) {
        #expect(message(line) == "\(Self.file):2: \(expected)")
    }

    @Test("values at the edges of their limits are accepted", arguments: [
        "GEAR_MIN_UID=1\nGEAR_MAX_UID=1", "PORT_BEGIN=65535\nPORTS_PER_USER=1", "FRONTEND_WAKE_PORT=0",
        "USER_VARIABLE_MAX_COUNT=0", "QUOTA_WARNING_PERCENT=100", "GEAR_BASE_DIR=/", "GEAR_BASE_DIR=/srv/..gears/a..b",
        "WRAPAROUND_UID=131071\nIP_ADDRESS_WRAPAROUND_OFFSET=1", "GEAR_MIN_UID=100000\nGEAR_MAX_UID=100049",
        "SELINUX_MCS_GROUP_SIZE=1\nGEAR_MIN_UID=1\nGEAR_MAX_UID=1023",
    ])
    func edges(text: String) {
        #expect(message(text) == nil)
    }

    @Test("keys that contradict each other are refused at the line of the one set last", arguments: [
        ("GEAR_MIN_UID=5000\nGEAR_MAX_UID=4000", 3, "GEAR_MAX_UID (4000) is below GEAR_MIN_UID (5000), "
            + "so no uid is left for gears; set GEAR_MAX_UID to at least GEAR_MIN_UID"),
        ("GEAR_MAX_UID=10\n# between\nGEAR_MIN_UID=20", 4, "GEAR_MAX_UID (10) is below GEAR_MIN_UID (20), "
            + "so no uid is left for gears; set GEAR_MAX_UID to at least GEAR_MIN_UID"),
        ("GEAR_MAX_UID=999", 2, "GEAR_MAX_UID (999) is below GEAR_MIN_UID (1000), "
            + "so no uid is left for gears; set GEAR_MAX_UID to at least GEAR_MIN_UID"),
        ("SELINUX_MCS_SET_SIZE=4\nSELINUX_MCS_GROUP_SIZE=5", 3, "SELINUX_MCS_GROUP_SIZE (5) is larger than "
            + "SELINUX_MCS_SET_SIZE (4); a label cannot hold more categories than there are"),
        ("SELINUX_MCS_SET_SIZE=32", 2, "GEAR_MIN_UID...GEAR_MAX_UID (1000...6999) includes uids without an "
            + "MCS label (only uids 1...495 have one with these SELINUX_MCS_* settings); narrow the uid range or change the MCS settings"),
        ("GEAR_MIN_UID=1\nSELINUX_MCS_UID_OFFSET=10", 3, "GEAR_MIN_UID...GEAR_MAX_UID (1...6999) includes "
            + "uids without an MCS label (only uids 11...523785 have one with these SELINUX_MCS_* settings); narrow the uid range "
            + "or change the MCS settings"),
        ("WRAPAROUND_UID=131072", 2, "WRAPAROUND_UID + IP_ADDRESS_WRAPAROUND_OFFSET (131072 + 1) is above 131072, "
            + "so some gear addresses would fall outside 127.0.0.0/8"),
        ("PORT_BEGIN=65535", 2, "PORT_BEGIN + PORTS_PER_USER (65535 + 5) goes past port 65535, "
            + "so not even one gear has a full set of proxy ports"),
    ])
    func conflicts(text: String, line: Int, expected: String) {
        #expect(message(text) == "\(Self.file):\(line): \(expected)")
    }

    @Test("the defaults satisfy every limit and rule, and every numeric key has a limit")
    func defaults() throws {
        for key in NodeConfigKey.all {
            #expect(key.problem(key.defaultValue) == nil, "\(key.name)")
            if key.type == .integer || key.type == .number { #expect(key.limit != nil, "\(key.name) has no limit") }
        }
        let numbers = Dictionary(uniqueKeysWithValues: NodeConfigKey.all.filter { $0.type == .integer }.map { ($0.name, Int($0.defaultValue)!) })
        for rule in NodeConfigRule.all { #expect(rule.problem(numbers) == nil, "\(rule.keys)") }
    }

    @Test("the MCS label range is the one of the reference, without trapping on huge sets")
    func labelledUIDs() {
        #expect(NodeConfigRule.labelledUIDs(setSize: 1024, groupSize: 2, uidOffset: 0) == 1...523_775)
        #expect(NodeConfigRule.labelledUIDs(setSize: 2, groupSize: 2, uidOffset: 0) == nil)
        #expect(NodeConfigRule.labelledUIDs(setSize: 65536, groupSize: 16, uidOffset: 4_294_967_294)?.upperBound == Int.max)
    }

    @Test("a NUL or invalid UTF-8 in a value is refused at its line; a daemon-like load refuses the file", arguments: [
        (Array("# node.conf\nGEAR_BASE_DIR=/var/lib/".utf8) + [0xff, 0xfe] + Array("openshift\n".utf8), 2,
         "the value of GEAR_BASE_DIR is not valid UTF-8; node.conf values must be UTF-8 text without NUL bytes"),
        (Array("CARTRIDGE_REPO_DIR=\"/srv/".utf8) + [0] + Array("repo\"\n".utf8), 1,
         "the value of CARTRIDGE_REPO_DIR contains a NUL byte; node.conf values must be UTF-8 text without NUL bytes"),
        (Array("A=1\nMY_PLUGIN_SETTING='a".utf8) + [0] + Array("b'\n".utf8), 2,
         "the value of MY_PLUGIN_SETTING contains a NUL byte; node.conf values must be UTF-8 text without NUL bytes"),
        (Array("A=1\nB=2\n".utf8) + [0xc3, 0x28] + Array("KEY=1\n".utf8), 3,
         "the line is not valid UTF-8; node.conf must be UTF-8 text without NUL bytes"),
        (Array("GEAR_BASE_DIR=/var/lib/\u{1}x\n".utf8), 1, "GEAR_BASE_DIR must be a path without control characters, found '/var/lib/\\u{1}x'"),
    ])
    func undecodable(bytes: [UInt8], line: Int, expected: String) throws {
        let directory = try temporaryDirectory()
        defer { removeTemporary(directory) }
        let file = directory + "/node.conf"
        try writeBytes(file, bytes)
        for missingIsDefault in [true, false] {
            let error = #expect(throws: NodeConfigError.self) {
                try NodeConfiguration.load(file: file, missingIsDefault: missingIsDefault)
            }
            #expect(error?.description == "\(file):\(line): \(expected)")
        }
        let error = #expect(throws: NodeConfigError.self) { try NodeConfiguration(parsing: bytes, file: "node.conf") }
        #expect(error?.description == "node.conf:\(line): \(expected)")
    }

    @Test("invalid UTF-8 in a comment is never read, so it is tolerated")
    func undecodableComment() throws {
        let bytes = Array("# caf".utf8) + [0xe9] + Array("\nGEAR_BASE_DIR=/srv/gears # caf".utf8) + [0xe9] + Array("\n".utf8)
        let configuration = try NodeConfiguration(parsing: bytes, file: "node.conf")
        #expect(configuration.gearBaseDir == "/srv/gears")
    }

    @Test("a daemon-like load refuses out-of-limit values and contradictions with the same sentence")
    func loadRefuses() throws {
        let directory = try temporaryDirectory()
        defer { removeTemporary(directory) }
        let file = directory + "/node.conf"
        try writeBytes(file, Array("GEAR_MIN_UID=-5\nGEAR_MAX_UID=-1\n".utf8))
        #expect(throws: NodeConfigError.invalidValue(file: file, line: 1, key: "GEAR_MIN_UID", value: "-5",
                                                     expected: "an integer from 1 to 4294967294 (a uid)")) {
            try NodeConfiguration.load(file: file, missingIsDefault: true)
        }
        try writeBytes(file, Array("GEAR_MIN_UID=3000\nGEAR_MAX_UID=2000\n".utf8))
        let error = #expect(throws: NodeConfigError.self) { try NodeConfiguration.load(file: file, missingIsDefault: false) }
        guard case let .conflictingValues(errorFile, line, key, _) = error else {
            Issue.record("expected conflicting values, got \(String(describing: error))")
            return
        }
        #expect(errorFile == file && line == 2 && key == "GEAR_MAX_UID")
    }

    @Test("the uid range reaches the plugins only as a valid range of uids")
    func gearUIDs() {
        #expect(NodeConfiguration().gearUIDs == 1000...6999)
        var bypassed = NodeConfiguration()
        bypassed["GEAR_MIN_UID"] = "-5"
        bypassed["GEAR_MAX_UID"] = "-1"
        #expect(bypassed.gearUIDs == nil)
        bypassed["GEAR_MIN_UID"] = "10"
        bypassed["GEAR_MAX_UID"] = "4294967295"
        #expect(bypassed.gearUIDs == nil)
    }
}

func temporaryDirectory() throws -> String {
    var template = Array("/tmp/node-config-test-XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { throw NodeConfigError.unreadable(file: "/tmp", errno: errno) }
    return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func removeTemporary(_ directory: String) {
    for name in FileSystem.entries(directory) ?? [] { unlink(directory + "/" + name) }
    rmdir(directory)
}

func writeBytes(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw NodeConfigError.unreadable(file: path, errno: errno) }
    defer { close(fd) }
    guard write(fd, bytes, bytes.count) == bytes.count else { throw NodeConfigError.unreadable(file: path, errno: errno) }
}
