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
