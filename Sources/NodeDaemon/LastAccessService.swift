import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Frontend
import Logging
import ServiceLifecycle

/// Folds the frontend's access log into the per-gear last-access records every few seconds,
/// so `oo-admin-ctl-gears unused` (and an idler) sees fresh times.
public struct LastAccessService: Service {
    let records: LastAccess
    let interval: Duration
    let logger: Logger

    public init(records: LastAccess, interval: Duration = .seconds(10), logger: Logger) {
        self.records = records
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        // A graceful shutdown cancels the sleep, so stopping never waits out an interval.
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try records.update() } catch { logger.warning("last-access records not updated: \(error)") }
                try? await Task.sleep(for: interval)
            }
        }
    }
}
