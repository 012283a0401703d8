import Dispatch
import Synchronization

/// Runs `work` with a time budget. When the budget runs out first, returns `onTimeout()` at once;
/// the work itself cannot be interrupted (it may be half way through a hook) and finishes in the
/// background, logged by the caller. The requester always gets an answer instead of silence.
///
/// The timer is a dispatch timer cancelled as soon as the work ends: a cancelled `Task.sleep`
/// keeps its memory until its deadline, which for a 234 s budget at a thousand requests a
/// second is hundreds of megabytes.
func withDeadline<T: Sendable>(seconds: Double, _ work: @escaping @Sendable () async -> T,
                               onTimeout: @escaping @Sendable () -> T) async -> T {
    let resumed = Mutex(false)
    return await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
        let finish: @Sendable (T) -> Void = { value in
            let first = resumed.withLock { done -> Bool in
                if done { return false }
                done = true
                return true
            }
            if first { continuation.resume(returning: value) }
        }
        let timer = DispatchSource.makeTimerSource(queue: .global())
        // Clamped: Int(_:) traps on a Double out of range, and DispatchTime arithmetic on overflow.
        let milliseconds = seconds.isNaN ? 0 : Int(min(max(seconds * 1000, 0), Double(Int32.max)))
        timer.schedule(deadline: .now() + .milliseconds(milliseconds))
        timer.setEventHandler { finish(onTimeout()) }
        timer.resume()
        Task {
            let value = await work()
            timer.cancel()
            finish(value)
        }
    }
}
