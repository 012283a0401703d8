import Foundation
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Puppet module, applied for real with Debian's Puppet 7 to this machine: it adds the
/// served apt repository, installs the node from it, writes node.conf and the MCollective
/// server.cfg; the node it makes passes `oo-accept-node` and answers `mco ping` through a real
/// ActiveMQ; a second apply changes nothing. Part of the packaging suite, so that it never
/// runs while the apt test installs or purges the same packages.
extension PackagingTests {
    static let moduleRoot = String(#filePath[..<#filePath.range(of: "/Tests/")!.lowerBound]) + "/puppet/modules"
    static let puppetFiles = ["/etc/apt/sources.list.d/openshift-node.list", "/etc/apt/keyrings/openshift-node.asc",
                              "/etc/mcollective/server.cfg", "/etc/apache2/openshift-node-routes.conf",
                              "/etc/apache2/sites-available/openshift-node.conf"]
    /// The Apache directories the module changes (modules and sites enabled), as name -> link target.
    static let apacheLinks = ["/etc/apache2/mods-enabled", "/etc/apache2/sites-enabled"]

    static func links(_ directory: String) -> [String: String] {
        var result: [String: String] = [:]
        for name in TestFiles.list(directory, includeHidden: true) {
            var buffer = [CChar](repeating: 0, count: 4096)
            let count = readlink(directory + "/" + name, &buffer, buffer.count - 1)
            result[name] = count >= 0 ? String(cString: Array(buffer[..<count]) + [0]) : "(not a link)"
        }
        return result
    }

    @Test("puppet apply makes a node that oo-accept-node passes and mco pings; a second apply changes nothing",
          .timeLimit(.minutes(40)))
    func puppetApply() async throws {
        try #require(access("/usr/bin/puppet", X_OK) == 0, "puppet is missing (.ci/setup installs it)")
        let repository = try await Self.repository()
        let debs = try Self.debs(repository)
        let installed = try AptSystem.installedPackages(Self.packages)
        try #require(installed.isEmpty, "already installed here (purge them first): \(installed)")
        for file in Self.puppetFiles { try #require(!TestFiles.exists(file), "\(file) exists already; the test would replace it") }
        let broker = try ActiveMQ.start()
        defer { broker.stop() }
        let scratch = TestFiles.temporaryDirectory("node-puppet")
        defer { TestFiles.remove(scratch) }
        // The packages, the module's files and what apt fetched from the served repository go
        // at the end, whatever happened.
        let port = String(repository.url.split(separator: ":").last?.split(separator: "/").first ?? "")
        let apacheBefore = Self.apacheLinks.map(Self.links)
        defer {
            // Apache as it was: the links the module added go, the ones it removed come back.
            for (directory, before) in zip(Self.apacheLinks, apacheBefore) {
                let now = Self.links(directory)
                for name in now.keys where before[name] == nil { unlink(directory + "/" + name) }
                for (name, target) in before where now[name] == nil { symlink(target, directory + "/" + name) }
            }
            _ = try? ProcessRunner.run(["/bin/rm", "-rf", "/etc/apache2/conf.d/openshift"])
            if TestFiles.list("/etc/apache2/conf.d", includeHidden: true).isEmpty { rmdir("/etc/apache2/conf.d") }
            if let left = try? AptSystem.installedPackages(Self.packages), !left.isEmpty {
                _ = try? ProcessRunner.run(["/usr/bin/dpkg", "--purge"] + left, environment: ["DEBIAN_FRONTEND": "noninteractive"])
            }
            for file in Self.puppetFiles { unlink(file) }
            for name in TestFiles.list("/var/lib/apt/lists") where name.hasPrefix("127.0.0.1:\(port)_") {
                unlink("/var/lib/apt/lists/" + name)
            }
            for deb in debs.values { unlink("/var/cache/apt/archives/" + String(deb[deb.index(after: deb.lastIndex(of: "/")!)...])) }
        }
        let psk = "puppet-psk-\(UInt32.random(in: 1...UInt32.max))"
        let manifest = scratch + "/site.pp"
        try TestFiles.write(manifest, """
            class { 'openshift_node':
              apt_url             => '\(repository.url)',
              apt_key             => file('\(repository.keyFile)'),
              apt_suite           => '\(repository.suite)',
              apt_component       => '\(repository.component)',
              public_hostname     => 'node1.example.com',
              public_ip           => '127.0.0.1',
              cloud_domain        => 'apps.example.com',
              cartridges          => ['python', 'mock'],
              mcollective_brokers => [{ host => '127.0.0.1', port => \(broker.port), user => 'mcollective', password => 'marionette' }],
              mcollective_psk     => '\(psk)',
              mcollective_identity => 'node1.example.com',
              manage_service      => false,
            }

            """)
        // Long blocking runs go to a thread of their own, off the 2 threads of the cooperative
        // pool the parallel tests share.
        @Sendable func apply() throws -> ProcessRunner.Result {
            try ProcessRunner.run(["/usr/bin/puppet", "apply", "--detailed-exitcodes", "--color=false", "--modulepath", Self.moduleRoot,
                                   manifest], environment: ["DEBIAN_FRONTEND": "noninteractive", "LANG": "C.UTF-8"])
        }
        // --detailed-exitcodes: 2 is "changes, no failures", 0 is "nothing to change".
        let first = try await onThread(apply)
        try #require(first.status == 2, "first apply: \(first.status)\n\(first.stdout)\n\(first.stderr)")
        #expect(try AptSystem.installedPackages(Self.packages).sorted()
                == ["openshift-node", "openshift-node-cartridge-mock", "openshift-node-cartridge-python"])
        let conf = try #require(TestFiles.read("/etc/openshift/node.conf"))
        for line in ["PUBLIC_HOSTNAME=\"node1.example.com\"", "CLOUD_DOMAIN=\"apps.example.com\"", "GEAR_TOOL=\"/usr/bin/gear\"",
                     "AGENT_TRANSPORTS=\"mcollective,local\""] {
            #expect(conf.contains("\n" + line + "\n"), "\(line) in node.conf:\n\(conf)")
        }
        var st = stat()
        #expect(stat("/etc/mcollective/server.cfg", &st) == 0 && st.st_mode & 0o777 == 0o600, "the psk is root's only")
        #expect(TestFiles.read("/etc/mcollective/server.cfg")?.contains("plugin.psk = \(psk)\n") == true)

        let second = try await onThread(apply)
        #expect(second.status == 0, "second apply changed something: \(second.status)\n\(second.stdout)\n\(second.stderr)")

        // Apache is the node's frontend: the node's virtual host is the default one and reads the maps.
        #expect(TestFiles.read("/etc/apache2/sites-available/openshift-node.conf")?.contains("Include /etc/apache2/openshift-node-routes.conf") == true)
        #expect(!TestFiles.exists("/etc/apache2/sites-enabled/000-default.conf"))
        #expect(TestFiles.read("/etc/apache2/conf.d/openshift/routes.txt") == "", "the maps exist, empty, before any gear")
        let syntax = try ProcessRunner.run(["/usr/sbin/apache2ctl", "-t"])
        #expect(syntax.status == 0, "apache2ctl -t: \(syntax.stderr)")

        let accept = try await onThread { try ProcessRunner.run(["/usr/sbin/oo-accept-node"]) }
        #expect(accept.status == 0 && accept.stdout == "PASS\n", "oo-accept-node: \(accept.status)\n\(accept.stdout)\n\(accept.stderr)")

        // The node the module made answers the broker: its daemon, as the unit starts it, is
        // found by a real `mco ping` with the psk the module was given.
        let notify = try NotifySocket(path: scratch + "/notify")
        let daemon = try ProcessRunner.spawn(["/usr/sbin/openshift-node", "run"], stdout: scratch + "/daemon.out",
                                             stderr: scratch + "/daemon.log", environment: ["NOTIFY_SOCKET": notify.path])
        defer { ProcessRunner.terminate(daemon, graceSeconds: 10) }
        #expect(await notify.waitFor(within: 120) { $0 == "READY=1" }, "\(notify.fields) \(TestFiles.read(scratch + "/daemon.log") ?? "")")
        let libdir = scratch + "/mco"
        try TestFiles.write(scratch + "/client.cfg", MCollectiveConfig.client(port: broker.port, psk: psk, libdir: libdir))
        _ = try ProcessRunner.run(["/usr/sbin/openshift-node", "ddl", "--install", libdir])
        var pinged = false
        for _ in 0..<10 where !pinged {
            let ping = try await onThread { try ProcessRunner.run(["/usr/bin/mco", "ping", "--config", scratch + "/client.cfg", "-t", "5"]) }
            pinged = ping.stdout.contains("node1.example.com")
            if !pinged { try await Task.sleep(for: .seconds(2)) }
        }
        #expect(pinged, "mco ping did not find node1.example.com: \(TestFiles.read(scratch + "/daemon.log") ?? "")")
    }
}
