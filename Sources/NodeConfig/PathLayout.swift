/// Where the node's files are, with the sandbox root applied.
///
/// In node mode `root` is nil and paths are the configured ones. In sandbox mode every configured
/// absolute path is placed under `root` (`/var/lib/openshift` becomes `<root>/var/lib/openshift`).
/// A path given explicitly on a command line (`overrides`) is used as given, so the sandbox can
/// read cartridges from the repository's own `cartridges/` folder.
public struct PathLayout: Sendable, Equatable {
    public var root: String?
    public var configuration: NodeConfiguration
    public var overrides: [String: String]

    public static let defaultConfigFile = "/etc/openshift/node.conf"

    public init(root: String? = nil, configuration: NodeConfiguration = .init(), overrides: [String: String] = [:]) {
        self.root = root.map { $0.count > 1 && $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.configuration = configuration
        self.overrides = overrides
    }

    /// `path` placed under the sandbox root, if there is one.
    public func resolve(_ path: String) -> String {
        guard let root, !root.isEmpty, root != "/" else { return path }
        return path.hasPrefix("/") ? root + path : root + "/" + path
    }

    /// The path of a `.path` key, rooted unless overridden on the command line.
    public func path(_ key: String) -> String {
        if let given = overrides[key] { return given }
        return resolve(configuration.string(key))
    }

    public var cartridgeBasePath: String { path("CARTRIDGE_BASE_PATH") }
    public var cartridgeRepoDir: String { path("CARTRIDGE_REPO_DIR") }
    public var gearBaseDir: String { path("GEAR_BASE_DIR") }
    public var isSandbox: Bool { root != nil }

    /// The configuration file used when none is named: under the root in sandbox mode.
    public static func defaultConfigFile(root: String?) -> String {
        PathLayout(root: root).resolve(defaultConfigFile)
    }
}
