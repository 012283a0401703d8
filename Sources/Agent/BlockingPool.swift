import Dispatch
import NodeConfig

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A fixed set of threads for the blocking work of actions (hooks, useradd, file trees).
///
/// Gear operations block on child processes; running them on Swift's cooperative pool (one
/// thread per core) would stall every other request. This pool bounds how many actions run at
/// once; further ones queue, in order, without a thread each.
public final class BlockingPool: Sendable {
    struct State {
        var jobs: [@Sendable () -> Void] = []
        var head = 0
        var busy = 0
    }

    public let size: Int
    let state = Mutex(State())
    let ready = DispatchSemaphore(value: 0)

    public init(size: Int, name: String = "agent") {
        self.size = max(1, size)
        for index in 0..<self.size {
            Threads.detach(name: "\(name)-\(index)") { [self] in self.work() }
        }
    }

    /// Jobs waiting for a thread.
    public var queued: Int { state.withLock { $0.jobs.count - $0.head } }
    /// Jobs running now.
    public var running: Int { state.withLock { $0.busy } }

    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            state.withLock { $0.jobs.append { continuation.resume(returning: body()) } }
            ready.signal()
        }
    }

    func work() {
        while true {
            ready.wait()
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                guard state.head < state.jobs.count else { return nil }
                let job = state.jobs[state.head]
                state.head += 1
                state.busy += 1
                if state.head > 1024 && state.head * 2 > state.jobs.count {
                    state.jobs.removeFirst(state.head)
                    state.head = 0
                }
                return job
            }
            guard let job else { continue }
            job()
            state.withLock { $0.busy -= 1 }
        }
    }
}
