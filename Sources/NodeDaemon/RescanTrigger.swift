/// Why a rescan of `CARTRIDGE_BASE_PATH` was asked for.
public enum RescanTrigger: String, Sendable {
    case start
    case signal = "SIGHUP"
    case watch = "directory change"
    case request
}
