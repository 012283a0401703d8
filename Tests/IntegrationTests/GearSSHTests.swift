import Containment
import Foundation
import NodeConfig
import NodeTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Users reach their gears over SSH: a real sshd (private configuration, loopback port), real
/// gears in node mode created through the built `oo-devel-node`, keys added through the agent,
/// the real `ssh` and `git` clients, and the built `oo-trap-user` as the gears' shell. The trap
/// is copied into the node's bin directory next to a stand-in for the in-gear `gear` tool that
/// prints the argv it receives and what the process is (no_new_privs, cgroups, environment), so
/// each test sees exactly what the trap ran and how; the snapshot test uses the real `gear`.
@Suite("users reach their gears over SSH (node mode, real sshd)",
       .enabled(if: Prerequisites.rootOrCI), .serialized)
struct GearSSHTests {
    /// Whether OpenSSH and git are there; under CI a missing one fails instead of skipping.
    static var toolProblem: String? {
        if !SSHServer.isInstalled { return "openssh-server and openssh-client are not installed (.ci/setup installs them)" }
        if access("/usr/bin/git", X_OK) != 0 { return "git is not installed (.ci/setup installs it)" }
        return nil
    }

    static func requirements() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        try #require(toolProblem == nil, "\(toolProblem ?? "")")
    }

    @Test("a key added through the agent logs in; removed, it no longer does; another gear's key does not open the gear",
          .timeLimit(.minutes(3)))
    func keysOpenTheirGearOnly() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("keys")
        defer { node.destroy() }
        let a = try await node.createGear()
        let b = try await node.createGear()
        let keyA = try SSHServer.generateKey(in: node.clientDirectory, name: "a")
        let keyB = try SSHServer.generateKey(in: node.clientDirectory, name: "b")
        #expect(try await node.ssh(a, keyA, "true").status == 255, "no key yet: refused")
        try await node.addKey(a, keyA)
        try await node.addKey(b, keyB)
        let login = try await node.ssh(a, keyA, "true")
        #expect(login.status == 0, "ssh \(a.uuid)@127.0.0.1 true: \(login.stderr)\n\(node.server.logTail())")
        #expect(try await node.ssh(a, keyB, "true").status == 255, "gear B's key does not open gear A")
        try await node.removeKey(a, keyA)
        #expect(try await node.ssh(a, keyA, "true").status == 255, "a removed key no longer logs in")
        #expect(try await node.ssh(b, keyB, "true").status == 0)
    }

    @Test("the allowed commands run, each with the argv the trap built; anything else runs nothing and says why on stderr",
          .timeLimit(.minutes(3)))
    func dispatch() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("dispatch")
        defer { node.destroy() }
        let gear = try await node.createGear()
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(gear, key)
        let syslog = SyslogCapture()
        defer { syslog?.close() }

        // The gear tool beside the trap gets the user's words exactly, with no shell in between.
        let tool = try await node.ssh(gear, key, #"gear deploy "two words" '$(id)' --hot-deploy"#)
        #expect(tool.status == 0, "\(tool.stderr)")
        #expect(SSHNode.arguments(tool.stdout) == ["deploy", "two words", "$(id)", "--hot-deploy"])
        for (command, expected) in [("snapshot", ["snapshot"]), ("restore", ["restore"]), ("restore INCLUDE_GIT", ["restore", "--restore-git-repo"]),
                                    ("ctl_all stop", ["stop"]), ("ctl_all restart", ["restart"]),
                                    ("oo-binary-deploy --hot-deploy", ["binary-deploy", "--hot-deploy"])] {
            let result = try await node.ssh(gear, key, command)
            #expect(result.status == 0 && SSHNode.arguments(result.stdout) == expected, "\(command): \(result.stdout) \(result.stderr)")
        }
        #expect(try await node.ssh(gear, key, "true").status == 0)
        let quota = try await node.ssh(gear, key, "quota")
        if access("/usr/bin/quota", X_OK) == 0 {
            #expect(quota.status != 126 && quota.status != 127, "\(quota.stderr)")
        } else {
            #expect(quota.status == 127 && quota.stderr.contains("quota is not installed"), "\(quota.stderr)")
        }

        // What the original handed to bash -c runs nothing here.
        let marker = node.root + "/pwned"
        for command in ["cat /etc/shadow; id", "touch \(marker); id", "id", "bash -c 'touch \(marker)'", "/bin/sh",
                        "true; touch \(marker)", "ctl_all start; touch \(marker)", "restore --anything", "snapshot now",
                        "gear 'unterminated", "rsync --server . /tmp"] {
            let refused = try await node.ssh(gear, key, command)
            #expect(refused.stdout.isEmpty, "\(command): stdout must stay empty (it is git's stream): \(refused.stdout)")
            #expect(refused.stderr.contains("oo-trap-user: "), "\(command): \(refused.stderr)")
            // `true; ...` is the word `true;`, `ctl_all start;` is not start: refused, not run.
            #expect(refused.status == 126, "\(command) is refused with 126: \(refused.status) \(refused.stderr)")
        }
        #expect(!TestFiles.exists(marker), "a refused command ran")

        // One audit line per login, refused ones included, a newline in the command escaped.
        #expect(try await node.ssh(gear, key, "gear one\ntwo").status == 0)
        if let syslog {
            let lines = syslog.messages()
            #expect(lines.contains { $0.contains("oo-trap-user[") && $0.hasSuffix("oo_login: None from: 127.0.0.1 gearUuid=\(gear.uuid) cmd=cat /etc/shadow; id") },
                    "\(lines)")
            #expect(lines.contains { $0.hasSuffix("gearUuid=\(gear.uuid) cmd=gear one\\ntwo") }, "\(lines)")
            #expect(lines.filter { $0.hasSuffix("gearUuid=\(gear.uuid) cmd=true") }.count == 1)
        }
    }

    @Test("over SSH, snapshot streams the gear and restore brings its data back byte for byte into a re-created gear; a hostile archive changes nothing",
          .timeLimit(.minutes(4)))
    func snapshotAndRestore() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("snapshot", realGear: true)
        defer { node.destroy() }
        let uuid = "s" + String(UInt64.random(in: 0...UInt64.max) & 0xffff_ffff_ffff, radix: 16)
        var gear = try await node.createGear(uuid: uuid)
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(gear, key)
        #expect(try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        #expect(try await node.devel(["start", "--with-container-uuid", uuid]).status == 0)
        let token = try await node.devel(["agent", "cartridge_do", "action=broker-auth-key-add", "cartridge=mock", "--in-process",
                                          #"args={"--with-container-uuid":"\#(uuid)","--with-iv":"aXY=","--with-token":"c2VjcmV0LXRva2Vu"}"#])
        #expect(token.status == 0, "\(token.stdout) \(token.stderr)")
        let written = try await node.asGear(gear, """
            mkdir -p app-root/data/mine/deep/er && head -c 300000 /dev/urandom > app-root/data/mine/blob.bin \
            && printf 'text\\n' > 'app-root/data/mine/deep/er/with space' && ln -s deep/er app-root/data/mine/link \
            && chmod 640 app-root/data/mine/blob.bin && echo 'history' > app-root/data/.bash_history
            """)
        #expect(written.status == 0, "\(written.stderr)")
        let before = Self.tree(gear.home + "/app-root/data/mine")
        #expect(before.count == 5, "\(before.keys.sorted())")

        let archive = node.root + "/app.tar.gz"
        let snapshot = try await node.sshStreaming(gear, key, "snapshot", stdout: archive)
        #expect(snapshot.status == 0, "ssh snapshot: \(snapshot.stderr)")
        let listing = try await onThread { try ProcessRunner.run(["/bin/tar", "-tzf", archive]) }
        #expect(listing.status == 0 && listing.stdout.contains("./\(uuid)/app-root/data/mine/blob.bin"), "\(listing.stderr)")
        for secret in ["/.auth/", "/.ssh/", "/.bash_history"] {
            #expect(!listing.stdout.contains(secret), "the archive holds \(secret)")
        }
        #expect(TestFiles.read(gear.home + "/app-root/runtime/.state")?.hasPrefix("started") == true, "snapshot starts the gear again")

        // The gear goes away and comes back empty, as on another node.
        #expect(try await node.devel(["app-destroy", "--with-container-uuid", uuid]).status == 0)
        gear = try await node.createGear(uuid: uuid)
        try await node.addKey(gear, key)
        #expect(try await node.devel(["configure", "--with-container-uuid", uuid, "--cart-name", "mock"]).status == 0)
        #expect(!TestFiles.exists(gear.home + "/app-root/data/mine"))

        // A hostile archive first: refused, and nothing of the gear changes.
        let hostile = node.root + "/hostile.tar.gz"
        let made = try await onThread { try ProcessRunner.run(["/usr/bin/python3", "-c", Self.hostileArchiveScript, hostile, uuid]) }
        #expect(made.status == 0, "\(made.stderr)")
        let untouched = Self.tree(gear.home + "/app-root/data")
        let refused = try await node.sshStreaming(gear, key, "restore", stdin: hostile, stdout: node.root + "/hostile.out")
        #expect(refused.status != 0 && refused.stderr.contains("leaves the gear"), "ssh restore < hostile: \(refused.status) \(refused.stderr)")
        #expect(Self.tree(gear.home + "/app-root/data") == untouched, "a refused archive changed the gear")
        #expect(!TestFiles.exists(node.root + "/escaped"))

        let restore = try await node.sshStreaming(gear, key, "restore", stdin: archive, stdout: node.root + "/restore.out")
        #expect(restore.status == 0, "ssh restore: \(restore.stderr)")
        #expect(Self.tree(gear.home + "/app-root/data/mine") == before, "the restored data differs")
    }

    /// Hostile archive: a valid-looking member, then one whose link leaves the gear.
    static let hostileArchiveScript = """
        import io, sys, tarfile
        out, uuid = sys.argv[1], sys.argv[2]
        with tarfile.open(out, "w:gz") as archive:
            for name in [uuid, uuid + "/app-root", uuid + "/app-root/data"]:
                info = tarfile.TarInfo("./" + name); info.type = tarfile.DIRTYPE; info.mode = 0o755
                archive.addfile(info)
            data = b"fine"
            info = tarfile.TarInfo("./" + uuid + "/app-root/data/fine.txt"); info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
            info = tarfile.TarInfo("./" + uuid + "/app-root/data/out"); info.type = tarfile.SYMTYPE; info.linkname = "../../../../escaped"
            archive.addfile(info)
        """

    /// path -> kind, mode and content (or link target) of every entry below `root`, links not followed.
    static func tree(_ root: String) -> [String: String] {
        var result: [String: String] = [:]
        func walk(_ relative: String) {
            let path = relative.isEmpty ? root : root + "/" + relative
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return }
            for name in names {
                let child = relative.isEmpty ? name : relative + "/" + name
                var st = stat()
                guard lstat(root + "/" + child, &st) == 0 else { continue }
                let mode = String(st.st_mode & 0o7777, radix: 8)
                switch st.st_mode & S_IFMT {
                case S_IFDIR: result[child] = "dir \(mode)"; walk(child)
                case S_IFLNK: result[child] = "link " + ((try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/" + child)) ?? "?")
                default:
                    let bytes = (try? FileSystem.readBytes(root + "/" + child, limit: 1 << 24)) ?? []
                    result[child] = "file \(mode) \(bytes.count) \(bytes.reduce(into: UInt64(14695981039346656037)) { $0 = ($0 ^ UInt64($1)) &* 1099511628211 })"
                }
            }
        }
        walk("")
        return result
    }

    @Test("only a key's forced command sets OPENSHIFT_LOGIN: a session sshd reports as Kerberos (ExposeAuthInfo) cannot claim a login",
          .timeLimit(.minutes(2)))
    func loginOnlyFromKeys() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("login")
        defer { node.destroy() }
        let gear = try await node.createGear()
        let cases = [("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\n", "mallory"), ("gssapi-with-mic\n", "unset"),
                     ("publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5\ngssapi-with-mic\n", "unset")]
        for (index, (methods, expected)) in cases.enumerated() {
            let auth = node.root + "/auth-\(index)"
            try TestFiles.write(auth, methods, mode: 0o644)
            let (trap, config) = (node.trap, node.config)
            let result = try await onThread {
                try ProcessRunner.run(["/usr/bin/setpriv", "--reuid=\(gear.uid)", "--regid=\(gear.uid)", "--clear-groups",
                                       "--inh-caps=-all", "--bounding-set=-all", "--", trap, "-c", "OPENSHIFT_LOGIN=mallory \(trap)"],
                                      environment: ["OPENSHIFT_NODE_CONF": config, "SSH_ORIGINAL_COMMAND": "gear who",
                                                    "SSH_USER_AUTH": auth, "SSH_CLIENT": "127.0.0.1 40000 22"])
            }
            #expect(result.status == 0, "\(methods): \(result.stderr)")
            #expect(SSHNode.values(result.stdout)["login"] == expected, "\(methods): \(result.stdout)")
        }
    }

    @Test("git reaches the gear's own repositories only: upload-pack and receive-pack work, paths out of ~/git are refused with 3",
          .timeLimit(.minutes(3)))
    func gitPaths() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("git")
        defer { node.destroy() }
        let gear = try await node.createGear()
        let other = try await node.createGear()
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(gear, key)
        try await node.makeRepository(gear, "x")
        try await node.makeRepository(other, "x")

        // The real git client, through the URL the broker hands out.
        let url = "ssh://\(gear.uuid)@127.0.0.1:\(node.server.port)/~/git/x.git/"
        let gitSSH = ([SSHServer.sshPath] + node.server.clientOptions(key: key.path).filter { $0 != "-p" && $0 != "\(node.server.port)" })
            .joined(separator: " ")
        let environment = ["GIT_SSH_COMMAND": gitSSH, "HOME": node.clientDirectory]
        let refs = try await onThread { try ProcessRunner.run(["/usr/bin/git", "ls-remote", url], environment: environment) }
        #expect(refs.status == 0 && refs.stdout.contains("refs/heads/master"), "git ls-remote: \(refs.stderr)")
        let clone = node.clientDirectory + "/clone"
        let cloned = try await onThread { try ProcessRunner.run(["/usr/bin/git", "clone", "-q", url, clone], environment: environment) }
        #expect(cloned.status == 0, "git clone: \(cloned.stderr)")
        let pushed = try await onThread { () throws -> ProcessRunner.Result in
            _ = try ProcessRunner.run(["/usr/bin/git", "-C", clone, "-c", "user.name=t", "-c", "user.email=t@example.com",
                                       "commit", "-q", "--allow-empty", "-m", "pushed over ssh"], environment: environment)
            return try ProcessRunner.run(["/usr/bin/git", "-C", clone, "push", "-q", "origin", "master"], environment: environment)
        }
        #expect(pushed.status == 0, "git push: \(pushed.stderr)")
        let log = try await onThread { try ProcessRunner.run(["/usr/bin/git", "-c", "safe.directory=*", "--git-dir", gear.home + "/git/x.git", "log", "-1", "--format=%s"]) }
        #expect(log.stdout == "pushed over ssh\n", "receive-pack wrote into the gear's repository")

        // A link the gear plants in its own ~/git that points out.
        let planted = try await node.asGear(gear, "ln -s /etc git/etc.git && ln -s \(other.home)/git/x.git git/other.git")
        #expect(planted.status == 0, "\(planted.stderr)")
        for path in ["'../other'", "/etc", "'~/../\(other.uuid)/git/x.git'", "\(other.home)/git/x.git", "'~/git/etc.git'",
                     "'~/git/other.git'", "'~/git/x.git/../../.ssh'", "'~/git'", "'~/git/missing.git'", "'~'"] {
            for command in ["git-upload-pack", "git-receive-pack"] {
                let refused = try await node.ssh(gear, key, "\(command) \(path)")
                #expect(refused.status == 3, "\(command) \(path): \(refused.status) \(refused.stderr)")
                #expect(refused.stdout.isEmpty && refused.stderr.contains("Invalid repository"), "\(command) \(path): \(refused.stderr)")
            }
        }
        let untouched = try await onThread { try ProcessRunner.run(["/usr/bin/git", "-c", "safe.directory=*", "--git-dir", other.home + "/git/x.git", "log", "-1", "--format=%s"]) }
        #expect(untouched.stdout == "initial\n")
    }

    @Test("tail follows the gear's own regular files only: absolute paths, .., and links out are refused", .timeLimit(.minutes(3)))
    func tailPaths() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("tail")
        defer { node.destroy() }
        let gear = try await node.createGear()
        let other = try await node.createGear()
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(gear, key)
        let written = try await node.asGear(gear, "printf 'one\\ntwo\\nthree\\n' > app-root/logs/app.log")
        #expect(written.status == 0, "\(written.stderr)")
        let secret = try await node.asGear(other, "echo other-secret > app-root/logs/secret.log")
        #expect(secret.status == 0, "\(secret.stderr)")

        // rhc's form: options in base64, a glob; tail follows (-f) until the client goes.
        let options = Data("-n 2".utf8).base64EncodedString()
        let followed = try await node.sshUntil(gear, key, "tail --opts \(options) 'app-root/logs/*.log'") { $0.contains("three") }
        #expect(followed.contains("two\nthree") && !followed.contains("one"), "tail -n 2 -f: \(followed)")

        let planted = try await node.asGear(gear, "ln -s /etc/passwd app-root/logs/passwd.log && ln -s \(other.home)/app-root/logs/secret.log app-root/logs/other.log")
        #expect(planted.status == 0, "\(planted.stderr)")
        let cases: [(String, [Int32])] = [("tail /etc/passwd", [88]), ("tail ../x", [88]), ("tail '~/../x'", [88]),
                                 ("tail app-root/logs/passwd.log", [88]), ("tail app-root/logs/other.log", [88, 91]),
                                 ("tail 'app-root/logs/*'", [88, 91]), ("tail --opts \(Data("/etc/passwd".utf8).base64EncodedString()) x", [88]),
                                 ("tail --opts \(Data("--pid=1".utf8).base64EncodedString()) app-root/logs/app.log", [88]),
                                 ("tail 'nothing*'", [32])]
        for (command, codes) in cases {
            let refused = try await node.ssh(gear, key, command)
            #expect(codes.contains(refused.status), "\(command): \(refused.status) \(refused.stderr)")
            #expect(refused.stdout.isEmpty && refused.stderr.contains("oo-trap-user: "), "\(command): \(refused.stdout)")
        }
    }

    @Test("a login runs with no_new_privs, in the gear's cgroup, with the gear's environment and cartridge PATH, and no user LD_PRELOAD",
          .timeLimit(.minutes(3)))
    func processAndEnvironment() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("environment")
        defer { node.destroy() }
        let gear = try await node.createGear()
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(gear, key)
        let configured = try await node.devel(["configure", "--with-container-uuid", gear.uuid, "--cart-name", "mock"])
        #expect(configured.status == 0, "\(configured.stderr)")
        try TestFiles.write(gear.home + "/mock/env/OPENSHIFT_MOCK_PATH_ELEMENT", "/opt/mock-bin")
        try TestFiles.write(gear.home + "/.env/user_vars/LD_PRELOAD", "/nonexistent/planted.so")
        try TestFiles.write(gear.home + "/.env/user_vars/MY_SETTING", "mine")

        let probe = try await node.ssh(gear, key, "gear probe")
        #expect(probe.status == 0, "\(probe.stderr)")
        let values = SSHNode.values(probe.stdout)
        #expect(values["NoNewPrivs"] == "1", "\(probe.stdout)")
        #expect(values["uuid"] == gear.uuid)
        #expect(values["path"]?.hasPrefix("/opt/mock-bin:") == true && values["path"]?.hasSuffix(":/usr/local/bin:/usr/bin:/bin") == true,
                "\(values["path"] ?? "")")
        #expect(values["ld_preload"] == "unset" && values["user_var"] == "mine")
        #expect(values["umask"] == "0077")
        #expect(values["ssh_client"]?.hasPrefix("127.0.0.1 ") == true)
        if case .v1(let controllers) = CgroupHierarchy.detect() {
            let lines = probe.stdout.split(separator: "\n").filter { $0.hasPrefix("cgroup=") }
            for controller in ["cpu", "cpuacct", "memory", "pids", "freezer"] where controllers[controller] != nil {
                let line = lines.first { $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains(Substring(controller)) == true }
                #expect(line?.hasSuffix("/\(SSHNode.cgroupRoot)/\(gear.uuid)") == true, "\(controller): \(line ?? "none")")
            }
            // The gear can move itself into its cgroup, not out of it.
            let escape = try await node.asGear(gear, "echo $$ > \(controllers["memory"] ?? "/nonexistent")/cgroup.procs")
            #expect(escape.status != 0, "a gear process moved itself into the root cgroup")
        }

        // The same through the interactive shell (ssh -T, commands on stdin).
        let script = node.root + "/script"
        try TestFiles.write(script, """
            echo "uuid=$OPENSHIFT_GEAR_UUID"
            echo "path=$PATH"
            echo "ld_preload=${LD_PRELOAD-unset}"
            grep NoNewPrivs /proc/self/status | tr -d '\\t' | tr : =
            type ctl_all >/dev/null && echo "ctl_all=defined"
            echo "dns=$OPENSHIFT_GEAR_DNS"
            exit 0

            """)
        let shell = try await node.ssh(gear, key, nil, stdin: script, options: ["-T"])
        let shellValues = SSHNode.values(shell.stdout)
        #expect(shell.status == 0, "\(shell.stderr)")
        #expect(shellValues["uuid"] == gear.uuid && shellValues["ld_preload"] == "unset" && shellValues["NoNewPrivs"] == "1", "\(shell.stdout)")
        #expect(shellValues["path"]?.hasPrefix("/opt/mock-bin:") == true && shellValues["ctl_all"] == "defined")
        #expect(shell.stderr.contains("Welcome to OpenShift shell"), "the welcome goes to stderr")

        // A forced command with the broker's OPENSHIFT_LOGIN prefix sets it; the words are not the user's command.
        let line = "command=\"OPENSHIFT_LOGIN=alice@example.com \(node.trap)\",no-X11-forwarding \(key.type) \(key.body) OPENSHIFT-\(gear.uuid)-alice"
        try TestFiles.write(gear.home + "/.ssh/authorized_keys", line + "\n", mode: 0o640)
        chown(gear.home + "/.ssh/authorized_keys", 0, gear.uid)
        let withLogin = try await node.ssh(gear, key, "gear probe")
        #expect(SSHNode.values(withLogin.stdout)["login"] == "alice@example.com", "\(withLogin.stdout) \(withLogin.stderr)")
    }

    @Test("as gear A over SSH, gear B's home, environment and keys can be neither read nor written", .timeLimit(.minutes(3)))
    func otherGearsAreClosed() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("isolation")
        defer { node.destroy() }
        let a = try await node.createGear()
        let b = try await node.createGear()
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(a, key)
        let keyB = try SSHServer.generateKey(in: node.clientDirectory, name: "b")
        try await node.addKey(b, keyB)
        let script = node.root + "/attack"
        try TestFiles.write(script, """
            cat \(b.home)/.env/OPENSHIFT_GEAR_UUID && echo READ-ENV
            cat \(b.home)/.ssh/authorized_keys && echo READ-KEYS
            ls \(b.home)/ && echo LISTED-HOME
            echo x > \(b.home)/app-root/data/planted && echo WROTE-DATA
            echo key >> \(b.home)/.ssh/authorized_keys && echo WROTE-KEYS
            echo attack-finished
            exit 0

            """)
        let result = try await node.ssh(a, key, nil, stdin: script, options: ["-T"])
        #expect(result.stdout.contains("attack-finished"), "the shell ran the script: \(result.stdout) \(result.stderr)")
        for marker in ["READ-ENV", "READ-KEYS", "LISTED-HOME", "WROTE-DATA", "WROTE-KEYS"] {
            #expect(!result.stdout.contains(marker), "gear A could \(marker)")
        }
        #expect(!result.stdout.contains(b.uuid), "gear B's uuid leaked: \(result.stdout)")
        #expect(!TestFiles.exists(b.home + "/app-root/data/planted"))
        #expect(try await node.ssh(b, keyB, "true").status == 0, "gear B's keys are intact")
    }

    @Test("openshift-node sshd-config prints the node's settings; --standalone writes a configuration sshd runs and gears log in through",
          .timeLimit(.minutes(3)))
    func sshdConfigCommand() async throws {
        try Self.requirements()
        let node = try await SSHNode.start("standalone")
        defer { node.destroy() }
        let printed = try ProcessRunner.node("openshift-node", ["sshd-config", "--config", node.config])
        #expect(printed.status == 0)
        for setting in ["AuthorizedKeysFile .ssh/authorized_keys", "StrictModes yes", "UsePAM yes", "PasswordAuthentication no",
                        "GSSAPIAuthentication yes", "AcceptEnv GIT_PROTOCOL", "PermitUserEnvironment no", "MaxSessions 40",
                        "Subsystem sftp /usr/lib/openssh/sftp-server"] {
            #expect(printed.stdout.split(separator: "\n").contains(Substring(setting)), "missing \(setting)")
        }
        // The tests' sshd runs with exactly the node's settings.
        #expect(printed.stdout.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map(String.init) == SSHServer.nodeSettings)
        let gear = try await node.createGear()
        let key = try SSHServer.generateKey(in: node.clientDirectory)
        try await node.addKey(gear, key)
        let directory = node.root + "/standalone"
        let port = HTTPProbe.freePort()
        let written = try ProcessRunner.node("openshift-node", ["sshd-config", "--standalone", "\(port)", "--directory", directory,
                                                                "--config", node.config])
        #expect(written.status == 0 && written.stdout == directory + "/sshd_config\n", "\(written.stderr)")
        let text = TestFiles.read(directory + "/sshd_config") ?? ""
        #expect(text.contains("SetEnv OPENSHIFT_NODE_CONF=\(node.config)\n") && text.contains("ListenAddress 127.0.0.1\n"))
        let server = try await onThread { try SSHServer.start(configuration: directory + "/sshd_config", port: port, directory: directory) }
        defer { server.stop() }
        let login = try await onThread {
            try ProcessRunner.run([SSHServer.sshPath] + server.clientOptions(key: key.path) + ["\(gear.uuid)@127.0.0.1", "gear", "probe"])
        }
        #expect(login.status == 0 && SSHNode.arguments(login.stdout) == ["probe"], "\(login.stderr)\n\(server.logTail())")
        let bad = try ProcessRunner.node("openshift-node", ["sshd-config", "--standalone", "\(port)", "--directory", "/tmp/a b"])
        #expect(bad.status == 2 && bad.stderr.contains("--directory"), "\(bad.stderr)")
    }
}

/// What the gear shell does before it knows whose login it is.
@Suite("the gear shell's configuration and arguments")
struct GearShellStartTests {
    @Test("a malformed node.conf stops every login with 'Error in node configuration' on stderr and exit 2")
    func malformedConfiguration() throws {
        let scratch = TestFiles.temporaryDirectory("trap-conf")
        defer { TestFiles.remove(scratch) }
        for text in ["GEAR_BASE_DIR=/a b\n", "just words\n", "SYSLOG_GEAR_LOGIN=maybe\n", "X=\"unterminated\n", "9X=1\n"] {
            try TestFiles.write(scratch + "/node.conf", text)
            let result = try ProcessRunner.node("oo-trap-user", ["-c", "true"], environment: ["OPENSHIFT_NODE_CONF": scratch + "/node.conf"])
            #expect(result.status == 2 && result.stdout.isEmpty, "\(text): \(result.status) \(result.stdout)")
            #expect(result.stderr.hasPrefix("oo-trap-user: Error in node configuration"), "\(text): \(result.stderr)")
        }
        try TestFiles.write(scratch + "/node.conf", "# fine\nexport OPENSHIFT_CGROUP_ROOT=\"/openshift\" # comment\nSYSLOG_GEAR_LOGIN='false'\n")
        let good = try ProcessRunner.node("oo-trap-user", ["-c", "true"], environment: ["OPENSHIFT_NODE_CONF": scratch + "/node.conf"])
        #expect(good.status != 2, "a valid file is accepted: \(good.stderr)")
    }

    @Test("the gear shell is only a login shell (no argument, or -c COMMAND), and only for gear accounts")
    func onlyAsALoginShell() throws {
        let other = try ProcessRunner.node("oo-trap-user", ["--help"])
        #expect(other.status == 126 && other.stdout.isEmpty && other.stderr.contains("runs as a login shell"), "\(other.stderr)")
        if geteuid() == 0 {
            let root = try ProcessRunner.node("oo-trap-user", ["-c", "true"], environment: ["OPENSHIFT_NODE_CONF": "/nonexistent/node.conf"])
            #expect(root.status == 1 && root.stderr.contains("account root (uid 0, home /root) is not a gear of this node"), "\(root.stderr)")
        }
    }
}

/// A node-mode node for SSH tests: its gear base under `SSHServer.testBase` (sshd's StrictModes
/// refuses homes under /tmp), the trap copied to `<root>/bin/oo-trap-user` with a stand-in `gear`
/// beside it, a node.conf whose GEAR_SHELL is that copy, and a running sshd.
final class SSHNode: @unchecked Sendable {
    struct GearAccount: Sendable {
        var uuid: String
        var uid: UInt32
        var home: String
    }

    static let cgroupRoot = "openshift-node-ssh-tests"
    static let uids = 48800...48899

    let root: String
    let config: String
    let trap: String
    let clientDirectory: String
    let server: SSHServer
    private let gears = Mutex<[GearAccount]>([])

    /// The stand-in for the in-gear `gear` tool: its argv, then what the process is.
    static let gearStandIn = """
        #!/bin/sh
        for argument in "$@"; do printf 'arg=[%s]\\n' "$argument"; done
        grep '^NoNewPrivs' /proc/self/status | tr -d '\\t' | tr : =
        sed 's/^/cgroup=/' /proc/self/cgroup
        printf 'uuid=%s\\n' "$OPENSHIFT_GEAR_UUID"
        printf 'path=%s\\n' "$PATH"
        printf 'ld_preload=%s\\n' "${LD_PRELOAD-unset}"
        printf 'user_var=%s\\n' "${MY_SETTING-unset}"
        printf 'login=%s\\n' "${OPENSHIFT_LOGIN-unset}"
        printf 'ssh_client=%s\\n' "$SSH_CLIENT"
        printf 'umask=%s\\n' "$(umask)"

        """

    /// `realGear`: the built in-gear `gear` tool beside the trap instead of the stand-in.
    /// `uids`: the node's GEAR_MIN_UID...GEAR_MAX_UID (suites running side by side use their own).
    static func start(_ label: String, realGear: Bool = false, uids: ClosedRange<Int> = SSHNode.uids) async throws -> SSHNode {
        try await onThread { try SSHNode(label, realGear: realGear, uids: uids) }
    }

    private init(_ label: String, realGear: Bool, uids: ClosedRange<Int>) throws {
        root = try SSHServer.scratchDirectory("ssh-\(label)")
        let bin = root + "/bin"
        guard mkdir(bin, 0o755) == 0, mkdir(root + "/gears", 0o755) == 0, mkdir(root + "/client", 0o700) == 0 else {
            throw TestFiles.Failure(description: "mkdir in \(root): errno \(errno)")
        }
        chmod(bin, 0o755)
        chmod(root + "/gears", 0o755)
        clientDirectory = root + "/client"
        trap = bin + "/oo-trap-user"
        try TestFiles.write(trap, bytes: try FileSystem.readBytes(ProcessRunner.executable("oo-trap-user"), limit: 64 << 20), mode: 0o755)
        if realGear {
            try TestFiles.write(bin + "/gear", bytes: try FileSystem.readBytes(ProcessRunner.executable("gear"), limit: 256 << 20), mode: 0o755)
        } else {
            try TestFiles.write(bin + "/gear", Self.gearStandIn, mode: 0o755)
        }
        chmod(trap, 0o755)
        chmod(bin + "/gear", 0o755)
        config = root + "/node.conf"
        try TestFiles.write(config, """
            GEAR_BASE_DIR=\(root)/gears
            CARTRIDGE_REPO_DIR=\(root)/repository
            CARTRIDGE_BASE_PATH=\(shippedCartridgesPath)
            GEAR_MIN_UID=\(uids.lowerBound)
            GEAR_MAX_UID=\(uids.upperBound)
            GEAR_SHELL=\(trap)
            GEAR_TOOL=\(bin)/gear
            OPENSHIFT_CGROUP_ROOT=\(Self.cgroupRoot)
            OPENSHIFT_HTTP_CONF_DIR=\(root)/httpd
            LAST_ACCESS_DIR=\(root)/last_access
            AGENT_SOCKET=\(root)/agent.sock
            FRONTEND_WAKE_PORT=0
            SYSLOG_GEAR_LOGIN=true
            """)
        let rescan = try ProcessRunner.node("oo-admin-cartridge", ["--action", "rescan", "--config", config])
        guard rescan.status == 0 else { throw TestFiles.Failure(description: "rescan: \(rescan.stderr)") }
        do {
            server = try SSHServer.start(nodeConf: config)
        } catch {
            TestFiles.remove(root)
            throw error
        }
    }

    func devel(_ arguments: [String]) async throws -> ProcessRunner.Result {
        let config = config
        return try await onThread { try ProcessRunner.node("oo-devel-node", arguments + ["--config", config]) }
    }

    func createGear(uuid given: String? = nil) async throws -> GearAccount {
        let uuid = given ?? "s" + String(UInt64.random(in: 0...UInt64.max) & 0xffff_ffff_ffff, radix: 16)
        let created = try await devel(["app-create", "--with-container-uuid", uuid, "--with-app-name", "app", "--with-namespace", "ns"])
        guard created.status == 0, let uid = created.stdout.split(separator: " ").last.flatMap({ UInt32($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        else { throw TestFiles.Failure(description: "app-create \(uuid): \(created.stdout) \(created.stderr)") }
        let gear = GearAccount(uuid: uuid, uid: uid, home: root + "/gears/" + uuid)
        gears.withLock { $0.append(gear) }
        return gear
    }

    /// The broker's way: `cartridge_do authorized-ssh-key-add` through the agent.
    func addKey(_ gear: GearAccount, _ key: (path: String, type: String, body: String)) async throws {
        let arguments = #"{"--with-container-uuid":"\#(gear.uuid)","--with-ssh-key":"\#(key.body)","--with-ssh-key-type":"\#(key.type)","--with-ssh-key-comment":"test"}"#
        let result = try await devel(["agent", "cartridge_do", "action=authorized-ssh-key-add", "cartridge=mock", "args=" + arguments, "--in-process"])
        guard result.status == 0 else { throw TestFiles.Failure(description: "authorized-ssh-key-add: \(result.stdout) \(result.stderr)") }
    }

    func removeKey(_ gear: GearAccount, _ key: (path: String, type: String, body: String)) async throws {
        let arguments = #"{"--with-container-uuid":"\#(gear.uuid)","--with-ssh-key":"\#(key.body)"}"#
        let result = try await devel(["agent", "cartridge_do", "action=authorized-ssh-key-remove", "cartridge=mock", "args=" + arguments, "--in-process"])
        guard result.status == 0 else { throw TestFiles.Failure(description: "authorized-ssh-key-remove: \(result.stdout) \(result.stderr)") }
    }

    func ssh(_ gear: GearAccount, _ key: (path: String, type: String, body: String), _ command: String?, stdin: String = "/dev/null",
             options: [String] = []) async throws -> ProcessRunner.Result {
        let server = server
        return try await onThread { try server.ssh(user: gear.uuid, key: key.path, command: command, stdin: stdin, options: options) }
    }

    /// Runs `ssh <gear> <command>` with stdin and stdout on files (binary streams: archives); its
    /// exit status and stderr.
    func sshStreaming(_ gear: GearAccount, _ key: (path: String, type: String, body: String), _ command: String,
                      stdin: String = "/dev/null", stdout: String) async throws -> (status: Int32, stderr: String) {
        let server = server
        return try await onThread {
            let pid = try ProcessRunner.spawn([SSHServer.sshPath] + server.clientOptions(key: key.path) + ["\(gear.uuid)@127.0.0.1", command],
                                              stdout: stdout, stderr: stdout + ".err", stdin: stdin)
            return (ProcessRunner.wait(pid), TestFiles.read(stdout + ".err") ?? "")
        }
    }

    /// Runs a command that does not end by itself (tail -f): its output once `done` holds (or
    /// after 20 s), then the client is killed.
    func sshUntil(_ gear: GearAccount, _ key: (path: String, type: String, body: String), _ command: String,
                  _ done: @escaping @Sendable (String) -> Bool) async throws -> String {
        let (server, output) = (server, root + "/until.out")
        return try await onThread {
            let pid = try ProcessRunner.spawn([SSHServer.sshPath] + server.clientOptions(key: key.path) + ["\(gear.uuid)@127.0.0.1", command],
                                              stdout: output, stderr: output + ".err")
            let deadline = monotonicSeconds() + 20
            while monotonicSeconds() < deadline && !done(TestFiles.read(output) ?? "") { usleep(20_000) }
            kill(pid, SIGTERM)
            _ = ProcessRunner.wait(pid)
            return (TestFiles.read(output) ?? "") + (TestFiles.read(output + ".err") ?? "")
        }
    }

    /// Runs a script as the gear's user (setpriv, no capability), in its home.
    func asGear(_ gear: GearAccount, _ script: String) async throws -> ProcessRunner.Result {
        try await onThread {
            try ProcessRunner.run(["/usr/bin/setpriv", "--reuid=\(gear.uid)", "--regid=\(gear.uid)", "--clear-groups",
                                   "--inh-caps=-all", "--bounding-set=-all", "--", "/bin/sh", "-c", "cd \(gear.home) && " + script],
                                  environment: ["PATH": "/usr/bin:/bin", "HOME": gear.home])
        }
    }

    /// `~/git/<name>.git`, a bare repository with one commit (`initial`) on master, the gear's.
    /// (The deploy work creates ~/git at configure; here root makes it as that will.)
    func makeRepository(_ gear: GearAccount, _ name: String) async throws {
        let work = root + "/work-\(gear.uuid)"
        let failure = try await onThread { () throws -> String? in
            let environment = ["HOME": self.clientDirectory, "PATH": "/usr/bin:/bin"]
            for argv in [["/usr/bin/git", "init", "-q", "-b", "master", work],
                         ["/usr/bin/git", "-C", work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "initial"],
                         ["/usr/bin/git", "clone", "-q", "--bare", work, gear.home + "/git/\(name).git"],
                         ["/bin/chown", "-R", "\(gear.uid):\(gear.uid)", gear.home + "/git"],
                         ["/bin/chmod", "750", gear.home + "/git"]] {
                let step = try ProcessRunner.run(argv, environment: environment)
                if step.status != 0 { return "\(argv.joined(separator: " ")): \(step.stderr)" }
            }
            return nil
        }
        if let failure { throw TestFiles.Failure(description: "making \(gear.home)/git/\(name).git: \(failure)") }
    }

    /// The `arg=[...]` lines of the stand-in gear tool.
    static func arguments(_ output: String) -> [String] {
        output.split(separator: "\n").filter { $0.hasPrefix("arg=[") && $0.hasSuffix("]") }.map { String($0.dropFirst(5).dropLast()) }
    }

    /// `name=value` lines (the first of each name).
    static func values(_ output: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            let name = String(line[..<equals])
            if result[name] == nil { result[name] = String(line[line.index(after: equals)...]) }
        }
        return result
    }

    func destroy() {
        server.stop()
        for gear in gears.withLock({ $0 }) {
            _ = try? ProcessRunner.node("oo-devel-node", ["app-destroy", "--with-container-uuid", gear.uuid, "--config", config])
        }
        if let hierarchy = CgroupHierarchy.detect(), let parent = try? GearCgroup(hierarchy: hierarchy, parent: "", name: Self.cgroupRoot) {
            for directory in parent.directories { rmdir(directory) }
        }
        TestFiles.remove(root)
    }
}

/// Receives syslog(3) datagrams on /dev/log while no syslog daemon holds it (the test machines
/// run none), draining them on its own thread: a full datagram queue would block every logger on
/// the host, sshd's PAM modules included. Nil when a syslog daemon listens there; then the audit
/// lines are not checked. A socket file left by a killed run is replaced.
final class SyslogCapture: @unchecked Sendable {
    static let path = "/dev/log"
    let fd: Int32
    private final class State: Sendable {
        let received = Mutex<[String]>([])
        let stopping = Mutex(false)
    }
    private let state = State()
    private let thread: Thread

    init?() {
        if access(Self.path, F_OK) == 0 {
            guard Self.isStale() else { return nil }
            unlink(Self.path)
        }
        let socketFD = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socketFD >= 0 else { return nil }
        var address = Self.address()
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0 else {
            Glibc.close(socketFD)
            return nil
        }
        chmod(Self.path, 0o666)
        fd = socketFD
        let state = state
        thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 8192)
            while !state.stopping.withLock({ $0 }) {
                var poller = pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 50) > 0 else { continue }
                let n = recv(socketFD, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if n > 0 {
                    let message = String(decoding: buffer[0..<n], as: UTF8.self)
                    state.received.withLock { $0.append(message) }
                }
            }
        }
        thread.start()
    }

    private static func address() -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            for (index, byte) in path.utf8.enumerated() { buffer[index] = byte }
        }
        return address
    }

    /// A socket file nobody listens on.
    private static func isStale() -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFSOCK else { return false }
        let probe = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { Glibc.close(probe) }
        var address = address()
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        return connected != 0 && errno == ECONNREFUSED
    }

    /// Every message received so far.
    func messages() -> [String] {
        usleep(200_000)   // the last datagrams in flight
        return state.received.withLock { $0 }
    }

    func close() {
        unlink(Self.path)
        state.stopping.withLock { $0 = true }
        usleep(100_000)
        Glibc.close(fd)
    }
}
