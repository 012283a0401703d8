import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// Entry point for the admin tools: `--help` on stdout with exit 0; any usage error as one line
/// on stderr (`oo-admin-cartridge: Missing arguments: --source`) with a non-zero exit, so that
/// scripts and people both get a sentence instead of a screen of usage.
public protocol NodeTool: ParsableCommand {}

extension NodeTool {
    public static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                let text = fullMessage(for: error)
                if !text.isEmpty { printLine(text) }
                Glibc.exit(0)
            }
            let message = message(for: error)
                .split(separator: "\n").first.map(String.init) ?? ""
            if !message.isEmpty { printError("\(configuration.commandName ?? "error"): \(message)") }
            Glibc.exit(code.rawValue)
        }
    }
}
