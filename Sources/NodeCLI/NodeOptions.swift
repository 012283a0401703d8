import ArgumentParser
import NodeConfig

/// The options every node command shares: which configuration, and the sandbox root.
public struct NodeOptions: ParsableArguments, Sendable {
    @Option(name: .long, help: ArgumentHelp(
        "The node configuration file.",
        discussion: "Default: /etc/openshift/node.conf, or <root>/etc/openshift/node.conf in sandbox mode. "
            + "A missing default file means built-in defaults; a missing named file is an error.",
        valueName: "file"))
    public var config: String?

    @Option(name: .long, help: ArgumentHelp(
        "Sandbox mode: put every configured path under this directory (also OPENSHIFT_NODE_ROOT).",
        valueName: "dir"))
    public var root: String?

    @Option(name: .customLong("cartridge-base-path"), help: ArgumentHelp(
        "Read packaged cartridges from this directory, as given (not under --root); overrides CARTRIDGE_BASE_PATH.",
        valueName: "dir"))
    public var cartridgeBasePath: String?

    public init() {}

    /// The sandbox root: `--root`, else `OPENSHIFT_NODE_ROOT`. Read here, at the edge, only.
    public var effectiveRoot: String? {
        if let root, !root.isEmpty { return absolute(root) }
        if let value = getenv("OPENSHIFT_NODE_ROOT"), !String(cString: value).isEmpty {
            return absolute(String(cString: value))
        }
        return nil
    }

    /// The node.conf these options name (it may not exist: then every key has its default).
    public var configFile: String { config.map(absolute) ?? PathLayout.defaultConfigFile(root: effectiveRoot) }

    /// Loads the configuration and builds the path layout.
    public func layout() throws -> PathLayout {
        let root = effectiveRoot
        let file = configFile
        let configuration: NodeConfiguration
        do {
            configuration = try NodeConfiguration.load(file: file, missingIsDefault: config == nil)
        } catch {
            throw CommandFailure(error)
        }
        var overrides: [String: String] = [:]
        if let cartridgeBasePath { overrides["CARTRIDGE_BASE_PATH"] = absolute(cartridgeBasePath) }
        return PathLayout(root: root, configuration: configuration, overrides: overrides)
    }
}

/// An absolute, `..`-free spelling of a path given on a command line.
public func absolute(_ path: String) -> String {
    var components: [Substring] = []
    let full: String
    if path.hasPrefix("/") {
        full = path
    } else {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let cwd = getcwd(&buffer, buffer.count).map { String(cString: $0) } ?? "/"
        full = cwd + "/" + path
    }
    for part in full.split(separator: "/") {
        switch part {
        case ".": continue
        case "..": _ = components.popLast()
        default: components.append(part)
        }
    }
    return "/" + components.joined(separator: "/")
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
