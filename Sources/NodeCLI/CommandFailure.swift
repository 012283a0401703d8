import ArgumentParser
import NodeConfig

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed command: prints one line to stderr and exits with the error kind's code.
public struct CommandFailure: Error, CustomStringConvertible {
    public var message: String
    public var exitCode: Int32

    public init(_ message: String, exitCode: Int32 = 1) {
        self.message = message
        self.exitCode = exitCode
    }

    public init(_ error: any Error, prefix: String = "") {
        if let error = error as? any NodeError {
            self.init(prefix + error.description, exitCode: error.kind.exitCode)
        } else {
            self.init(prefix + "\(error)", exitCode: 1)
        }
    }

    public var description: String { message }
}

/// Runs a command body, turning `CommandFailure` into its line on stderr and its exit code.
public func runReportingFailures(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as CommandFailure {
        printError(failure.message)
        throw ExitCode(failure.exitCode)
    }
}

public func printError(_ line: String) {
    writeAll(STDERR_FILENO, line + "\n")
}

/// Written straight to the file descriptor, unbuffered: scripts and tests read it through pipes.
public func printLine(_ line: String) {
    writeAll(STDOUT_FILENO, line + "\n")
}

public func printText(_ text: String) {
    writeAll(STDOUT_FILENO, text)
}

private func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        bytes = bytes.dropFirst(n)
    }
}
