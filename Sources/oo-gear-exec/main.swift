// oo-gear-exec: become a gear, then exec its command. Single-threaded on purpose: identity
// changes happen here, in a fresh process, never in a forked child of the threaded daemon.
import Containment

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, _ code: Int32) -> Never {
    let line = "oo-gear-exec: \(message)\n"
    _ = write(2, line, line.utf8.count)
    exit(code)
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments == ["--help"] || arguments == ["-h"] {
    print(GearExec.usage)
    exit(0)
}
do {
    let spec = try GearExec(arguments: arguments)
    try spec.become()
    let code = spec.exec()
    fail("exec \(spec.command[0]): \(String(cString: strerror(code)))", 127)
} catch {
    fail(error.description, 126)
}
