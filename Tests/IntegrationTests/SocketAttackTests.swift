import Foundation
import NodeTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The daemon's listening sockets under attack: every byte a client sends is hostile input to a
/// root daemon (the local agent's Unix socket, the wake port every gear can reach).
@Suite("hostile clients on the daemon's sockets")
struct SocketAttackTests {
    /// A sandbox daemon with the local agent on and no frontend; or, with `wakePort`, the frontend
    /// and the wake service on that port.
    static func start(_ node: ScratchNode, wakePort: UInt16 = 0, umask: String? = nil, watch: Bool = false,
                      extra: String = "") throws -> (Daemon, socket: String) {
        let root = node.root + "/sb"
        let frontend = wakePort == 0 ? "OPENSHIFT_FRONTEND_HTTP_PLUGINS=\n" : ""
        try TestFiles.write(node.root + "/node.conf", "FRONTEND_WAKE_PORT=\(wakePort)\nAGENT_TRANSPORTS=local\n\(frontend)\(extra)")
        let daemon = try Daemon(root: root, basePath: node.basePath, extraArguments: watch ? [] : ["--no-watch"],
                                config: node.root + "/node.conf", umask: umask)
        return (daemon, root + "/var/run/openshift/node-agent.sock")
    }

    static func request(_ index: Int) -> String {
        #"{"agent":"openshift","action":"echo","data":{"msg":"m\#(index)"},"requestid":"r\#(index)"}"# + "\n"
    }

    @Test("a client that pipelines requests without reading replies stalls itself; the replies then come in order with their request ids",
          .timeLimit(.minutes(3)))
    func pipelinedRequestsAreBackPressured() async throws {
        let node = ScratchNode("sock-pipeline")
        defer { node.destroy() }
        let (daemon, path) = try Self.start(node)
        #expect(await eventually(within: 20) { daemon.logText.contains("local agent listening") }, "\(daemon.logText)")
        let socket = try #require(RawSocket(unixPath: path))
        let total = 200_000
        let sent = Counter()
        // The writer blocks once the daemon stops reading; it finishes once the replies are read.
        let writer = Thread {
            var index = 0
            while index < total {
                let batch = (index..<min(index + 500, total)).map(Self.request).joined()
                guard socket.sendAll(Array(batch.utf8)) else { return }
                index += 500
                sent.value.store(index, ordering: .relaxed)
            }
        }
        writer.start()
        // Wait until the writer stalls (no progress for a second).
        var peak = 0
        var last = -1
        var stalledSince = ContinuousClock.now
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            peak = max(peak, daemon.residentKiB)
            let now = sent.value.load(ordering: .relaxed)
            if now != last {
                last = now
                stalledSince = ContinuousClock.now
            } else if ContinuousClock.now - stalledSince > .seconds(1) {
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let stalledAt = sent.value.load(ordering: .relaxed)
        #expect(stalledAt < total, "the daemon read all \(total) requests without their replies being read")
        peak = max(peak, daemon.residentKiB)
        #expect(peak < 150 * 1024, "VmRSS \(peak) KiB with \(stalledAt) requests sent and no reply read")
        print("pipelining: writer stalled after \(stalledAt) requests; daemon VmRSS peak \(peak) KiB")

        // Now read (the first 20 000: a debug build answers a few thousand a second): the replies
        // come in request order, each with its request id.
        var reader = LineReader(socket: socket)
        var outOfOrder: [String] = []
        let checked = 20_000
        for index in 0..<checked {
            guard let line = reader.next(timeoutSeconds: 30) else {
                Issue.record("reply \(index) did not come: \(daemon.logText.suffix(2000))")
                break
            }
            let reply = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            if reply?["requestid"] as? String != "r\(index)" || (reply?["data"] as? [String: Any])?["msg"] as? String != "m\(index)" {
                outOfOrder.append(line)
                if outOfOrder.count > 3 { break }
            }
            if index % 2_000 == 0 { peak = max(peak, daemon.residentKiB) }
        }
        #expect(outOfOrder.isEmpty, "replies out of order or without their request id: \(outOfOrder)")
        #expect(peak < 150 * 1024, "VmRSS \(peak) KiB while replies were read")
        print("pipelining: \(checked) replies read in order; daemon VmRSS peak \(peak) KiB")
        // A client that goes away mid-pipeline costs nothing more; the next one is answered.
        shutdown(socket.fd, Int32(SHUT_RDWR))
        let next = try #require(RawSocket(unixPath: path))
        #expect(next.sendAll(Array(Self.request(1).utf8)))
        var nextReader = LineReader(socket: next)
        #expect(nextReader.next(timeoutSeconds: 10)?.contains(#""requestid":"r1""#) == true)
        #expect(daemon.stop() == 0)
    }

    @Test("200 connections each sending an endless request line: bounded memory, each refused with an error and closed",
          .timeLimit(.minutes(2)))
    func endlessLinesAreRefused() async throws {
        let node = ScratchNode("sock-longline")
        defer { node.destroy() }
        let (daemon, path) = try Self.start(node)
        #expect(await eventually(within: 20) { daemon.logText.contains("local agent listening") }, "\(daemon.logText)")
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 64 << 10)
        var sockets: [RawSocket] = []
        for _ in 0..<200 {
            let socket = try #require(RawSocket(unixPath: path))
            socket.setNonBlocking()
            sockets.append(socket)
        }
        // Send 1 MiB + 64 KiB of one line on each, as far as each connection takes it.
        let target = (1 << 20) + (64 << 10)
        var sent = [Int](repeating: 0, count: sockets.count)
        var done = [Bool](repeating: false, count: sockets.count)
        var peak = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while done.contains(false), ContinuousClock.now < deadline {
            var progressed = false
            for (index, socket) in sockets.enumerated() where !done[index] {
                let n = socket.send(Array(chunk.prefix(target - sent[index])))
                if n > 0 {
                    sent[index] += n
                    progressed = true
                    if sent[index] >= target { done[index] = true }
                } else if n < 0, errno != EAGAIN, errno != EWOULDBLOCK {
                    done[index] = true  // refused and closed
                }
            }
            peak = max(peak, daemon.residentKiB)
            if !progressed { try await Task.sleep(for: .milliseconds(20)) }
        }
        peak = max(peak, daemon.residentKiB)
        #expect(!done.contains(false), "some connections neither took the line nor were closed")
        // Every connection ends with an error reply and end-of-file.
        var errors = 0
        var statuses: [Int: Int] = [:]
        for socket in sockets {
            var reader = LineReader(socket: socket)
            if let line = reader.next(timeoutSeconds: 10),
               let reply = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let status = reply["statuscode"] as? Int, status != 0 {
                errors += 1
                statuses[status, default: 0] += 1
            }
            #expect(reader.next(timeoutSeconds: 10) == nil, "the connection is closed after the error")
            peak = max(peak, daemon.residentKiB)
        }
        #expect(errors == sockets.count, "\(errors) of \(sockets.count) connections got an error reply: \(statuses)")
        #expect(peak < 150 * 1024, "VmRSS \(peak) KiB")
        print("endless lines: 200 connections, error replies by status \(statuses); daemon VmRSS peak \(peak) KiB")
        // The daemon still answers.
        let after = try #require(RawSocket(unixPath: path))
        #expect(after.sendAll(Array(Self.request(7).utf8)))
        var reader = LineReader(socket: after)
        #expect(reader.next(timeoutSeconds: 10)?.contains(#""requestid":"r7""#) == true)
        #expect(daemon.stop() == 0)
    }

    @Test("under umask 0 the agent socket never appears with group or other permissions", .timeLimit(.minutes(2)))
    func socketIsBornPrivate() async throws {
        for attempt in 0..<3 {
            let node = ScratchNode("sock-mode")
            defer { node.destroy() }
            let root = node.root + "/sb"
            let path = root + "/var/run/openshift/node-agent.sock"
            let (daemon, _) = try Self.start(node, umask: "0")
            // Poll from before the socket exists until the daemon says it listens, and a moment after.
            var seen: Set<mode_t> = []
            var directoryModes: Set<mode_t> = []
            let deadline = ContinuousClock.now + .seconds(20)
            var listeningSince: ContinuousClock.Instant?
            while ContinuousClock.now < deadline {
                var info = stat()
                if lstat(path, &info) == 0 {
                    seen.insert(info.st_mode & 0o7777)
                    if stat(root + "/var/run/openshift", &info) == 0 { directoryModes.insert(info.st_mode & 0o7777) }
                }
                if listeningSince == nil, !seen.isEmpty, daemon.logText.contains("local agent listening") { listeningSince = .now }
                if let listeningSince, ContinuousClock.now - listeningSince > .milliseconds(200) { break }
            }
            #expect(seen == [0o600], "attempt \(attempt): socket modes seen \(seen.map { String($0, radix: 8) }): \(daemon.logText)")
            #expect(directoryModes.allSatisfy { $0 & 0o022 == 0 }, "its directory: \(directoryModes.map { String($0, radix: 8) })")
            // It works, for its owner.
            let socket = try #require(RawSocket(unixPath: path))
            #expect(socket.sendAll(Array(Self.request(1).utf8)))
            var reader = LineReader(socket: socket)
            #expect(reader.next(timeoutSeconds: 10)?.contains(#""statuscode":0"#) == true)
            #expect(daemon.stop() == 0)
        }
    }

    @Test("idle and slow connections to the wake port neither delay another client's answer nor stay open",
          .timeLimit(.minutes(2)))
    func wakePortResistsIdleClients() async throws {
        let node = ScratchNode("sock-wake")
        defer { node.destroy() }
        let port = HTTPProbe.freePort()
        let (daemon, _) = try Self.start(node, wakePort: port)
        #expect(await eventually(within: 20) { HTTPProbe.get(port: port, headers: ["Host: nobody.example.com"])?.status == 404 },
                "\(daemon.logText)")
        // 600 connections that send nothing (more than the 512 the service keeps open), and 32
        // that send half a head.
        var idle: [RawSocket] = []
        for _ in 0..<600 { idle.append(try #require(RawSocket(tcpPort: port))) }
        var slow: [RawSocket] = []
        for _ in 0..<32 {
            let socket = try #require(RawSocket(tcpPort: port))
            #expect(socket.sendAll(Array("GET / HTTP/1.1\r\nHost: slow.example.com\r\n".utf8)))
            slow.append(socket)
        }
        let started = ContinuousClock.now
        let answer = HTTPProbe.get(port: port, headers: ["Host: unknown.example.com"])
        let elapsed = ContinuousClock.now - started
        #expect(answer?.status == 404, "\(String(describing: answer))")
        // A client served behind them would wait for their 5 s head timeout.
        #expect(elapsed < .seconds(4), "answered after \(elapsed) with \(idle.count + slow.count) idle connections open")
        print("wake: 404 for an unknown host in \(elapsed) with \(idle.count + slow.count) idle connections open")
        // The oldest silent ones made room: only 256 unfinished heads are kept.
        // (A busy machine may deliver the closes late: look again for a few seconds.)
        var open = idle
        var evicted = 0
        let enough = idle.count + slow.count - 256
        let lookUntil = ContinuousClock.now + .seconds(5)
        while evicted < enough && ContinuousClock.now < lookUntil {
            open = open.filter { socket in
                var reader = LineReader(socket: socket)
                if reader.next(timeoutSeconds: 0.01) == nil, reader.closed {
                    evicted += 1
                    return false
                }
                return true
            }
        }
        #expect(evicted >= enough, "\(evicted) of the silent connections were closed")

        // The slow ones are closed within the head deadline (5 s) plus a little.
        let closedBy = ContinuousClock.now + .seconds(8)
        for socket in slow {
            var reader = LineReader(socket: socket)
            let remaining = max(0.1, seconds(closedBy - ContinuousClock.now))
            #expect(reader.next(timeoutSeconds: remaining) == nil && reader.closed, "a half-sent head is cut off")
        }
        #expect(daemon.stop() == 0)
    }

    enum StartState: String, CaseIterable, Sendable {
        case wakePortBusy = "the wake port is taken"
        case brokerUnreachable = "the MCollective broker does not answer"
        case socketPathUnusable = "the local socket's path is a file"
        case socketPathTooLong = "the local socket's path is too long"
    }

    @Test("SIGTERM stops the daemon cleanly whatever failed at start", .timeLimit(.minutes(2)), arguments: StartState.allCases)
    func sigtermInEveryStartState(_ state: StartState) async throws {
        let node = ScratchNode("sock-term")
        defer { node.destroy() }
        let root = node.root + "/sb"
        var config = "AGENT_TRANSPORTS=local\nFRONTEND_WAKE_PORT=0\nOPENSHIFT_FRONTEND_HTTP_PLUGINS=\n"
        var expected = ""
        var holder: RawSocket?
        switch state {
        case .wakePortBusy:
            let port = HTTPProbe.freePort()
            holder = RawSocket(listeningOn: port)
            #expect(holder != nil)
            config = "AGENT_TRANSPORTS=local\nFRONTEND_WAKE_PORT=\(port)\n"
            expected = "idle gears will not be woken"
        case .brokerUnreachable:
            let port = HTTPProbe.freePort()
            config = "AGENT_TRANSPORTS=mcollective,local\nMCOLLECTIVE_CONFIG=/server.cfg\nFRONTEND_WAKE_PORT=0\nOPENSHIFT_FRONTEND_HTTP_PLUGINS=\n"
            try TestFiles.write(root + "/server.cfg", MCollectiveConfig.text(identity: "term.test", port: Int(port), psk: "psk"))
            expected = "STOMP connection failed"
        case .socketPathUnusable:
            try TestFiles.write(root + "/file", "")
            config += "AGENT_SOCKET=/file/agent.sock\n"
            expected = "the local agent is off"
        case .socketPathTooLong:
            config += "AGENT_SOCKET=/" + String(repeating: "d", count: 120) + "/agent.sock\n"
            expected = "the local agent is off"
        }
        try TestFiles.write(node.root + "/node.conf", config)
        let daemon = try Daemon(root: root, basePath: node.basePath, extraArguments: ["--no-watch"], config: node.root + "/node.conf")
        #expect(await eventually(within: 20) { daemon.logText.contains(expected) }, "\(daemon.logText)")
        try await Task.sleep(for: .milliseconds(200))
        #expect(daemon.isRunning, "\(daemon.logText)")
        let status = await daemon.stop(within: 5)
        #expect(status == 0, "\(state.rawValue): exit status \(String(describing: status)) after SIGTERM: \(daemon.logText.suffix(1500))")
        _ = holder
    }

    @Test("every descriptor the daemon holds is close-on-exec: listeners, their connections, the broker's, the event loops'",
          .timeLimit(.minutes(3)))
    func everyDescriptorIsCloseOnExec() async throws {
        let node = ScratchNode("sock-cloexec")
        defer { node.destroy() }
        let port = HTTPProbe.freePort()
        // A "broker" that takes the connection and never answers: the daemon's STOMP socket stays open.
        let brokerPort = HTTPProbe.freePort()
        let broker = try #require(RawSocket(listeningOn: brokerPort))
        try TestFiles.write(node.root + "/sb/server.cfg", MCollectiveConfig.text(identity: "fds.test", port: Int(brokerPort), psk: "psk"))
        let (daemon, path) = try Self.start(node, wakePort: port, watch: true,
                                            extra: "AGENT_TRANSPORTS=mcollective,local\nMCOLLECTIVE_CONFIG=/server.cfg\n")
        #expect(await eventually(within: 20) { daemon.logText.contains("local agent listening") }, "\(daemon.logText)")
        #expect(await eventually(within: 20) { HTTPProbe.get(port: port, headers: ["Host: nobody.example.com"])?.status == 404 })
        let stomp = broker.accept(timeoutSeconds: 10)
        #expect(stomp != nil, "the daemon connects to the broker: \(daemon.logText)")
        // Connections held open on both sockets while the descriptors are listed.
        let agent = try #require(RawSocket(unixPath: path))
        let wake = try #require(RawSocket(tcpPort: port))
        #expect(agent.sendAll(Array(Self.request(1).utf8)))
        var reader = LineReader(socket: agent)
        #expect(reader.next(timeoutSeconds: 10) != nil)
        try await Task.sleep(for: .milliseconds(200))

        var inheritable: [String] = []
        var count = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd")) ?? [] {
            guard let fd = Int(name), fd > 2 else { continue }
            count += 1
            let info = TestFiles.read("/proc/\(daemon.pid)/fdinfo/\(fd)") ?? ""
            let flags = info.split(separator: "\n").first { $0.hasPrefix("flags:") }.flatMap { Int($0.dropFirst(6).trimmingCharacters(in: .whitespaces), radix: 8) }
            if let flags, flags & 0o2000000 == 0 {
                let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(daemon.pid)/fd/\(fd)")) ?? "?"
                inheritable.append("\(fd) -> \(target)")
            }
        }
        #expect(count >= 4, "the listeners, their connections and the event loops are there")
        #expect(inheritable.isEmpty, "descriptors without O_CLOEXEC: \(inheritable)")
        _ = (wake, stomp)
        #expect(daemon.stop() == 0)
    }
}

final class Counter: Sendable {
    let value = Atomic<Int>(0)
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// A raw client socket, for attacks.
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    init?(unixPath: String) {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(unixPath.utf8)
        guard fd >= 0, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
    }

    init?(tcpPort: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = Self.loopback(tcpPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, connected == 0 else {
            close(fd)
            return nil
        }
    }

    /// A listener on 127.0.0.1:`port` that never accepts (a port someone else holds).
    init?(listeningOn port: UInt16) {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = Self.loopback(port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard fd >= 0, bound == 0, listen(fd, 1) == 0 else {
            close(fd)
            return nil
        }
    }

    private init(accepted: Int32) { fd = accepted }

    /// The next connection to this listener; nil if none comes within `timeoutSeconds`.
    func accept(timeoutSeconds: Double) -> RawSocket? {
        var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, Int32(timeoutSeconds * 1000)) == 1 else { return nil }
        let client = Glibc.accept(fd, nil, nil)
        return client >= 0 ? RawSocket(accepted: client) : nil
    }

    private static func loopback(_ port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return address
    }

    func setNonBlocking() { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }

    /// One send: bytes written, or -1 with errno.
    func send(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Sends everything (blocking); false if the connection fails first.
    func sendAll(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    deinit { close(fd) }
}

/// Reads newline-terminated lines from a socket, with a timeout per line.
struct LineReader {
    let socket: RawSocket
    private var buffer: [UInt8] = []
    private var start = 0
    /// Set when the peer closed the connection (end-of-file or reset).
    private(set) var closed = false

    init(socket: RawSocket) { self.socket = socket }

    /// The next line without its newline; nil on end-of-file, error or timeout.
    mutating func next(timeoutSeconds: Double) -> String? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeoutSeconds * 1000))
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[start..<newline], as: UTF8.self)
                start = newline + 1
                if start > 1 << 20 {
                    buffer.removeFirst(start)
                    start = 0
                }
                return line
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero, !closed else { return nil }
            var poller = pollfd(fd: socket.fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, Int32(max(1, seconds(left) * 1000))) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            let n = recv(socket.fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                buffer += chunk[0..<n]
            } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                closed = true
            }
        }
    }
}
