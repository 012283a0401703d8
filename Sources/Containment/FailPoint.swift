import Synchronization

/// Named points where tests make a multi-step operation fail, to check its rollback. Armed
/// per gear, so tests running side by side do not trip each other. Disarmed unless a test arms one.
public enum FailPoint {
    private static let armed = Mutex<Set<String>>([])

    public static func arm(_ name: String, _ gear: String) { armed.withLock { _ = $0.insert(name + "@" + gear) } }
    public static func disarm(_ name: String, _ gear: String) { armed.withLock { _ = $0.remove(name + "@" + gear) } }

    public static func hit(_ name: String, _ gear: String) throws(ContainmentError) {
        if armed.withLock({ $0.contains(name + "@" + gear) }) {
            throw .invalidArgument(field: "failpoint", value: name, reason: "injected failure")
        }
    }
}
