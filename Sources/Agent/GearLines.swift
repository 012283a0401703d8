import Synchronization

/// One waiting line per gear, so that one gear's requests cannot take the node's threads.
///
/// Requests for one gear run one at a time (they would serialise on the gear's lock anyway);
/// the ones behind wait here as suspended tasks, holding no thread of the pool. At most `limit`
/// requests per gear are running or waiting; more are refused at once with a reason, rather
/// than queued without end behind a gear whose hooks hang.
final class GearLines: Sendable {
    struct Line {
        /// Requests admitted: the running one and those waiting.
        var admitted = 0
        var running = false
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    let limit: Int
    private let lines = Mutex<[String: Line]>([:])

    init(limit: Int) { self.limit = max(1, limit) }

    /// Admits one more request for `gear`; false when `limit` are already running or waiting.
    func admit(_ gear: String) -> Bool {
        lines.withLock { lines in
            var line = lines[gear] ?? Line()
            guard line.admitted < limit else { return false }
            line.admitted += 1
            lines[gear] = line
            return true
        }
    }

    /// Waits (suspended, no thread held) until it is this request's turn on the gear.
    func waitTurn(_ gear: String) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = lines.withLock { lines -> Bool in
                guard var line = lines[gear] else { return true }
                if line.running {
                    line.waiting.append(continuation)
                    lines[gear] = line
                    return false
                }
                line.running = true
                lines[gear] = line
                return true
            }
            if now { continuation.resume() }
        }
    }

    /// Ends a request's turn (and its admission): the next one waiting goes.
    func finish(_ gear: String) {
        let next = lines.withLock { lines -> CheckedContinuation<Void, Never>? in
            guard var line = lines[gear] else { return nil }
            line.admitted -= 1
            if line.waiting.isEmpty {
                line.running = false
                lines[gear] = line.admitted == 0 ? nil : line
                return nil
            }
            let next = line.waiting.removeFirst()
            lines[gear] = line
            return next
        }
        next?.resume()
    }

    /// Requests admitted for `gear` now (running or waiting).
    func admitted(_ gear: String) -> Int { lines.withLock { $0[gear]?.admitted ?? 0 } }
}
