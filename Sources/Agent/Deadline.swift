import Synchronization

/// Runs `work` with a time budget. When the budget runs out first, returns `onTimeout()` at once;
/// the work itself cannot be interrupted (it may be half way through a hook) and finishes in the
/// background, logged by the caller. The requester always gets an answer instead of silence.
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
        let timer = Task {
            guard (try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))) != nil else { return }
            finish(onTimeout())
        }
        Task {
            let value = await work()
            timer.cancel()
            finish(value)
        }
    }
}
