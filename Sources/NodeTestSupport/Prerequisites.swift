#if canImport(Glibc)
import Glibc
#endif

/// Prerequisites of integration tests. Outside CI a missing one skips the test; under
/// `CI=true` the test runs anyway and fails on the missing prerequisite, so CI can never pass
/// by skipping.
public enum Prerequisites {
    public static var inCI: Bool { getenv("CI").map { String(cString: $0) == "true" } ?? false }
    public static var isRoot: Bool { geteuid() == 0 }

    /// For `.enabled(if:)`: true when root, or under CI (where not being root must fail).
    public static var rootOrCI: Bool { isRoot || inCI }

    /// A failure message if the test cannot run as intended, nil when it can.
    public static var rootProblem: String? {
        isRoot ? nil : "this test needs root (CI runs as root; run the tests with sudo)"
    }
}
