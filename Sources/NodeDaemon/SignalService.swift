import Logging
import ServiceLifecycle
import UnixSignals

/// The one owner of SIGHUP: each signal asks for a rescan. (The service group owns SIGTERM and
/// SIGINT.)
public struct SignalService: Service {
    private let rescans: RescanService
    private let logger: Logger

    public init(rescans: RescanService, logger: Logger) {
        self.rescans = rescans
        self.logger = logger
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withGracefulShutdownHandler {
            for await _ in signals.cancelOnGracefulShutdown() {
                logger.info("SIGHUP: rescanning cartridges")
                rescans.request(.signal)
            }
        } onGracefulShutdown: {}
    }
}
