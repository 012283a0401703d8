import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The cartridges in `cartridges/`: valid, listed, and (for the web ones) serving HTTP when
/// their control hook starts them. Full gear life cycles come with gears.
@Suite("shipped cartridges")
struct ShippedCartridgesTests {
    static let cartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"
    let node = ScratchNode("shipped-test")

    @Test("every shipped cartridge installs without a problem")
    func install() throws {
        defer { node.destroy() }
        let result = try ProcessRunner.node(
            "openshift-node", ["rescan", "--root", node.root + "/sandbox", "--cartridge-base-path", Self.cartridges])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(try listing(root: node.root + "/sandbox", basePath: Self.cartridges) == """
            (redhat, cron, 1.4, 0.0.1)
            (redhat, diy, 0.1, 0.0.1)
            (redhat, mock, 0.1, 0.0.1)
            (redhat, mock, 0.2, 0.0.1)
            (redhat, mock, 0.3, 0.0.1)
            (redhat, mock, 0.4, 0.0.1)
            (redhat, python, 3.11, 0.0.1)

            """)
    }

    @Test("the python and mock cartridges answer HTTP once started, and stop", .timeLimit(.minutes(3)),
          arguments: [("python", "PYTHON", "IP", "PORT", "Hello from python cartridge\n"),
                      ("mock", "MOCK", "EXAMPLE_IP1", "EXAMPLE_PORT1", "mock cartridge\n")])
    func serves(name: String, short: String, ipName: String, portName: String, body: String) async throws {
        defer { node.destroy() }
        let copy = node.root + "/" + name
        #expect(try ProcessRunner.run(["/bin/cp", "-a", Self.cartridges + "/" + name, copy]).status == 0)
        let port = HTTPProbe.freePort()
        let environment = [
            "OPENSHIFT_\(short)_DIR": copy, "OPENSHIFT_DATA_DIR": node.root + "/data",
            "OPENSHIFT_\(short)_\(ipName)": "127.0.0.1", "OPENSHIFT_\(short)_\(portName)": "\(port)",
            "OPENSHIFT_REPO_DIR": node.root + "/no-repo", "OPENSHIFT_LOG_DIR": node.root + "/logs",
        ]
        let start = try ProcessRunner.run([copy + "/bin/control", "start"], environment: environment)
        #expect(start.status == 0 && start.stdout.hasPrefix("CLIENT_RESULT: "), "\(start.stdout)\(start.stderr)")
        defer { _ = try? ProcessRunner.run([copy + "/bin/control", "stop"], environment: environment) }
        let answered = await eventually(within: 10) { HTTPProbe.get(port: port)?.body == body }
        #expect(answered)
        #expect(try ProcessRunner.run([copy + "/bin/control", "status"], environment: environment).status == 0)
        #expect(try ProcessRunner.run([copy + "/bin/control", "stop"], environment: environment).status == 0)
        let stopped = await eventually(within: 5) { HTTPProbe.get(port: port) == nil }
        #expect(stopped, "still answering after stop; processes on the port: \((try? ProcessRunner.run(["/usr/bin/pgrep", "-af", "\(port)"]))?.stdout ?? "")")
        #expect(try ProcessRunner.run([copy + "/bin/control", "status"], environment: environment).status != 0)
    }

    @Test("a start whose server cannot bind (the address is taken) fails and says why", .timeLimit(.minutes(3)),
          arguments: [("python", "PYTHON", "IP", "PORT"), ("mock", "MOCK", "EXAMPLE_IP1", "EXAMPLE_PORT1")])
    func addressTaken(name: String, short: String, ipName: String, portName: String) async throws {
        defer { node.destroy() }
        let copy = node.root + "/" + name
        #expect(try ProcessRunner.run(["/bin/cp", "-a", Self.cartridges + "/" + name, copy]).status == 0)
        // Another sandbox's gear (or anything) already listens on this gear's address.
        let port = HTTPProbe.freePort()
        let squatter = try ProcessRunner.spawn(["/usr/bin/python3", "-m", "http.server", "\(port)", "--bind", "127.0.0.1"],
                                               stdout: node.root + "/squatter.log", stderr: node.root + "/squatter.err")
        defer {
            kill(squatter, SIGKILL)
            _ = ProcessRunner.wait(squatter)
        }
        #expect(await eventually(within: 10) { HTTPProbe.get(port: port)?.status == 200 })
        let environment = [
            "OPENSHIFT_\(short)_DIR": copy, "OPENSHIFT_DATA_DIR": node.root + "/data",
            "OPENSHIFT_\(short)_\(ipName)": "127.0.0.1", "OPENSHIFT_\(short)_\(portName)": "\(port)",
            "OPENSHIFT_REPO_DIR": node.root + "/no-repo", "OPENSHIFT_LOG_DIR": node.root + "/logs",
        ]
        let start = try ProcessRunner.run([copy + "/bin/control", "start"], environment: environment)
        defer { _ = try? ProcessRunner.run([copy + "/bin/control", "stop"], environment: environment) }
        #expect(start.status != 0, "\(start.stdout)")
        #expect(start.stdout.contains("CLIENT_ERROR: \(name) did not start on 127.0.0.1:\(port)") && start.stdout.contains("Address already in use"),
                "\(start.stdout)\(start.stderr)")
        #expect(try ProcessRunner.run([copy + "/bin/control", "status"], environment: environment).status != 0, "not reported running")
    }
}
