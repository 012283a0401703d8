import Cartridges
import Dispatch
import Logging
import ServiceLifecycle

/// Runs the repository's rescans: once at start, then whenever a trigger arrives.
///
/// Triggers are buffered newest-only, so a burst of signals or change events while a rescan
/// runs collapses into one more rescan afterwards. Rescans are blocking file work; they run on a
/// dedicated queue so that they never occupy a thread of Swift's cooperative pool.
public struct RescanService: Service {
    private let repository: CartridgeRepository
    private let logger: Logger
    private let triggers: AsyncStream<RescanTrigger>
    private let continuation: AsyncStream<RescanTrigger>.Continuation
    private let queue = DispatchQueue(label: "openshift.node.rescan")
    /// Called after each rescan (the daemon's tests read the log; others may observe here).
    private let onReport: @Sendable (RescanTrigger, RescanReport) -> Void

    public init(repository: CartridgeRepository, logger: Logger,
                onReport: @escaping @Sendable (RescanTrigger, RescanReport) -> Void = { _, _ in }) {
        self.repository = repository
        self.logger = logger
        self.onReport = onReport
        (triggers, continuation) = AsyncStream.makeStream(of: RescanTrigger.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Asks for a rescan; never blocks.
    public func request(_ trigger: RescanTrigger) {
        continuation.yield(trigger)
    }

    public func run() async throws {
        continuation.yield(.start)
        await withGracefulShutdownHandler {
            for await trigger in triggers {
                await rescan(trigger)
            }
        } onGracefulShutdown: { [continuation] in
            continuation.finish()
        }
    }

    private func rescan(_ trigger: RescanTrigger) async {
        let repository = self.repository
        let report = await withCheckedContinuation { (done: CheckedContinuation<RescanReport, Never>) in
            queue.async { done.resume(returning: repository.rescan()) }
        }
        log(report, trigger: trigger)
        onReport(trigger, report)
    }

    private func log(_ report: RescanReport, trigger: RescanTrigger) {
        if let problem = report.basePathProblem {
            logger.error("rescan failed", metadata: ["problem": "\(problem)", "trigger": "\(trigger.rawValue)"])
        }
        for problem in report.repositoryProblems {
            logger.warning("skipped repository entry", metadata: ["problem": "\(problem)"])
        }
        for item in report.items {
            switch item.outcome {
            case .installed(let tuples):
                logger.info("installed cartridge \(tuples.joined(separator: " ")) from \(item.source)")
            case .unchanged(let tuples):
                logger.info("unchanged cartridge \(tuples.joined(separator: " ")) from \(item.source)")
            case .failed(let reason):
                logger.warning("failed to install cartridge from \(item.source): \(reason)")
            }
        }
        logger.notice("\(report.summary) (trigger: \(trigger.rawValue))")
    }
}
