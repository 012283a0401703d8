import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// The OpenSSH server settings a node needs so that users reach their gears: keys from the file
/// the node writes (each with its forced command, the gear shell), GSSAPI for Kerberos principals
/// (`.k5login`), PAM for the account checks, nothing the client can put in the environment but
/// `GIT_PROTOCOL`, and an external sftp-server (the gear shell runs it; `internal-sftp` would
/// bypass the shell).
public enum SSHDConfiguration {
    /// The settings, one `Keyword value` a line, in the order sshd reads them (first value wins).
    public static let nodeSettings: [String] = [
        "AuthorizedKeysFile .ssh/authorized_keys",
        "StrictModes yes",
        "UsePAM yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "GSSAPIAuthentication yes",
        "GSSAPICleanupCredentials yes",
        "GSSAPIStrictAcceptorCheck no",
        "AcceptEnv GIT_PROTOCOL",
        "ExposeAuthInfo yes",
        "PermitUserEnvironment no",
        "MaxSessions 40",
        "X11Forwarding no",
        "PrintMotd no",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]

    /// What `openshift-node sshd-config` prints: the settings to merge into /etc/ssh/sshd_config.
    public static func node(gearShell: String) -> String {
        """
        # sshd settings for an openshift-node host (openshift-node sshd-config).
        # Gear accounts log in with the gear shell (\(gearShell), node.conf GEAR_SHELL): keys in
        # ~/.ssh/authorized_keys carry it as their forced command; Kerberos principals in ~/.k5login
        # reach it as the login shell. sshd refuses an account whose shell is not executable.

        """ + nodeSettings.joined(separator: "\n") + "\n"
    }

    /// A complete private configuration: a loopback port, its own host key and pid file, and the
    /// node.conf the gear shell must read (`SetEnv`: the client cannot set it, `AcceptEnv` allows
    /// only GIT_PROTOCOL).
    public static func standalone(port: Int, directory: String, nodeConf: String) -> String {
        """
        # A private sshd for openshift-node gears (openshift-node sshd-config --standalone).
        # Run as root: /usr/sbin/sshd -D -e -f \(directory)/sshd_config   (/run/sshd must exist)
        Port \(port)
        ListenAddress 127.0.0.1
        HostKey \(directory)/ssh_host_ed25519_key
        PidFile \(directory)/sshd.pid
        SetEnv OPENSHIFT_NODE_CONF=\(nodeConf)
        LogLevel VERBOSE
        PrintLastLog no

        """ + nodeSettings.joined(separator: "\n") + "\n"
    }

    /// Why a path cannot be written into sshd_config unquoted, or nil.
    static func problem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "must be an absolute path" }
        if path.unicodeScalars.contains(where: { $0.value <= 0x20 || $0.value == 0x7f || $0 == "\"" || $0 == "'" || $0 == "\\" }) {
            return "must not contain spaces, quotes, backslashes or control characters (sshd_config would split it)"
        }
        return nil
    }

    /// Writes `sshd_config` and a new ed25519 host key (kept if present) into `directory`, which
    /// is created 0700. Returns the configuration file.
    public static func writeStandalone(port: Int, directory: String, nodeConf: String) throws -> String {
        guard (1...65_535).contains(port) else { throw CommandFailure("invalid port \(port): expected 1 to 65535", exitCode: 2) }
        for (what, path) in [("--directory", directory), ("the node configuration", nodeConf)] {
            if let problem = problem(path) { throw CommandFailure("invalid \(what) '\(path)': \(problem)", exitCode: 2) }
        }
        do {
            try FileSystem.makeDirectories(directory, mode: 0o700)
        } catch {
            throw CommandFailure("cannot create \(directory): \(error)")
        }
        let key = directory + "/ssh_host_ed25519_key"
        if access(key, F_OK) != 0 {
            let result: Spawner.Result
            do {
                result = try Spawner.run(["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "openshift-node host key", "-f", key],
                                         environment: ["PATH": "/usr/bin:/bin"], timeoutSeconds: 60)
            } catch {
                throw CommandFailure("cannot run /usr/bin/ssh-keygen (is openssh-client installed?): \(error)")
            }
            guard result.status == 0 else {
                throw CommandFailure("ssh-keygen failed for \(key) (status \(result.status)): \(result.stderr)")
            }
        }
        let file = directory + "/sshd_config"
        do {
            try FileSystem.writeAtomically(file, standalone(port: port, directory: directory, nodeConf: nodeConf), mode: 0o600)
        } catch {
            throw CommandFailure("cannot write \(file): \(error)")
        }
        return file
    }
}
