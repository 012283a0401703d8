#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: the step, the path (or other target) and errno. The modules wrap it in
/// their own error enums; its description is a sentence an operator can act on.
public struct SystemError: Error, Equatable, CustomStringConvertible {
    public var step: String
    public var path: String
    public var errno: Int32

    public init(step: String, path: String, errno: Int32) {
        self.step = step
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(step) \(path) failed: \(String(cString: strerror(errno))) (errno \(errno))" }
}
