import Foundation

/// Waits until `condition` holds, checking every 50 ms, for at most `seconds`; returns whether
/// it held. For tests that wait on another process (a daemon, a server a hook started).
public func eventually(within seconds: Double, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try condition()
}

/// Runs blocking work (a child process waited for, a gear created with `useradd`) on a thread of
/// its own and awaits it, so a long test never holds one of the few threads Swift's concurrency
/// pool has (two on a 2-core machine) that every other test's tasks need. Keep `#expect` out of
/// `body`: return what to check.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.stackSize = 8 << 20
        thread.start()
    }
}
