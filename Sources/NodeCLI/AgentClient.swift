import Agent
import FoundationEssentials
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Calls agent actions the way admin tools should: through the running daemon's local socket
/// (so requests share its pool, locks and logs), or in this process when no daemon listens.
public enum AgentClient {
    public enum Route: String, Sendable { case daemon, inProcess = "in-process" }

    /// Sends one request over the Unix socket at `path`; nil when nothing listens there.
    public static func viaSocket(_ path: String, agent: String = "openshift", action: String, data: AgentValue,
                                 timeoutSeconds: Int = 400) -> AgentReply? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard let address = UnixAddress(path) else { return nil }
        let connected = address.withSockaddr { connect(fd, $0, $1) }
        guard connected == 0 else { return nil }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = AgentValue.hash([.init(.string("agent"), .string(agent)), .init(.string("action"), .string(action)),
                                       .init(.string("data"), data)]).jsonText() + "\n"
        var remaining = Array(request.utf8)[...]
        while !remaining.isEmpty {
            let written = remaining.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { return nil }
            remaining = remaining.dropFirst(written)
        }
        var line: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !line.contains(UInt8(ascii: "\n")) {
            let n = recv(fd, &chunk, chunk.count, 0)
            guard n > 0 else { return line.isEmpty ? nil : AgentReply.failure(5, "the daemon closed the connection mid-reply") }
            line += chunk[0..<n]
        }
        guard let reply = try? AgentValue.parse(json: String(decoding: line.prefix { $0 != UInt8(ascii: "\n") }, as: UTF8.self)) else {
            return .failure(5, "the daemon's reply is not JSON")
        }
        return AgentReply(statuscode: reply["statuscode"]?.int ?? 5, statusmsg: reply["statusmsg"]?.string ?? "",
                          data: reply["data"] ?? .hash([]))
    }

    /// `key=value` arguments as `mco rpc` takes them, typed by the catalogue: integers, numbers
    /// and booleans are converted; `:any` inputs take JSON (`args={"--with-container-uuid":"g1"}`).
    public static func inputs(_ arguments: [String], action: String, catalogue: AgentCatalogue = .openshift) throws -> AgentValue {
        let specs = catalogue.action(action)?.inputs ?? []
        var pairs: [AgentValue.Pair] = []
        for argument in arguments {
            guard let eq = argument.firstIndex(of: "="), eq != argument.startIndex else {
                throw CommandFailure("arguments are key=value, not '\(argument)'", exitCode: 64)
            }
            let key = String(argument[..<eq])
            let text = String(argument[argument.index(after: eq)...])
            let value: AgentValue
            switch specs.first(where: { $0.name == key })?.kind {
            case .integer?: value = Int(text).map(AgentValue.int) ?? .string(text)
            case .number?, .float?: value = Int(text).map(AgentValue.int) ?? Double(text).map(AgentValue.float) ?? .string(text)
            case .boolean?: value = ["true", "yes", "1"].contains(text) ? .bool(true) : (["false", "no", "0"].contains(text) ? .bool(false) : .string(text))
            case .any?: value = (try? AgentValue.parse(json: text)) ?? .string(text)
            default: value = .string(text)
            }
            pairs.append(.init(.symbol(key), value))
        }
        return .hash(pairs)
    }
}
