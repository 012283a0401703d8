import Agent
import Cartridges
import Containment
import Frontend
import Gears
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Builds the node's parts from its configuration: the repository, the container plugin
/// (chosen here, from an explicit list) and the gear manager.
public struct NodeServices {
    public let layout: PathLayout
    public let repository: CartridgeRepository
    public let plugin: any ContainerPlugin
    public let gears: GearManager
    public let frontend: FrontendManager?
    /// `resource_limits.conf` (rooted in sandbox mode), empty when there is none.
    public let resourceLimits: [String: String]

    /// The frontend plugins this node knows, by `OPENSHIFT_FRONTEND_HTTP_PLUGINS` name.
    static let frontendPlugins: [String: @Sendable (PathLayout) -> any FrontendPlugin] = [
        "apache": { layout in
            let ssl = ApacheFrontend.SSL(
                listen: layout.configuration.string("OPENSHIFT_HTTPS_LISTEN"),
                certificateDirectory: layout.gearBaseDir + "/.frontend/ssl",
                wakePort: layout.configuration.integer("FRONTEND_WAKE_PORT"))
            return ApacheFrontend(directory: layout.path("OPENSHIFT_HTTP_CONF_DIR"),
                                  reload: layout.configuration.string("OPENSHIFT_HTTP_RELOAD").split(separator: " ").map(String.init),
                                  ssl: ssl)
        },
    ]

    /// The container plugins this node knows, by `CONTAINERIZATION_PLUGIN` name.
    static let plugins: [String: @Sendable (PathLayout) throws -> any ContainerPlugin] = [
        "selinux": { layout in
            guard geteuid() == 0 else {
                throw CommandFailure("node mode manages real accounts and needs root; use --root DIR for the sandbox", exitCode: 6)
            }
            let file = "/etc/openshift/resource_limits.conf"
            var limits = ResourceLimits()
            if access(file, F_OK) == 0 {
                do { limits = try ResourceLimits(parsing: try String(readingFile: file), file: file) } catch { throw CommandFailure(error) }
            }
            return SELinuxContainer(configuration: layout.configuration, gearBaseDir: layout.gearBaseDir, limits: limits,
                                    gearExec: siblingExecutable("oo-gear-exec"))
        },
        "sandbox": { layout in SandboxContainer(configuration: layout.configuration, gearBaseDir: layout.gearBaseDir) },
    ]

    public init(layout: PathLayout) throws {
        // Admin tools print results, not the modules' info logs; the daemon bootstraps first.
        NodeLogging.bootstrap(level: .warning)
        self.layout = layout
        repository = CartridgeRepository.shared(for: layout)
        _ = try? repository.load()
        // A sandbox root can only hold sandbox gears.
        let name = layout.isSandbox ? "sandbox" : layout.configuration.string("CONTAINERIZATION_PLUGIN")
        guard let factory = Self.plugins[name] else {
            throw CommandFailure("unknown CONTAINERIZATION_PLUGIN '\(name)': expected \(Self.plugins.keys.sorted().joined(separator: " or "))",
                                 exitCode: 2)
        }
        plugin = try factory(layout)
        let limitsFile = layout.resolve("/etc/openshift/resource_limits.conf")
        if let text = FileSystem.read(limitsFile), let parsed = try? ResourceLimits(parsing: text, file: limitsFile) {
            resourceLimits = parsed.values
        } else {
            resourceLimits = [:]
        }
        var chain: [any FrontendPlugin] = []
        for name in layout.configuration.list("OPENSHIFT_FRONTEND_HTTP_PLUGINS") {
            guard let make = Self.frontendPlugins[name] else {
                throw CommandFailure("unknown frontend plugin '\(name)' in OPENSHIFT_FRONTEND_HTTP_PLUGINS: expected \(Self.frontendPlugins.keys.sorted().joined(separator: ", "))", exitCode: 2)
            }
            chain.append(make(layout))
        }
        frontend = chain.isEmpty ? nil : FrontendManager(stateDirectory: layout.gearBaseDir + "/.frontend", plugins: chain,
                                                         cloudDomain: layout.configuration.string("CLOUD_DOMAIN"))
        gears = GearManager(configuration: layout.configuration, gearBaseDir: layout.gearBaseDir, plugin: plugin, repository: repository,
                            frontend: frontend)
    }
}

extension NodeServices {
    /// What the agent's actions work on, for a node answering to `identity`.
    public func agentContext(identity: String) -> NodeContext {
        NodeContext(layout: layout, repository: repository, gears: gears, frontend: frontend, resourceLimits: resourceLimits,
                    identity: identity)
    }

    /// This host's name, the default MCollective identity.
    public static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// An executable installed beside the running one.
public func siblingExecutable(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return "/usr/bin/" + name }
    let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)]) + "/" + name
}

extension String {
    init(readingFile path: String) throws(NodeConfigError) {
        guard let text = FileSystem.read(path) else { throw .unreadable(file: path, errno: errno) }
        self = text
    }
}
