import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

/// Capabilities as the kernel reports them. Dropping them is `oo-gear-exec`'s job (C, raw
/// prctl/capset); the node only reads them back, to check.
public enum Capabilities {
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
                values[String(parts[0])] = UInt64(parts[1].trimmed(while: { $0 == " " || $0 == "\t" }), radix: 16)
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

extension String {
    /// Reads a small text file (procfs, sysfs).
    init(readingFile path: String) throws(ContainmentError) {
        do { self = String(decoding: try FileSystem.readBytes(path), as: UTF8.self) } catch { throw ContainmentError(error) }
    }
}
