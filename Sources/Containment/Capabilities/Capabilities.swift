import CCap
import CLinux

#if canImport(Glibc)
import Glibc
#endif

/// libcap and the capability prctls, wrapped once: how a gear process loses every capability
/// for good (bounding set emptied, ambient and inheritable sets cleared, then the uid change
/// clears permitted and effective).
public enum Capabilities {
    /// The highest capability number this kernel knows.
    public static var lastCapability: Int32 {
        if let text = try? String(readingFile: "/proc/sys/kernel/cap_last_cap"),
           let value = Int32(text.filter { $0.isNumber }) { return value }
        return 40
    }

    /// Empties the bounding set: no later exec, setuid binary included, can gain a capability.
    /// Needs CAP_SETPCAP, so it happens before the uid change.
    public static func dropBoundingSet() throws(ContainmentError) {
        for cap in 0...lastCapability where cl_capbset_read(cap) == 1 {
            guard cl_capbset_drop(cap) == 0 else { throw .system(step: "PR_CAPBSET_DROP", target: "capability \(cap)", errno: errno) }
        }
    }

    public static func clearAmbient() throws(ContainmentError) {
        // EINVAL: a kernel without ambient capabilities has none to clear.
        guard cl_cap_ambient_clear_all() == 0 || errno == EINVAL else {
            throw .system(step: "PR_CAP_AMBIENT_CLEAR_ALL", target: "self", errno: errno)
        }
    }

    /// Clears the effective, permitted and inheritable sets of this thread.
    public static func clearProcessSets() throws(ContainmentError) {
        guard let empty = cap_init() else { throw .system(step: "cap_init", target: "self", errno: errno) }
        defer { cap_free(UnsafeMutableRawPointer(empty)) }
        guard cap_set_proc(empty) == 0 else { throw .system(step: "cap_set_proc", target: "self", errno: errno) }
    }

    /// The capability sets of a process, as `/proc/<pid>/status` reports them.
    public struct Sets: Sendable, Equatable {
        public var inheritable: UInt64
        public var permitted: UInt64
        public var effective: UInt64
        public var bounding: UInt64
        public var ambient: UInt64

        public var isEmpty: Bool { inheritable == 0 && permitted == 0 && effective == 0 && bounding == 0 && ambient == 0 }

        /// Parses the `Cap*:` lines of a status file.
        public init?(status: String) {
            var values: [String: UInt64] = [:]
            for line in status.split(separator: "\n") where line.hasPrefix("Cap") {
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { continue }
                values[String(parts[0])] = UInt64(parts[1].trimmingCharacters(in: " \t"), radix: 16)
            }
            guard let inh = values["CapInh"], let prm = values["CapPrm"], let eff = values["CapEff"],
                  let bnd = values["CapBnd"] else { return nil }
            self.inheritable = inh
            self.permitted = prm
            self.effective = eff
            self.bounding = bnd
            self.ambient = values["CapAmb"] ?? 0
        }
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}

extension String {
    /// Reads a small text file (procfs, sysfs).
    init(readingFile path: String) throws(ContainmentError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(step: "open", target: path, errno: errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw .system(step: "read", target: path, errno: errno) }
            if n == 0 { break }
            bytes += buffer[0..<n]
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}
