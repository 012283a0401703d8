import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Bootstraps swift-log once per process: stderr, at the given level.
public enum NodeLogging {
    private static let done = Mutex(false)

    /// Once per process; later calls do nothing.
    public static func bootstrap(level: Logger.Level) {
        guard done.withLock({ (value: inout Bool) -> Bool in
            defer { value = true }
            return !value
        }) else { return }
        // Without TZ, glibc stats /etc/localtime for every timestamp; ":/etc/localtime" reads
        // it once. An explicit TZ is kept.
        setenv("TZ", ":/etc/localtime", 0)
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

import ArgumentParser
