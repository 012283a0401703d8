import NodeConfig
import Logging
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// systemd's service notification protocol (sd_notify(3)), without libsystemd: datagrams of
/// `KEY=value` lines sent to the Unix socket named by `NOTIFY_SOCKET` (a path, or an abstract
/// name when it starts with `@`).
///
/// The variables are read once and removed from the environment, so that no hook or gear
/// process the daemon starts inherits them: a gear must not be able to tell systemd the node is
/// ready, stopping or alive. Without `NOTIFY_SOCKET` (not started by systemd) every call is a no-op.
public final class SystemdNotifier: Sendable {
    let socketPath: String?
    /// Half of `WATCHDOG_USEC`, when the watchdog is on and meant for this process.
    public let watchdogInterval: Duration?

    public init(socketPath: String?, watchdogInterval: Duration?) {
        self.socketPath = socketPath
        self.watchdogInterval = socketPath == nil ? nil : watchdogInterval
    }

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID`, then unsets them.
    public static func fromEnvironment() -> SystemdNotifier {
        func take(_ name: String) -> String? {
            defer { unsetenv(name) }
            return getenv(name).map { String(cString: $0) }
        }
        let socket = take("NOTIFY_SOCKET").flatMap { $0.isEmpty ? nil : $0 }
        let usec = take("WATCHDOG_USEC").flatMap(UInt64.init)
        let pid = take("WATCHDOG_PID").flatMap(pid_t.init)
        var interval: Duration?
        if let usec, usec > 0, pid == nil || pid == getpid() {
            interval = .microseconds(Int64(clamping: usec / 2))
        }
        return SystemdNotifier(socketPath: socket, watchdogInterval: interval)
    }

    public var isActive: Bool { socketPath != nil }

    /// Sends one notification (`["READY=1", "STATUS=..."]`). Returns false when it could not be
    /// sent (no socket, or the send failed); notifications are best effort, as in libsystemd.
    @discardableResult
    public func notify(_ fields: [String]) -> Bool {
        guard let socketPath, let address = UnixAddress(socketPath) else { return false }
        let message = Array(fields.joined(separator: "\n").utf8)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let sent = message.withUnsafeBytes { bytes in
            address.withSockaddr { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, $1) }
        }
        return sent == message.count
    }
}

/// The parts the daemon waits for before it calls itself ready: the first rescan, and each
/// listener it was configured with (bound, or given up on and logged).
public final class Readiness: Sendable {
    private struct State {
        var pending: Set<String>
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
    }
    private let state: Mutex<State>

    public init(parts: Set<String>) {
        state = Mutex(State(pending: parts))
    }

    /// Marks one part ready; the last one releases the waiters.
    public func ready(_ part: String) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.pending.remove(part)
            guard state.pending.isEmpty else { return [] }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        waiters.forEach { $0.resume() }
    }

    public var isReady: Bool { state.withLock { $0.pending.isEmpty } }

    /// Returns when every part is ready, or when the task is cancelled.
    public func wait() async {
        let id = state.withLock { state -> Int in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending.isEmpty || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}

/// Tells systemd what the daemon is doing: `READY=1` once `readiness` is complete, `STATUS=`
/// lines (`status()` is asked again after each rescan, through `statusChanged`), `WATCHDOG=1`
/// at half of `WatchdogSec` from the cooperative pool (a daemon whose tasks no longer run stops
/// pinging and is restarted), and `STOPPING=1` when the graceful shutdown begins. Once ready,
/// it also hands the pages of the start-up code back to the kernel (`ProgramText.release`).
public struct SystemdService: Service {
    let notifier: SystemdNotifier
    let readiness: Readiness
    let status: @Sendable () -> String
    let updates: AsyncStream<Void>
    let logger: Logger

    public init(notifier: SystemdNotifier, readiness: Readiness, updates: AsyncStream<Void>,
                logger: Logger, status: @escaping @Sendable () -> String) {
        self.notifier = notifier
        self.readiness = readiness
        self.updates = updates
        self.logger = logger
        self.status = status
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await cancelWhenGracefulShutdown { [self] in
                await readiness.wait()
                if Task.isCancelled { return }
                let text = status()
                notifier.notify(["READY=1", "STATUS=\(text)", "MAINPID=\(getpid())"])
                // Start-up is over: most of the code it ran is not needed again (ProgramText).
                let released = ProgramText.release()
                logger.notice("ready", metadata: ["status": "\(text)", "systemd": "\(notifier.isActive)",
                                                  "startup_code_released_kb": "\(released.map { $0 / 1024 } ?? 0)"])
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await _ in updates { notifier.notify(["STATUS=\(status())"]) }
                    }
                    if let interval = notifier.watchdogInterval {
                        group.addTask {
                            while !Task.isCancelled {
                                notifier.notify(["WATCHDOG=1"])
                                try? await Task.sleep(for: interval)
                            }
                        }
                    }
                    await group.waitForAll()
                }
            }
        } onGracefulShutdown: { [notifier] in
            notifier.notify(["STOPPING=1", "STATUS=stopping"])
        }
    }
}
