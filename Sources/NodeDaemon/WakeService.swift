import Dispatch
import Frontend
import Gears
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Wakes idle gears on their first request.
///
/// Apache sends requests for an idle host name here (127.0.0.1:`FRONTEND_WAKE_PORT`). The
/// service finds the gear by the Host header (its fqdn or an alias, never a header a client could
/// forge to pick another gear), starts it, waits until its root route accepts connections, and
/// answers `307 Temporary Redirect` to the same URL: the client repeats the request, method and
/// body included, and Apache now routes it to the running gear. No fixed sleep; nothing is lost.
public final class WakeService: Service, @unchecked Sendable {
    private let port: UInt16
    private let gears: GearManager
    private let frontend: FrontendManager
    private let logger: Logger
    private var listener: Int32 = -1
    private let workers = DispatchQueue(label: "openshift.node.wake", attributes: .concurrent)
    private let slots = DispatchSemaphore(value: 16)

    public init(port: UInt16, gears: GearManager, frontend: FrontendManager, logger: Logger) {
        self.port = port
        self.gears = gears
        self.frontend = frontend
        self.logger = logger
    }

    /// A port that cannot be bound is logged, not fatal: the daemon's other work goes on and
    /// idle gears answer 503 meanwhile.
    public func run() async throws {
        do {
            try await serve()
        } catch {
            logger.error("idle gears will not be woken: \(error)")
            await withGracefulShutdownHandler {
                await AsyncStream<Void> { _ in }.first { _ in true }
            } onGracefulShutdown: {}
        }
    }

    final class SourceBox: @unchecked Sendable {
        let source: any DispatchSourceRead
        init(_ source: any DispatchSourceRead) { self.source = source }
    }

    private func serve() async throws {
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard listener >= 0 else { throw WatchError(step: "socket", errno: errno) }
        var yes: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 64) == 0 else {
            let code = errno
            close(listener)
            throw WatchError(step: "bind/listen 127.0.0.1:\(port)", errno: code)
        }
        logger.info("waking idle gears", metadata: ["listen": "127.0.0.1:\(port)"])
        let fd = listener
        let source = DispatchSource.makeReadSource(fileDescriptor: fd, queue: workers)
        // (resumed below, once the cancel handler is in place)
        source.setEventHandler { [weak self] in
            let client = accept(fd, nil, nil)
            guard client >= 0, let self else { return }
            self.slots.wait()
            self.workers.async {
                defer { self.slots.signal() }
                self.handle(client)
            }
        }
        let box = SourceBox(source)
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                box.source.setCancelHandler {
                    close(fd)
                    done.resume()
                }
                box.source.resume()
            }
        } onGracefulShutdown: {
            box.source.cancel()
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard let head = readHead(client) else { return }
        let lines = head.split(separator: "\r\n")
        let target = lines.first?.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let hostLine = lines.first { $0.lowercased().hasPrefix("host:") }
        let host = hostLine.map { $0.dropFirst(5).trimmingCharacters(in: " \t").lowercased() }
            .map { String($0.split(separator: ":").first ?? "") } ?? ""
        guard let gear = (try? frontend.allFrontends())?.first(where: { $0.fqdn == host || $0.aliases.contains(host) }) else {
            reply(client, status: "404 Not Found", body: "No application is configured for this host name.\n")
            return
        }
        do {
            if gear.idle {
                logger.info("waking idle gear", metadata: ["gear.uuid": "\(gear.uuid)", "host": "\(host)"])
                _ = try gears.unidle(gear.uuid)
            }
            if let root = gear.connections.first(where: { $0.path.isEmpty && $0.isProxy }) { waitForListener(root.target) }
            let location = target.hasPrefix("/") ? target : "/"
            reply(client, status: "307 Temporary Redirect", headers: ["Location: \(location)", "Retry-After: 0"], body: "")
        } catch {
            logger.warning("cannot wake gear", metadata: ["gear.uuid": "\(gear.uuid)", "error": "\(error)"])
            reply(client, status: "503 Service Unavailable", body: "This application could not be started.\n")
        }
    }

    /// Reads the request head (up to 64 KiB); the body, if any, is left: the client resends it.
    private func readHead(_ fd: Int32) -> String? {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65536 {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { return nil }
            bytes += buffer[0..<n]
            if let text = String(bytes: bytes, encoding: .utf8), let end = text.range(of: "\r\n\r\n") {
                return String(text[..<end.lowerBound])
            }
        }
        return nil
    }

    private func reply(_ fd: Int32, status: String, headers: [String] = [], body: String) {
        let text = "HTTP/1.1 \(status)\r\n" + (headers + ["Content-Length: \(body.utf8.count)", "Connection: close",
                                                          "Content-Type: text/plain"]).map { $0 + "\r\n" }.joined() + "\r\n" + body
        _ = text.withCString { write(fd, $0, strlen($0)) }
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Waits (at most 20 s) until `ip:port` accepts a connection.
    private func waitForListener(_ target: String) {
        let hostPort = target.split(separator: "/").first.map(String.init) ?? target
        let parts = hostPort.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, String(parts[0]), &address.sin_addr) == 1 else { return }
        for _ in 0..<400 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            close(fd)
            if connected == 0 { return }
            usleep(50_000)
        }
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
