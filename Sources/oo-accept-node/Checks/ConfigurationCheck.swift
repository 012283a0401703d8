import Containment
import NodeCLI
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// `node.conf` readable and valid (the parser's own file, line and reason), and
/// `resource_limits.conf` when there is one. It runs first and alone: without a valid
/// configuration no other check knows where to look.
enum ConfigurationCheck {
    static let name = "node.conf"
    static let sampleHint = "`openshift-node config-sample` lists every key with its default and range"

    /// The findings, and the layout when the configuration can be used.
    static func run(_ options: NodeOptions) -> (findings: [Finding], layout: PathLayout?) {
        let file = options.configFile
        let named = options.config != nil
        var findings: [Finding] = []
        do throws(NodeConfigError) {
            _ = try NodeConfiguration.load(file: file, missingIsDefault: !named)
        } catch {
            return ([finding(for: error, file: file)], nil)
        }
        let layout: PathLayout
        do {
            layout = try options.layout()
        } catch {
            return ([.fail("\(error)", fix: "correct \(file); \(sampleHint)")], nil)
        }
        if !named && access(file, F_OK) != 0 {
            if layout.isSandbox {
                findings.append(.note("\(file) does not exist: every key has its default"))
            } else {
                findings.append(.warn("\(file) does not exist: every key has its default (/var/lib/openshift, uids 1000...6999, ...)",
                                      fix: "write the node's settings there; \(sampleHint)"))
            }
        } else {
            findings.append(.note("\(file) is valid"))
        }
        let limits = layout.resolve("/etc/openshift/resource_limits.conf")
        if access(limits, F_OK) == 0 {
            do throws(NodeConfigError) {
                guard let text = FileSystem.read(limits) else { throw NodeConfigError.unreadable(file: limits, errno: errno) }
                _ = try ResourceLimits(parsing: text, file: limits)
            } catch {
                findings.append(finding(for: error, file: limits))
            }
        } else {
            findings.append(.note("\(limits) does not exist: gears get the small profile's limits"))
        }
        return (findings, layout)
    }

    static func finding(for error: NodeConfigError, file: String) -> Finding {
        switch error {
        case .unreadable(_, let code) where code == ENOENT:
            return .fail("configuration \(file) does not exist",
                         fix: "name the node's configuration with --config, or write one; \(sampleHint)")
        case .unreadable:
            return .fail(error.description, fix: "make \(file) a file root can read (chmod 0644 \(file))")
        case .malformedLine(_, let line, _, _), .invalidValue(_, let line, _, _, _), .invalidText(_, let line, _, _),
             .conflictingValues(_, let line, _, _):
            return .fail(error.description, fix: "correct line \(line) of \(file); \(sampleHint)")
        }
    }
}
