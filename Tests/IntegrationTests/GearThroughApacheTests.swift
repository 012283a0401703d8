import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A gear with the python cartridge, reached by its host name through a real Apache that the
/// test starts with `openshift-node apache-config --standalone`; routes change underneath it.
@Suite("gear through Apache", .enabled(if: access("/usr/sbin/apache2", X_OK) == 0 || Prerequisites.inCI))
struct GearThroughApacheTests {
    static let cartridges = String(#filePath.split(separator: "/Tests/", omittingEmptySubsequences: false)[0]) + "/cartridges"

    @Test("host name and alias reach the gear; disconnect gives the 404 page; idle and start; Apache never reloads",
          .timeLimit(.minutes(1)))
    func endToEnd() async throws {
        try #require(access("/usr/sbin/apache2", X_OK) == 0, "apache2 is not installed (.ci/setup installs it)")
        let node = ScratchNode("gear-apache")
        defer { node.destroy() }
        chmod(node.root, 0o755)
        let root = node.root + "/sandbox"
        let sandbox = ["--root", root, "--cartridge-base-path", Self.cartridges]
        func run(_ tool: String, _ arguments: [String]) throws -> ProcessRunner.Result {
            let result = try ProcessRunner.node(tool, arguments + sandbox)
            #expect(result.status == 0, "\(tool) \(arguments): \(result.stderr)")
            return result
        }
        _ = try run("openshift-node", ["rescan"])
        _ = try run("oo-devel-node", ["app-create", "--with-container-uuid", "g1", "--with-app-name", "shop",
                                      "--with-container-name", "shop", "--with-namespace", "acme"])
        _ = try run("oo-devel-node", ["configure", "--with-container-uuid", "g1", "--cart-name", "python"])
        _ = try run("oo-devel-node", ["start", "--with-container-uuid", "g1"])

        let port = HTTPProbe.freePort()
        try TestFiles.makeDirectories(root + "/var/lib/openshift/.httpd")
        let config = try run("openshift-node", ["apache-config", "--standalone", "\(port)"]).stdout
        try TestFiles.write(node.root + "/httpd.conf", config)
        #expect(try ProcessRunner.run(["/usr/sbin/apache2", "-f", node.root + "/httpd.conf", "-k", "start"]).status == 0)
        defer { _ = try? ProcessRunner.run(["/usr/sbin/apache2", "-f", node.root + "/httpd.conf", "-k", "stop"]) }
        let pidFile = root + "/var/lib/openshift/.httpd/httpd.pid"
        func get(_ host: String) -> HTTPProbe.Response? { HTTPProbe.get(port: port, headers: ["Host: \(host)"]) }

        #expect(await eventually(within: 15) { get("shop-acme.example.com")?.body == "Hello from your python application\n" })
        let pid = TestFiles.read(pidFile)
        _ = try run("oo-devel-node", ["add-alias", "--with-container-uuid", "g1", "--with-alias-name", "www.shop.example.org"])
        #expect(get("www.shop.example.org")?.body == "Hello from your python application\n")

        _ = try run("oo-devel-node", ["frontend-idle", "--with-container-uuid", "g1"])
        #expect(get("shop-acme.example.com")?.status == 503)
        #expect(try run("oo-devel-node", ["frontend-check-idle", "--with-container-uuid", "g1"]).stdout == "true\n")
        _ = try run("oo-devel-node", ["frontend-unidle", "--with-container-uuid", "g1"])
        #expect(await eventually(within: 15) { get("shop-acme.example.com")?.body == "Hello from your python application\n" })

        _ = try run("oo-devel-node", ["frontend-disconnect", "--with-container-uuid", "g1"])
        #expect(get("shop-acme.example.com")?.status == 404)
        #expect(get("www.shop.example.org")?.status == 404)
        #expect(TestFiles.read(pidFile) == pid, "no restart or reload of Apache")
        _ = try run("oo-devel-node", ["app-destroy", "--with-container-uuid", "g1"])
        #expect(TestFiles.read(root + "/etc/apache2/conf.d/openshift/routes.txt") == "")
    }
}
