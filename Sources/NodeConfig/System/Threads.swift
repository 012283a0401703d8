import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// Long-lived threads of the node's own (the action pool's workers), started with pthreads:
/// Foundation's `Thread` would be the only reason to link the full Foundation.
public enum Threads {
    /// Starts `body` on a new detached thread named `name` (cut to the kernel's 15 bytes).
    /// Returns false, and runs nothing, when the thread cannot be created.
    @discardableResult
    public static func detach(name: String, _ body: @escaping @Sendable () -> Void) -> Bool {
        final class Start: Sendable {
            let name: String
            let body: @Sendable () -> Void
            init(name: String, body: @escaping @Sendable () -> Void) {
                self.name = name
                self.body = body
            }
        }
        let start = Unmanaged.passRetained(Start(name: name, body: body))
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let created = pthread_create(&thread, &attributes, { raw in
            let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            _ = cl_set_thread_name(start.name)
            start.body()
            return nil
        }, start.toOpaque()) == 0
        if !created { start.release() }
        return created
    }
}
