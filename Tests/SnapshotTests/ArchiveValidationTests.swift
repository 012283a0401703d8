import Access
import Testing

/// The restore's archive checks, without a file system: archives built in memory, walked by
/// `TarReader` and judged by `ArchivePolicy` exactly as `gear restore` does before it changes
/// anything.
@Suite("restore refuses hostile or broken archives (pure)")
struct ArchiveValidationTests {
    static let top = "./0123abcd"

    /// Every placement of an archive, or the refusal.
    static func check(_ bytes: [UInt8], git: String? = nil, transforms: [String] = [], live: [String: String] = [:]) -> Result<[Placement], InGearError> {
        do throws(InGearError) {
            var policy = ArchivePolicy(scope: RestoreScope(gitRepository: git), transforms: transforms.map { try! SedTransform($0) })
            let reader = TarReader(MemorySource(bytes))
            var placements: [Placement] = []
            while let entry = try reader.next() {
                let placement = try policy.admit(entry)
                if case .file = placement { try reader.readData { _ in } }
                placements.append(placement)
            }
            try policy.finish { live[String(decoding: $0, as: UTF8.self)].map { Array($0.utf8) } }
            return .success(placements)
        } catch {
            return .failure(error)
        }
    }

    static func refusal(_ result: Result<[Placement], InGearError>) -> (member: String, reason: String)? {
        if case .failure(.refused(let member, let reason)) = result { return (member, reason) }
        return nil
    }

    static func base() -> TarBuilder {
        var tar = TarBuilder()
        tar.directory(top + "/")
        tar.directory(top + "/app-root/")
        tar.directory(top + "/app-root/data/")
        return tar
    }

    struct Hostile: CustomTestStringConvertible, Sendable {
        var label: String
        var member: String
        var reason: String
        var build: @Sendable (inout TarBuilder) -> Void
        var live: [String: String] = [:]
        var testDescription: String { label }
    }

    static let hostile: [Hostile] = [
        Hostile(label: "absolute path", member: "/etc/cron.d/x", reason: "an absolute name") { $0.file("/etc/cron.d/x", "* * * * * root id\n") },
        Hostile(label: "'..' component", member: top + "/app-root/data/../../../../etc/x", reason: "a '..' component") {
            $0.file(top + "/app-root/data/../../../../etc/x", "x")
        },
        Hostile(label: "symlink out of the gear", member: top + "/app-root/data/out", reason: "leaves the gear") {
            $0.symlink(top + "/app-root/data/out", to: "../../../other-gear")
        },
        Hostile(label: "symlink to an absolute path", member: top + "/app-root/data/abs", reason: "absolute path") {
            $0.symlink(top + "/app-root/data/abs", to: "/etc/shadow")
        },
        Hostile(label: "symlink chain out (each link alone stays inside)", member: top + "/app-root/data/l1", reason: "leaves the gear") {
            $0.symlink(top + "/app-root/data/l2", to: ".")
            $0.symlink(top + "/app-root/data/l1", to: "l2/../../..")
        },
        Hostile(label: "symlink chain out, the second link later in the archive", member: top + "/app-root/data/l1", reason: "leaves the gear") {
            $0.symlink(top + "/app-root/data/l1", to: "l2/../../..")
            $0.symlink(top + "/app-root/data/l2", to: ".")
        },
        Hostile(label: "symlink out through a link of the gear outside the restored scope", member: top + "/app-root/data/u",
                reason: "to an absolute path", build: { $0.symlink(top + "/app-root/data/u", to: "../../mock/usr/lib") },
                live: ["mock/usr": "/usr/libexec/openshift/cartridges/mock/usr"]),
        Hostile(label: "hard link to a file of the gear outside the archive", member: top + "/app-root/data/h", reason: "not an earlier regular file") {
            $0.hardLink(top + "/app-root/data/h", to: top + "/.ssh/authorized_keys")
        },
        Hostile(label: "hard link to a member outside the restored scope", member: top + "/app-root/data/h", reason: "not an earlier regular file") {
            $0.file(top + "/.env/OPENSHIFT_SECRET", "s3cret")
            $0.hardLink(top + "/app-root/data/h", to: top + "/.env/OPENSHIFT_SECRET")
        },
        Hostile(label: "hard link to an absolute path", member: top + "/app-root/data/h", reason: "an absolute hard link target") {
            $0.hardLink(top + "/app-root/data/h", to: "/etc/shadow")
        },
        Hostile(label: "character device", member: top + "/app-root/data/mem", reason: "a character device") { $0.special(top + "/app-root/data/mem", type: "3") },
        Hostile(label: "block device", member: top + "/app-root/data/sda", reason: "a block device") { $0.special(top + "/app-root/data/sda", type: "4") },
        Hostile(label: "fifo", member: top + "/app-root/data/pipe", reason: "a fifo") { $0.special(top + "/app-root/data/pipe", type: "6") },
        Hostile(label: "device outside the restored scope", member: top + "/mock/run/dev", reason: "a character device") { $0.special(top + "/mock/run/dev", type: "3") },
        Hostile(label: "GNU sparse member", member: top + "/app-root/data/s", reason: "unsupported member type 'S'") { $0.special(top + "/app-root/data/s", type: "S") },
        Hostile(label: "pax path override to ../x", member: "../x", reason: "a '..' component") {
            $0.pax([("path", "../x")])
            $0.file(top + "/app-root/data/harmless", "x")
        },
        Hostile(label: "pax linkpath override out of the gear", member: top + "/app-root/data/l", reason: "leaves the gear") {
            $0.pax([("linkpath", "../../../../../etc")])
            $0.symlink(top + "/app-root/data/l", to: "harmless")
        },
        Hostile(label: "GNU long name with '..'", member: top + "/app-root/data/" + String(repeating: "a", count: 120) + "/../../../../../x",
                reason: "a '..' component") {
            let name = top + "/app-root/data/" + String(repeating: "a", count: 120) + "/../../../../../x"
            $0.longName(name)
            $0.file(String(name.prefix(99)), "x")
        },
        Hostile(label: "a second top directory", member: "./other/app-root/data/x", reason: "not under the archive's top directory") {
            $0.file("./other/app-root/data/x", "x")
        },
        Hostile(label: "a member written through a symlink member", member: top + "/app-root/data/d/x", reason: "lies under the symbolic link member") {
            $0.symlink(top + "/app-root/data/d", to: "sub")
            $0.file(top + "/app-root/data/d/x", "x")
        },
        Hostile(label: "a pax global header that renames every member", member: "", reason: "pax global header") {
            $0.bytes += TarBuilder.header(name: Array("g".utf8), type: UInt8(ascii: "g"), size: 512)
            var body = Array("16 path=../../x\n".utf8)
            body += [UInt8](repeating: 0, count: 512 - body.count)
            $0.appendData(body)
        },
        Hostile(label: "a duplicate member", member: top + "/app-root/data/f", reason: "appears twice") {
            $0.file(top + "/app-root/data/f", "one")
            $0.file(top + "/app-root/data/f", "two")
        },
        Hostile(label: "a bad header checksum", member: top + "/app-root/data/f", reason: "bad header checksum") {
            $0.file(top + "/app-root/data/f", Array("x".utf8), corruptChecksum: true)
        },
    ]

    @Test("a hostile member is refused with its name and the reason", arguments: hostile)
    func hostileMember(_ case_: Hostile) {
        var tar = Self.base()
        case_.build(&tar)
        let result = Self.check(tar.ended(), live: case_.live)
        let refusal = Self.refusal(result)
        #expect(refusal != nil, "accepted: \(result)")
        #expect(refusal?.reason.contains(case_.reason) == true, "\(String(describing: refusal))")
        #expect(refusal?.member == case_.member, "\(String(describing: refusal))")
    }

    @Test("a truncated tar is refused: no end marker, cut inside data, cut inside a header, one end block")
    func truncatedTar() {
        var tar = Self.base()
        tar.file(Self.top + "/app-root/data/big", [UInt8](repeating: 7, count: 5000))
        let whole = tar.ended()
        let withoutEnd = Array(whole.dropLast(1024))
        #expect(Self.refusal(Self.check(withoutEnd))?.reason.contains("no end-of-archive marker") == true)
        #expect(Self.refusal(Self.check(Array(whole.prefix(512 * 4 + 1000))))?.reason.contains("truncated") == true)
        #expect(Self.refusal(Self.check(Array(whole.prefix(512 * 3 + 100))))?.reason.contains("truncated") == true)
        #expect(Self.refusal(Self.check(Array(whole.dropLast(512))))?.reason.contains("one of the two end-of-archive blocks") == true)
        #expect(Self.refusal(Self.check([]))?.reason.contains("no end-of-archive marker") == true)
        #expect(throws: Never.self) { try Self.check(whole).get() }
    }

    @Test("oversized names and meta headers are refused before they are allocated")
    func bounds() {
        var tar = Self.base()
        tar.bytes += TarBuilder.header(name: Array("././@LongLink".utf8), type: UInt8(ascii: "L"), size: 64 << 20, gnu: true)
        #expect(Self.refusal(Self.check(tar.ended()))?.reason.contains("larger than the limit") == true)
        var long = Self.base()
        long.pax([("path", Self.top + "/app-root/data/" + String(repeating: "x/", count: 2100))])
        long.file(Self.top + "/app-root/data/y", "y")
        #expect(Self.refusal(Self.check(long.ended()))?.reason.contains("longer than 4096") == true)
    }

    @Test("a snapshot's own shape is accepted: links inside the gear, hard links, long names; outside the scope nothing is placed")
    func acceptedArchive() throws {
        var tar = Self.base()
        let longName = Self.top + "/app-root/data/" + String(repeating: "n", count: 150) + "/file"
        tar.directory(Self.top + "/app-root/data/nested/")
        tar.file(Self.top + "/app-root/data/nested/c.txt", "content", mode: 0o640)
        tar.symlink(Self.top + "/app-root/data/link", to: "nested/c.txt")
        tar.symlink(Self.top + "/app-root/data/up", to: "../logs")
        tar.hardLink(Self.top + "/app-root/data/hard", to: Self.top + "/app-root/data/nested/c.txt")
        tar.longName(longName)
        tar.file(String(longName.prefix(99)), "long")
        tar.symlink(Self.top + "/mock/usr", to: "/var/lib/openshift/.cartridge_repository/redhat-mock/0.0.1/usr")
        tar.symlink(Self.top + "/app-root/runtime/data", to: "../data")
        tar.file(Self.top + "/.auth/token", "secret")
        tar.directory(Self.top + "/app-deployments/2024-01-01_00-00-00.000/")
        let placements = try Self.check(tar.ended()).get()
        let placed = placements.compactMap { placement -> String? in
            switch placement {
            case .skip: return nil
            case .directory(let p, _, _), .file(let p, _, _): return String(decoding: p, as: UTF8.self)
            case .symlink(let p, let t): return String(decoding: p, as: UTF8.self) + " -> " + String(decoding: t, as: UTF8.self)
            case .hardLink(let p, let t): return String(decoding: p, as: UTF8.self) + " => " + String(decoding: t, as: UTF8.self)
            }
        }
        #expect(placed == [
            "app-root/data/nested", "app-root/data/nested/c.txt", "app-root/data/link -> nested/c.txt", "app-root/data/up -> ../logs",
            "app-root/data/hard => app-root/data/nested/c.txt", "app-root/data/" + String(repeating: "n", count: 150) + "/file",
            "app-deployments/2024-01-01_00-00-00.000",
        ])
    }

    @Test("restore transforms map old layouts, and a transform that would climb out is refused")
    func transforms() throws {
        var tar = Self.base()
        tar.file(Self.top + "/myapp/data/old-layout.txt", "v1")
        tar.file(Self.top + "/git/oldname.git/HEAD", "ref: refs/heads/master\n")
        tar.file(Self.top + "/git/oldname.git/hooks/pre-receive", "evil")
        let placements = try Self.check(tar.ended(), git: "git/myapp.git",
                                        transforms: ["s|myapp/data|app-root/data|", "s|git/.*\\.git|git/myapp.git|"]).get()
        #expect(placements.contains(.file(Array("app-root/data/old-layout.txt".utf8), mode: 0o644, modificationTime: 1_700_000_000)))
        #expect(placements.contains(.file(Array("git/myapp.git/HEAD".utf8), mode: 0o644, modificationTime: 1_700_000_000)))
        #expect(!placements.contains { if case .file(let p, _, _) = $0 { return String(decoding: p, as: UTF8.self).contains("hooks") }; return false },
                "the repository's hooks are never restored")
        var climb = Self.base()
        climb.file(Self.top + "/app-root/data/x", "x")
        let refusal = Self.refusal(Self.check(climb.ended(), transforms: ["s|app-root/data/x|../../../etc/x|"]))
        #expect(refusal?.reason.contains("after the restore transforms") == true)
    }

    @Test("sed expressions: groups, &, occurrence and global flags, other delimiters")
    func sed() throws {
        #expect(try SedTransform("s/\\(a\\)b/\\1\\1/g").apply(Array("abcab".utf8)) == Array("aacaa".utf8))
        #expect(try SedTransform("s|x|[&]|2").apply(Array("xxx".utf8)) == Array("x[x]x".utf8))
        #expect(try SedTransform("s,a+,b,x").apply(Array("caaat".utf8)) == Array("cbt".utf8))
        #expect(try SedTransform("s|data|app-root/data|").apply(Array("./u/g/data/data".utf8)) == Array("./u/g/app-root/data/data".utf8))
        #expect(throws: SedTransform.Invalid.self) { try SedTransform("y/a/b/") }
        #expect(throws: SedTransform.Invalid.self) { try SedTransform("s/a/b/q") }
    }
}
