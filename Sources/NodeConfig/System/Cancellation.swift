import Synchronization

/// The time budget of one operation (an agent request), visible to everything it calls on the
/// same thread without being passed through every signature: `Spawner` kills a child's process
/// group once it is cancelled, `LockFile` stops waiting. Set with
/// `Cancellation.$current.withValue(c) { ... }` around the work; `cancel()` from any thread.
public final class Cancellation: Sendable {
    @TaskLocal public static var current: Cancellation?

    private let state = Atomic<Bool>(false)

    public init() {}

    public var isCancelled: Bool { state.load(ordering: .acquiring) }

    public func cancel() { state.store(true, ordering: .releasing) }
}
