import Synchronization
import Logging

/// Bootstraps swift-log once per process: stderr, at the given level.
public enum NodeLogging {
    private static let done = Mutex(false)

    /// Once per process; later calls do nothing.
    public static func bootstrap(level: Logger.Level) {
        guard done.withLock({ (value: inout Bool) -> Bool in
            defer { value = true }
            return !value
        }) else { return }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

import ArgumentParser
