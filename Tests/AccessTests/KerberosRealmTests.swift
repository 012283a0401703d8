import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("the tests' private MIT Kerberos realm")
struct KerberosRealmTests {
    @Test("a real KDC on loopback: kinit succeeds with the right password, fails with a wrong one; stop cleans up",
          .enabled(if: KerberosRealm.isInstalled || Prerequisites.inCI), .timeLimit(.minutes(2)))
    func kinit() throws {
        let realm = try KerberosRealm.start()
        defer { realm.stop() }
        try realm.addPrincipal("alice", password: "right-password")
        let ccache = realm.directory + "/alice.ccache"
        let good = try realm.kinit("alice", password: "right-password", ccache: ccache)
        #expect(good.status == 0, "\(good.stderr)\n\(realm.logTail())")
        let list = try ProcessRunner.run(["/usr/bin/klist", "-c", "FILE:" + ccache], environment: realm.environment)
        #expect(list.stdout.contains("alice@GEARS.TEST") && list.stdout.contains("krbtgt/GEARS.TEST@GEARS.TEST"), "\(list)")
        let bad = try realm.kinit("alice", password: "wrong-password", ccache: realm.directory + "/bad.ccache")
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("Password incorrect"), "\(bad.stderr)")
        let unknown = try realm.kinit("mallory", password: "x", ccache: realm.directory + "/m.ccache")
        #expect(unknown.status != 0)

        try realm.addHostKeytab("localhost", path: realm.directory + "/host.keytab")
        let keytab = try ProcessRunner.run(["/usr/bin/klist", "-k", realm.directory + "/host.keytab"], environment: realm.environment)
        #expect(keytab.stdout.contains("host/localhost@GEARS.TEST"), "\(keytab)")

        let directory = realm.directory
        realm.stop()
        #expect(access(directory, F_OK) != 0)
    }
}
