/// The states a gear can be in (`app-root/runtime/.state`).
public enum GearState: String, Sendable, CaseIterable, Codable {
    case building, deploying, idle, new, started, stopped, unknown
}
