#if canImport(Glibc)
import Glibc
#endif

/// The node's directories exist, are directories, and have the owner and mode the node and
/// sshd rely on. In sandbox mode only what sandbox mode uses, and no owner is required.
struct DirectoryCheck: NodeCheck {
    let name = "directories"

    /// One directory the layout defines, and what it must be.
    struct Expectation {
        var path: String
        /// What it is, for messages (`GEAR_BASE_DIR`, `the gear records`).
        var role: String
        /// Missing is a failure (else the node creates it when it first needs it).
        var required: Bool
        /// Exactly this mode, when set.
        var mode: mode_t?
        /// Bits that must be clear (group- or world-writable).
        var forbidden: mode_t
        /// How to create it when it is missing.
        var create: String
    }

    func expectations(_ node: NodeUnderTest) -> [Expectation] {
        let base = node.gearBaseDir
        // sshd's StrictModes refuses logins below a directory others may write; in a sandbox
        // only a world-writable directory (anyone could plant gears or cartridges) is wrong.
        let shared: mode_t = node.isSandbox ? 0o002 : 0o022
        let rescan = node.command(["oo-admin-cartridge", "--action", "rescan"])
        let mkdir = { (path: String, mode: String) in
            node.isSandbox ? "mkdir -p \(NodeUnderTest.quoted(path))" : "install -d -m \(mode) -o root -g root \(NodeUnderTest.quoted(path))"
        }
        var list = [
            Expectation(path: base, role: "GEAR_BASE_DIR (gear homes)", required: true, forbidden: shared, create: mkdir(base, "0755")),
            Expectation(path: node.layout.cartridgeRepoDir, role: "CARTRIDGE_REPO_DIR (the cartridge repository)", required: true,
                        forbidden: shared, create: "create it and install CARTRIDGE_BASE_PATH into it: \(rescan)"),
            Expectation(path: node.layout.cartridgeBasePath, role: "CARTRIDGE_BASE_PATH (packaged cartridges)", required: true,
                        forbidden: shared, create: "install the cartridge packages, or point CARTRIDGE_BASE_PATH at them"),
        ]
        if node.apacheConfigured {
            // Apache refuses to start without its maps; a sandbox has them once it has gears.
            list.append(Expectation(path: node.mapDirectory, role: "OPENSHIFT_HTTP_CONF_DIR (the frontend maps)",
                                    required: !node.isSandbox || !node.recordedUUIDs.isEmpty, forbidden: shared,
                                    create: mkdir(node.mapDirectory, "0755") + " and create its empty maps routes.txt, aliases.txt, idler.txt, sts.txt, hosts.txt"))
        }
        list += [
            Expectation(path: base + "/.gears", role: "the gear records", required: false, mode: 0o700, forbidden: 0o077, create: ""),
            Expectation(path: base + "/.locks", role: "the gear lock files", required: false, mode: 0o700, forbidden: 0o077, create: ""),
            Expectation(path: base + "/.frontend", role: "the gears' route documents", required: false, forbidden: shared, create: ""),
        ]
        return list
    }

    func run(_ node: NodeUnderTest) -> [Finding] {
        var findings: [Finding] = []
        for expected in expectations(node) {
            // Configured paths may be links to another file system; the node's own ones never are.
            let configured = !expected.path.hasPrefix(node.gearBaseDir + "/.")
            switch PathStatus.of(expected.path, followingLinks: configured) {
            case .failure(let error) where error.missing:
                if expected.required {
                    findings.append(.fail("\(expected.role) \(expected.path) does not exist", fix: expected.create))
                }
            case .failure(let error):
                findings.append(.fail("\(expected.role) \(expected.path) cannot be examined: \(error.reason)",
                                      fix: "make it a directory root can read"))
            case .success(let status):
                guard status.isDirectory else {
                    findings.append(.fail("\(expected.role) \(expected.path) is \(status.kind), not a directory",
                                          fix: "move it away" + (expected.create.isEmpty ? "" : ", then: \(expected.create)")))
                    continue
                }
                if !node.isSandbox && status.uid != 0 {
                    findings.append(.fail("\(expected.role) \(expected.path) is owned by uid \(status.uid), not root",
                                          fix: "chown root:root \(NodeUnderTest.quoted(expected.path))"))
                }
                let mode = status.permissions & 0o777
                if let wanted = expected.mode, mode != wanted {
                    findings.append(.fail("\(expected.role) \(expected.path) has mode \(PathStatus.octal(mode)), not \(PathStatus.octal(wanted))",
                                          fix: "chmod \(PathStatus.octal(wanted)) \(NodeUnderTest.quoted(expected.path))"))
                } else if mode & expected.forbidden != 0 {
                    let fixed = mode & ~expected.forbidden
                    findings.append(.fail("\(expected.role) \(expected.path) has mode \(PathStatus.octal(mode)): "
                                          + (expected.forbidden == 0o002 ? "anyone" : "users other than root") + " may write in it",
                                          fix: "chmod \(PathStatus.octal(fixed)) \(NodeUnderTest.quoted(expected.path))"))
                }
            }
        }
        return findings
    }
}
