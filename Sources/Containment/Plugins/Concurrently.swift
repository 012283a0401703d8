import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Runs `work` on a thread of its own while `body` runs on the calling thread, and returns when
/// both have ended, throwing `body`'s error first, then `work`'s. Nothing is left running when it
/// returns or throws, so `work` may use what the caller lends it for the call. The caller's
/// `Cancellation` reaches the thread too. Without a thread (pthread_create failed) the two run one
/// after the other.
///
/// For work that does not depend on a wait that needs no CPU of ours (the account tools, which
/// spend their time in fsync): the wait stays on the calling thread and starts at once, the
/// work goes beside it.
func concurrently(beside work: () throws(ContainmentError) -> Void,
                  _ body: () throws(ContainmentError) -> Void) throws(ContainmentError) {
    try withoutActuallyEscaping(work) { (work) throws(ContainmentError) in
        let job = BesideJob(work, cancellation: Cancellation.current)
        let retained = Unmanaged.passRetained(job)
        var thread = pthread_t()
        let started = pthread_create(&thread, nil, { raw in
            Unmanaged<BesideJob>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, retained.toOpaque()) == 0
        if !started {
            retained.release()
            job.run()
        }
        var failure: ContainmentError?
        do throws(ContainmentError) { try body() } catch { failure = error }
        if started { pthread_join(thread, nil) }
        if let failure { throw failure }
        if let error = job.error { throw error }
    }
}

/// The thread's half of `concurrently`: its closure is only called before `pthread_join`
/// returns, and `error` is read only after it.
private final class BesideJob: @unchecked Sendable {
    let work: () throws(ContainmentError) -> Void
    let cancellation: Cancellation?
    var error: ContainmentError?

    init(_ work: @escaping () throws(ContainmentError) -> Void, cancellation: Cancellation?) {
        self.work = work
        self.cancellation = cancellation
    }

    func run() {
        Cancellation.$current.withValue(cancellation) {
            do throws(ContainmentError) { try work() } catch { self.error = error }
        }
    }
}
