import MCollective
import NodeCLI
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// With `mcollective` in `AGENT_TRANSPORTS`: `MCOLLECTIVE_CONFIG` parses as the daemon reads
/// it, and a broker of its pool accepts a TCP connection within the timeout (the daemon fails
/// over along the pool, so one is enough; the others are warned about).
struct MCollectiveCheck: NodeCheck {
    let name = "mcollective"

    func run(_ node: NodeUnderTest) -> [Finding] {
        guard node.configuration.list("AGENT_TRANSPORTS").contains("mcollective") else {
            return [.note("mcollective is not in AGENT_TRANSPORTS: no broker is checked")]
        }
        let file = node.layout.path("MCOLLECTIVE_CONFIG")
        guard access(file, F_OK) == 0 else {
            let message = "mcollective is in AGENT_TRANSPORTS, but MCOLLECTIVE_CONFIG \(file) does not exist: the daemon runs without it"
            if node.isSandbox { return [.note(message)] }
            return [.warn(message + " and no broker reaches this node",
                          fix: "write the MCollective server.cfg there, or remove mcollective from AGENT_TRANSPORTS")]
        }
        guard let text = FileSystem.read(file, limit: 1 << 20) else {
            return [.fail("MCOLLECTIVE_CONFIG \(file) cannot be read: \(String(cString: strerror(errno)))", fix: "make it a file root can read")]
        }
        var environment: [String: String] = [:]
        for key in ["MCOLLECTIVE_PSK", "STOMP_USER", "STOMP_PASSWORD"] {
            if let value = getenv(key) { environment[key] = String(cString: value) }
        }
        let configuration: ServerConfiguration
        do {
            configuration = try ServerConfiguration.parse(text, file: file, environment: environment, defaultIdentity: NodeServices.hostName)
        } catch {
            return [.fail("MCollective configuration \(error.description)", fix: "correct \(file) (the daemon refuses it too)")]
        }
        var findings: [Finding] = []
        var reachable: [String] = []
        var unreachable: [(String, String)] = []
        for host in configuration.hosts {
            let target = "\(host.host):\(host.port)"
            if let problem = TCPProbe.connect(host: host.host, port: host.port, timeoutSeconds: node.brokerTimeout) {
                unreachable.append((target, problem))
            } else {
                reachable.append(target)
            }
        }
        if reachable.isEmpty {
            let list = unreachable.map { "\($0.0) (\($0.1))" }.joined(separator: ", ")
            findings.append(.fail("no MCollective broker of \(file) accepts a connection: \(list)",
                                  fix: "start the broker (ActiveMQ) or correct plugin.activemq.pool.N.host/port in \(file); check firewalls between the node and it"))
        } else {
            for (target, problem) in unreachable {
                findings.append(.warn("MCollective broker \(target) of \(file) does not accept a connection (\(problem)); the daemon uses \(reachable[0])",
                                      fix: "start it, or remove it from the pool in \(file)"))
            }
            findings.append(.note("MCollective: \(file) parses (identity \(configuration.identity)); broker \(reachable.joined(separator: ", ")) accepts connections"))
        }
        return findings
    }
}
