import Cartridges
import Containment
import Gears
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The gear boundary, attacked for real: real accounts, files planted and raced by the gear's own
/// user (`setpriv`), the node's operations run as root the way the daemon runs them. Each test
/// names the attack; each fails on a node where the hole is open.
@Suite("the gear boundary under attack (node mode)", .enabled(if: Prerequisites.rootOrCI), .serialized)
struct GearBoundaryTests {
    // MARK: 1. Environment to root

    @Test("a gear that plants LD_PRELOAD/LD_AUDIT in its cartridge's env gets its code loaded into its own processes only, never into root",
          .timeLimit(.minutes(2)))
    func plantedLoaderVariables() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let markers = Attack.sharedDirectory("markers")
        defer { TestFiles.remove(markers) }
        let library = try Attack.plantedLibrary(in: markers, markers: markers)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "mock")
        // The gear owns its cartridge directory: it swaps `env` for one that loads its library.
        let planted = try Attack.asGear(gear, """
            cd mock && mv env env.node && mkdir env && cp env.node/* env/ && \
            printf %s \(library) > env/LD_PRELOAD && printf %s \(library) > env/LD_AUDIT && \
            printf %s \(markers) > env/GCONV_PATH && printf %s \(library) > env/BASH_ENV
            """)
        #expect(planted.status == 0, "\(planted.stderr)")
        // What a broker, an admin or an unauthenticated wake request makes root do with that gear.
        let manager = node.manager
        try await onThread {
            _ = try? manager.control(gear.uuid, .restart)
            _ = try? manager.control(gear.uuid, .status)
            try manager.idle(gear.uuid)
            _ = try? manager.unidle(gear.uuid)
            _ = try? manager.deconfigure(gear.uuid, cartridge: "mock")
        }
        #expect(!TestFiles.exists(markers + "/loaded-by-0"), "the gear's library ran as root")
        #expect(TestFiles.exists(markers + "/loaded-by-\(gear.identity.uid)"), "the attack was live: the gear's own hooks loaded it")
    }

    @Test("the gear cannot write .env or .env/user_vars; loader and node variables are refused to the broker and users, and dropped if present")
    func environmentFilesAreRoots() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let written = try Attack.asGear(gear, "echo /tmp/x.so > .env/user_vars/LD_PRELOAD; echo x > .env/LD_AUDIT; echo y > .env/OPENSHIFT_GEAR_UUID")
        #expect(written.status != 0)
        #expect(!TestFiles.exists(gear.home + "/.env/user_vars/LD_PRELOAD") && !TestFiles.exists(gear.home + "/.env/LD_AUDIT"))
        #expect(TestFiles.read(gear.home + "/.env/OPENSHIFT_GEAR_UUID") == gear.uuid)
        #expect(mode(gear.home + "/.env")! == (0, gear.identity.gid, 0o750))
        #expect(mode(gear.home + "/.env/user_vars")! == (0, gear.identity.gid, 0o750))

        for name in ["LD_PRELOAD", "LD_AUDIT", "LD_LIBRARY_PATH", "GLIBC_TUNABLES", "GCONV_PATH", "BASH_ENV", "ENV", "PATH", "IFS"] {
            #expect(throws: GearsError.self, "user-var-add \(name)") { try node.manager.changeUserVariables(gear.uuid, set: [name: "/tmp/x"]) }
            #expect(throws: GearsError.self, "env-var-add \(name)") { try node.manager.setEnvironmentVariable(gear.uuid, name, "/tmp/x") }
        }
        _ = try node.manager.configure(gear.uuid, cartridge: "mock")
        for name in ["OPENSHIFT_GEAR_UUID", "OPENSHIFT_HOMEDIR", "OPENSHIFT_PRIMARY_CARTRIDGE_DIR", "OPENSHIFT_MOCK_IDENT",
                     "OPENSHIFT_MOCK_EXAMPLE_IP1", "OPENSHIFT_MOCK_EXAMPLE_PORT1", "HOME"] {
            #expect(throws: GearsError.self, "env-var-add \(name)") { try node.manager.setEnvironmentVariable(gear.uuid, name, "forged") }
        }
        #expect(TestFiles.read(gear.home + "/.env/OPENSHIFT_GEAR_UUID") == gear.uuid)
        // A variable another gear's cartridge publishes is still the broker's to set.
        try node.manager.setEnvironmentVariable(gear.uuid, "OPENSHIFT_MYSQL_DB_HOST", "10.0.0.5")
        #expect(TestFiles.read(gear.home + "/.env/OPENSHIFT_MYSQL_DB_HOST") == "10.0.0.5")
        // A user variable file left by an older node is not applied; nor does one shadow a cartridge's.
        try TestFiles.write(gear.home + "/.env/user_vars/LD_PRELOAD", "/tmp/x.so")
        try TestFiles.write(gear.home + "/.env/user_vars/OPENSHIFT_MOCK_EXAMPLE_IP1", "6.6.6.6")
        try TestFiles.write(gear.home + "/.env/user_vars/MY_SETTING", "mine")
        let environment = node.manager.environment(gear, cartridge: nil)
        #expect(environment["LD_PRELOAD"] == nil && environment["OPENSHIFT_MOCK_EXAMPLE_IP1"] != "6.6.6.6")
        #expect(environment["MY_SETTING"] == "mine")
    }

    @Test("oo-gear-exec is static and ignores its own environment: LD_PRELOAD given to it never loads as root; the gear's reaches only the gear",
          .timeLimit(.minutes(3)))
    func helperIgnoresLoaderVariables() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let markers = Attack.sharedDirectory("helper-markers")
        defer { TestFiles.remove(markers) }
        let library = try Attack.plantedLibrary(in: markers, markers: markers)
        let helper = ProcessRunner.executable("oo-gear-exec")
        #expect(try !elfRequestsInterpreter(helper), "no PT_INTERP: the kernel runs it without ld.so")
        // Started as root with loader variables in its own environment, as a careless caller would.
        var spec = GearExec(uid: 45020, gid: 45020, command: ["/usr/bin/env"])
        spec.environmentOnDescriptor3 = false
        let bare = try ProcessRunner.run([helper] + spec.arguments,
                                         environment: ["LD_PRELOAD": library, "LD_AUDIT": library, "GCONV_PATH": markers, "SECRET": "root's"])
        #expect(bare.status == 0, "\(bare.stderr)")
        #expect(bare.stdout.isEmpty, "the program's environment is only what came on descriptor 3: \(bare.stdout)")
        #expect(!TestFiles.exists(markers + "/loaded-by-0"))
        // The gear's own environment, with its LD_PRELOAD, applies to the gear's program only.
        spec.environmentOnDescriptor3 = true
        let result = try Spawner.run([helper] + spec.arguments, environment: ["LD_PRELOAD": library],
                                     input: GearExec.environmentBlock(["LD_PRELOAD": library, "GREETING": "hello"]), timeoutSeconds: 20)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.split(separator: "\n").sorted() == ["GREETING=hello", "LD_PRELOAD=\(library)"])
        #expect(!TestFiles.exists(markers + "/loaded-by-0"))
        #expect(TestFiles.exists(markers + "/loaded-by-45020"))
    }

    @Test("gear processes run with no_new_privs, no capability, and no descriptor of the node")
    func gearProcessesHoldNothingOfRoot() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        // A descriptor the daemon forgot to mark close-on-exec (a listening socket, say).
        let leaked = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let high = fcntl(leaked, F_DUPFD, 77)
        defer {
            close(leaked)
            close(high)
        }
        let result = try node.runAs(gear, ["/bin/sh", "-c", "grep -E 'NoNewPrivs|CapEff|CapBnd' /proc/$$/status; ls /proc/$$/fd"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("NoNewPrivs:\t1"))
        let descriptors = result.stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(Set(descriptors).isSubset(of: [0, 1, 2, 10]), "only the standard descriptors (and the shell's own): \(descriptors)")
        #expect(!descriptors.contains(Int(leaked)) && !descriptors.contains(Int(high)))
    }

    // MARK: 2. Root follows no link the gear plants

    @Test("racing configure and deconfigure with links swapped in for env/ never gives a root file to the gear", .timeLimit(.minutes(3)))
    func lockingRace() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let decoy = node.scratch.root + "/root-only"
        try Attack.rootOnlyDecoy(decoy, count: 20)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let log = node.scratch.root + "/attacker.log"
        // Swap mock/env (and mock/env/*) for links to the decoy as fast as the gear can.
        let attacker = try Attack.startAsGear(gear, """
            while :; do
              [ -d mock ] || continue
              mv -T mock/env mock/env.real 2>/dev/null; ln -sfn \(decoy) mock/env 2>/dev/null
              ln -sfn \(decoy)/secret0 mock/env/OPENSHIFT_MOCK_X 2>/dev/null
              rm -f mock/env 2>/dev/null; mv -T mock/env.real mock/env 2>/dev/null
            done
            """, log: log)
        defer { Attack.stop(attacker) }
        let manager = node.manager
        try await onThread {
            for _ in 0..<10 {
                _ = try? manager.configure(gear.uuid, cartridge: "mock")
                _ = try? manager.deconfigure(gear.uuid, cartridge: "mock")
            }
        }
        Attack.stop(attacker)
        #expect(mode(decoy)! == (0, 0, 0o700))
        #expect(Attack.intactDecoyFiles(decoy, count: 20) == 20, "every root file is still root's, mode 0600")
    }

    @Test("deconfigure removes the cartridge by descriptor: links planted and swapped in under it never make root delete outside",
          .timeLimit(.minutes(3)))
    func removalRace() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let decoy = node.scratch.root + "/root-only"
        try Attack.rootOnlyDecoy(decoy, count: 2000)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        let manager = node.manager
        for round in 0..<5 {
            // Links planted beforehand, and a directory of 2000 files swapped for a link while root removes it.
            let prepared = try await onThread {
                _ = try manager.configure(gear.uuid, cartridge: "mock")
                return try Attack.asGear(gear, """
                    ln -s \(decoy) mock/planted && mkdir -p mock/deep/a && ln -s \(decoy) mock/deep/a/planted && \
                    mkdir mock/big && i=0; while [ $i -lt 2000 ]; do : > mock/big/f$i; i=$((i+1)); done
                    """)
            }
            #expect(prepared.status == 0, "\(prepared.stderr)")
            let attacker = try Attack.startAsGear(gear, """
                while :; do mv -T mock/big mock/big.real 2>/dev/null && ln -sfn \(decoy) mock/big; rm -f mock/big; mv -T mock/big.real mock/big 2>/dev/null; done
                """, log: node.scratch.root + "/attacker\(round).log")
            let result = try await onThread { Result { try manager.deconfigure(gear.uuid, cartridge: "mock") } }
            Attack.stop(attacker)
            #expect(Attack.intactDecoyFiles(decoy, count: 2000) == 2000, "round \(round): root deleted files outside the gear")
            if case .success = result {
                #expect(!TestFiles.exists(gear.home + "/mock"), "round \(round): a successful deconfigure leaves no cartridge")
            }
            // Whatever the race left, the next deconfigure or configure starts clean.
            _ = try? manager.deconfigure(gear.uuid, cartridge: "mock")
            TestFiles.remove(gear.home + "/mock.real")
        }
        #expect(Attack.intactDecoyFiles(decoy, count: 2000) == 2000)
    }

    @Test("a hard link to a root file where a locked file goes is never handed to the gear (hosts with protected_hardlinks off)")
    func hardLinkedLockedFile() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let decoy = node.scratch.root + "/root-only"
        try Attack.rootOnlyDecoy(decoy, count: 1)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        // What a gear could do itself on a host with fs.protected_hardlinks=0: link a root file
        // to the path of one of mock's locked files, for configure's unlock to chown.
        #expect(link(decoy + "/secret0", gear.home + "/app-root/data/mock_gear_data_locked_file") == 0)
        _ = try? node.manager.configure(gear.uuid, cartridge: "mock")
        #expect(Attack.intactDecoyFiles(decoy, count: 1) == 1, "the root file stays root's")
    }

    @Test("gear A cannot read gear B's variables through a link in its cartridge's env")
    func crossGearEnvironment() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let a = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("a")))
        let b = try node.manager.create(GearCreateRequest(uuid: uniqueUUID("b")))
        _ = try node.manager.configure(a.uuid, cartridge: "mock")
        _ = try node.manager.configure(b.uuid, cartridge: "mock")
        try node.manager.changeUserVariables(b.uuid, set: ["B_SECRET": "b's password"])
        let planted = try Attack.asGear(a, """
            cd mock && mv env env.node && mkdir env && cp env.node/* env/ && \
            ln -s \(b.home)/.env/user_vars/B_SECRET env/STOLEN && ln -s \(b.home)/mock/env env/../envlink && \
            ln -s \(b.home)/.env/OPENSHIFT_GEAR_UUID env/OPENSHIFT_B_UUID
            """)
        #expect(planted.status == 0, "\(planted.stderr)")
        let environment = node.manager.environment(a, cartridge: nil)
        #expect(environment["STOLEN"] == nil && environment["OPENSHIFT_B_UUID"] == nil)
        #expect(!environment.values.contains("b's password") && !environment.values.contains(b.uuid))
        let hook = try node.runAs(a, ["/usr/bin/env"])
        #expect(!hook.stdout.contains("b's password") && !hook.stdout.contains(b.uuid))
    }

    // MARK: 4. The node never parses what the gear writes

    @Test("a gear's own manifest copy replaced by an alias bomb changes nothing: the node reads the repository's")
    func hostileManifestCopy() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "mock")
        let bomb = (1...9).map { "l\($0): &l\($0) [" + Array(repeating: "*l\($0 - 1)", count: 9).joined(separator: ",") + "]" }
        let text = "l0: &l0 [\"lol\"]\n" + bomb.joined(separator: "\n") + "\n"
        let replaced = try Attack.asGear(gear, """
            cd mock/metadata && mv manifest.yml manifest.node && cat > manifest.yml <<'EOF'
            \(text)EOF
            cp manifest.yml managed_files.yml 2>/dev/null; true
            """)
        #expect(replaced.status == 0, "\(replaced.stderr)")
        let before = peakResidentKilobytes()
        #expect(node.manager.cartridges(of: gear).map(\.ident) == ["redhat:mock:0.1:0.0.1"])
        #expect(node.manager.status(gear).cartridges == ["redhat:mock:0.1:0.0.1"])
        _ = try node.manager.control(gear.uuid, .status)
        _ = try node.manager.deconfigure(gear.uuid, cartridge: "mock")
        #expect(peakResidentKilobytes() - before < 100_000, "parsing the bomb would take gigabytes")
    }
}

/// Whether a 64-bit ELF executable names a program interpreter (a PT_INTERP program header):
/// only then does the dynamic loader, and so any loader variable, take part in running it.
func elfRequestsInterpreter(_ path: String) throws -> Bool {
    let bytes = try FileSystem.readBytes(path, limit: 64 << 20)
    func read<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
        bytes[offset..<offset + MemoryLayout<T>.size].reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }
    guard bytes.count > 64, bytes[0..<4] == [0x7f, 0x45, 0x4c, 0x46], bytes[4] == 2 else {
        throw TestFiles.Failure(description: "\(path) is not a 64-bit ELF file")
    }
    let headers = Int(read(32, as: UInt64.self)), size = Int(read(54, as: UInt16.self)), count = Int(read(56, as: UInt16.self))
    return (0..<count).contains { read(headers + $0 * size, as: UInt32.self) == 3 }
}

/// The peak resident set of this process (VmHWM), in KiB.
func peakResidentKilobytes() -> Int {
    let status = TestFiles.read("/proc/self/status") ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}
