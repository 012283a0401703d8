import Containment
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// A directory of environment variables in a gear (one file per variable: name = file name,
/// content = value, no trailing newline), as cartridges and the original node expect:
/// `.env` (the node's and the broker's, root's), `.env/user_vars` (the user's, root's) and
/// `<cartridge>/env` (the cartridge's, the gear's). Read and written through the gear's
/// `GearHome`: bounded, never through a link.
public struct EnvDirectory: Sendable {
    let home: GearHome
    /// Relative to the home.
    let directory: String
    /// Who owns the files written here.
    let owner: GearHome.Owner

    init(_ home: GearHome, _ directory: String, owner: GearHome.Owner = .root) {
        self.home = home
        self.directory = directory
        self.owner = owner
    }

    public static func isValidName(_ name: String) -> Bool { GearHome.isVariableName(name) }

    /// Every variable (regular files with valid names; see `GearHome.environment`).
    func read() -> [String: String] { home.environment(directory) }

    func value(_ name: String) -> String? {
        guard Self.isValidName(name), var value = home.readText(directory + "/" + name, limit: GearHome.environmentValueLimit) else { return nil }
        if value.hasSuffix("\n") { value.removeLast() }
        return value
    }

    /// Writes one variable crash-safely (temp file, rename), readable by the gear.
    func write(_ name: String, _ value: String, mode: mode_t = 0o644) throws(GearsError) {
        guard Self.isValidName(name) else {
            throw .invalidArgument(field: "environment variable name", value: name, reason: "expected letters, digits and '_', not starting with a digit")
        }
        guard !value.utf8.contains(0), value.utf8.count <= GearHome.environmentValueLimit else {
            throw .invalidArgument(field: "value of \(name)", value: String(value.prefix(40)), reason: "no NUL bytes and at most 128 KiB")
        }
        try containing { () throws(ContainmentError) in try home.write(directory + "/" + name, value, mode: mode, owner: owner) }
    }

    func remove(_ name: String) throws(GearsError) {
        guard Self.isValidName(name) else { return }
        try containing { () throws(ContainmentError) in try home.remove(directory + "/" + name) }
    }
}

/// Which variable names the broker (`env-var-add`) and users (`user-var-add`) may set.
///
/// Gear processes start through a static helper with an environment applied only at their own
/// exec, so no variable reaches a root process; still, the variables that make a process load
/// code or run a start-up file (loader and shell ones), and every variable the node itself
/// writes, are not for anyone else to set or replace: they would change what every hook and
/// every login of the gear runs.
public enum VariablePolicy {
    /// Loader and shell start-up variables, and the process identity ones.
    static let startUp: Set<String> = [
        "GLIBC_TUNABLES", "GCONV_PATH", "LOCPATH", "NLSPATH", "HOSTALIASES", "RESOLV_HOST_CONF", "LOCALDOMAIN", "RES_OPTIONS",
        "TZDIR", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND", "IFS", "CDPATH", "GLOBIGNORE", "BASH_FUNC",
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "HOSTNAME", "MAIL", "TMPDIR", "TMP", "TMP_DIR", "HISTFILE", "GEM_HOME",
        "PYTHONSTARTUP", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS", "JAVA_TOOL_OPTIONS",
    ]
    static let startUpPrefixes = ["LD_", "MALLOC_", "BASH_FUNC_", "DYLD_"]

    /// What the node writes in `.env` at create (besides endpoint and cartridge variables).
    static let nodeWritten: Set<String> = [
        "OPENSHIFT_GEAR_UUID", "OPENSHIFT_GEAR_NAME", "OPENSHIFT_APP_UUID", "OPENSHIFT_APP_NAME", "OPENSHIFT_NAMESPACE",
        "OPENSHIFT_APP_DNS", "OPENSHIFT_GEAR_DNS", "OPENSHIFT_HOMEDIR", "OPENSHIFT_DATA_DIR", "OPENSHIFT_LOG_DIR",
        "OPENSHIFT_REPO_DIR", "OPENSHIFT_DEPENDENCIES_DIR", "OPENSHIFT_BUILD_DEPENDENCIES_DIR", "OPENSHIFT_DEPLOYMENTS_DIR",
        "OPENSHIFT_TMP_DIR", "OPENSHIFT_GEAR_MEMORY_MB", "OPENSHIFT_PRIMARY_CARTRIDGE_DIR", "OPENSHIFT_CLOUD_DOMAIN",
        "OPENSHIFT_BROKER_HOST", "OPENSHIFT_AUTO_DEPLOY", "OPENSHIFT_DEPLOYMENT_BRANCH", "OPENSHIFT_KEEP_DEPLOYMENTS",
        "OPENSHIFT_DEPLOYMENT_TYPE", "OPENSHIFT_SANDBOX_GEAR",
    ]

    /// Why `name` may not be set by the broker, or nil. `nodeVariables` are the ones the node
    /// wrote for this gear's cartridges (endpoint addresses and ports).
    public static func brokerRefusal(_ name: String, nodeVariables: Set<String> = []) -> String? {
        guard EnvDirectory.isValidName(name) else { return "expected letters, digits and '_', not starting with a digit" }
        if startUp.contains(name) || startUpPrefixes.contains(where: name.hasPrefix) {
            return "a loader or shell start-up variable, which no one may set on a gear"
        }
        if nodeWritten.contains(name) || nodeVariables.contains(name) || (name.hasPrefix("OPENSHIFT_") && name.hasSuffix("_IDENT")) {
            return "the node manages this variable"
        }
        return nil
    }

    /// Why `name` may not be a user variable, or nil: what the broker may not set, and every
    /// `OPENSHIFT_` name.
    public static func userRefusal(_ name: String) -> String? {
        if let reason = brokerRefusal(name) { return reason }
        if name.hasPrefix("OPENSHIFT_") { return "OPENSHIFT_ names belong to the node and the cartridges" }
        return nil
    }
}
