import Gears

/// `gear start|stop|restart|status` from inside the gear: each cartridge's `bin/control
/// <action>` as the gear itself (secondaries first on start, the primary first on stop, as the
/// node's `GearManager.control` does), and the gear's state file and stop lock recorded the way
/// the node records them: a start removes the stop lock and, if every control succeeded, sets
/// `started`; a stop writes the stop lock and sets `stopped`.
public struct GearController {
    public enum Action: String, Sendable, CaseIterable {
        case start, stop, restart, status
    }

    public let gear: InGear

    public init(gear: InGear) { self.gear = gear }

    /// Runs the action; the controls' output (stdout then stderr of each) is returned, or carried
    /// by the error of the first control that failed.
    @discardableResult
    public func run(_ action: Action) throws(InGearError) -> String {
        var ordered = gear.startOrder
        if action == .stop { ordered.reverse() }
        var output = ""
        var failure: InGearError?
        for cartridge in ordered where gear.hasControl(cartridge) {
            let result = try gear.control(action.rawValue, cartridge)
            output += result.stdout + result.stderr
            if result.timedOut { output += "control \(action.rawValue) of \(cartridge.name) exceeded \(Int(gear.hookTimeoutSeconds)) s\n" }
            if result.status != 0 && action != .status && failure == nil {
                failure = .controlFailed(cartridge: cartridge.name, action: action.rawValue, status: result.status,
                                         output: result.stdout + result.stderr)
            }
        }
        switch action {
        case .start, .restart:
            try gear.setStopLock(false)
            if failure == nil { try gear.setState(.started) }
        case .stop:
            try gear.setStopLock(true)
            try gear.setState(.stopped)
        case .status:
            break
        }
        if let failure { throw failure }
        return output
    }

    /// Every cartridge's `control <action>` for the snapshot and restore hooks (`pre-snapshot`,
    /// ...): cartridges without `bin/control` are skipped; a failing one stops the sequence.
    func hook(_ action: String) throws(InGearError) -> String {
        var output = ""
        for cartridge in gear.startOrder where gear.hasControl(cartridge) {
            let result = try gear.control(action, cartridge)
            output += result.stdout + result.stderr
            guard result.status == 0 else {
                throw .controlFailed(cartridge: cartridge.name, action: action, status: result.status, output: result.stdout + result.stderr)
            }
        }
        return output
    }

    /// What a snapshot or restore remembers before it stops the gear.
    struct Saved {
        var state: GearState
        var stopLock: Bool
        var stopped: Bool
    }

    /// Stops the gear unless it is already down (`stopped` or `idle`: an idle gear stays idle).
    func stopForMaintenance(say: (String) -> Void) throws(InGearError) -> Saved {
        let saved = Saved(state: gear.state, stopLock: gear.hasStopLock, stopped: false)
        guard saved.state != .stopped && saved.state != .idle else { return saved }
        say("Stopping gear...")
        do throws(InGearError) {
            say(try run(.stop))
        } catch {
            // A failed stop leaves the gear as it was, as far as this command can tell.
            try? gear.setState(saved.state)
            try? gear.setStopLock(saved.stopLock)
            throw error
        }
        return Saved(state: saved.state, stopLock: saved.stopLock, stopped: true)
    }

    /// Runs `body` with the gear stopped (`stopForMaintenance`), then puts it back (`resume`)
    /// whatever `body` did; `body`'s error wins over `resume`'s.
    func whileStopped(say: (String) -> Void, _ body: () throws(InGearError) -> Void) throws(InGearError) {
        let saved = try stopForMaintenance(say: say)
        var failure: InGearError?
        do throws(InGearError) {
            try body()
        } catch {
            failure = error
        }
        do throws(InGearError) {
            try resume(saved, say: say)
        } catch {
            failure = failure ?? error
        }
        if let failure { throw failure }
    }

    /// Puts the gear back: started again if it was started, else its state and stop lock as before.
    func resume(_ saved: Saved, say: (String) -> Void) throws(InGearError) {
        guard saved.stopped else { return }
        if saved.state == .started {
            say("Starting gear...")
            say(try run(.start))
        } else {
            try gear.setState(saved.state)
            try gear.setStopLock(saved.stopLock)
        }
    }
}
