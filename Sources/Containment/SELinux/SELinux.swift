import CSELinux

#if canImport(Glibc)
import Glibc
#endif

/// libselinux, wrapped once. When SELinux is disabled on the host, labels are still computed
/// and reported by callers; these calls are simply not made (`isEnabled` says so).
public enum SELinux {
    public static var isEnabled: Bool { is_selinux_enabled() == 1 }

    /// The context gear processes run in.
    public static func gearProcessContext(_ label: MCSLabel) -> String {
        "unconfined_u:system_r:openshift_t:\(label)"
    }

    /// Labels a path itself (a symbolic link is labelled, never followed).
    public static func setFileContext(_ path: String, _ context: String) throws(ContainmentError) {
        guard lsetfilecon(path, context) == 0 else { throw .system(step: "lsetfilecon \(context) on", target: path, errno: errno) }
    }

    public static func fileContext(_ path: String) throws(ContainmentError) -> String {
        var raw: UnsafeMutablePointer<CChar>?
        guard lgetfilecon(path, &raw) >= 0, let raw else { throw .system(step: "lgetfilecon", target: path, errno: errno) }
        defer { freecon(raw) }
        return String(cString: raw)
    }
}
