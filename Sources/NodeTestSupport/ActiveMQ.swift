import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A private ActiveMQ broker for tests: non-persistent, one STOMP connector on
/// 127.0.0.1:`port`, one user `mcollective`/`marionette` allowed on `mcollective.>` queues and
/// topics. Launched with `java -jar activemq.jar` as in the MCollective test bed (Debian's
/// init script and wrapper are unsuitable), with its files in a fresh temporary directory.
public final class ActiveMQ: @unchecked Sendable {
    public let port: Int
    /// Holds `conf/`, `data/`, `tmp/` and the broker's output, `activemq.log`.
    public let directory: String
    public let user = "mcollective"
    public let password = "marionette"

    public static let jar = "/usr/share/activemq/bin/activemq.jar"

    private let pid = Mutex<pid_t?>(nil)

    /// Whether ActiveMQ (Debian's `activemq` package) and java are installed.
    public static var isInstalled: Bool {
        access(jar, R_OK) == 0 && javaPath != nil
    }

    /// Writes the configuration into a new temporary directory, launches the broker and waits
    /// (up to 60 s) until its STOMP port accepts connections. Throws with the end of the
    /// broker's log if it exits or does not open the port.
    public static func start(port: Int? = nil) throws -> ActiveMQ {
        try start(port: port, network: nil)
    }

    /// Two brokers joined as a network of brokers, as production OpenShift ran them: each with
    /// an OpenWire connector, the second bridged to the first (duplex) by two network
    /// connectors, one for topics and one for queues, the queue one without conduit
    /// subscriptions so that each node's selector on the directed queue is its own demand.
    public static func startNetwork() throws -> (ActiveMQ, ActiveMQ) {
        let first = try start(port: nil, network: Network(name: "amq1", openwire: Int(HTTPProbe.freePort()), peer: nil))
        do {
            let second = try start(port: nil, network: Network(name: "amq2", openwire: Int(HTTPProbe.freePort()), peer: first.openwirePort))
            return (first, second)
        } catch {
            first.stop()
            throw error
        }
    }

    /// A broker's place in a network: its name, its OpenWire port and the peer it bridges to.
    struct Network {
        var name: String
        var openwire: Int
        var peer: Int?
    }

    /// The OpenWire port of a networked broker (0 for a lone one).
    public private(set) var openwirePort = 0

    /// Kills the broker at once (SIGKILL), as a crash would: connections end without DISCONNECT.
    public func kill9() {
        pid.withLock { pid in
            guard let child = pid else { return }
            pid = nil
            kill(child, SIGKILL)
            _ = ProcessRunner.wait(child)
        }
    }

    static func start(port: Int?, network: Network?) throws -> ActiveMQ {
        guard let java = javaPath, access(jar, R_OK) == 0 else {
            throw TestFiles.Failure(description: "ActiveMQ is not installed (apt-get install --no-install-recommends activemq)")
        }
        let port = port ?? Int(HTTPProbe.freePort())
        let directory = TestFiles.temporaryDirectory("activemq")
        try TestFiles.write(directory + "/conf/activemq.xml", configuration(port: port, network: network))
        try TestFiles.write(directory + "/conf/log4j.properties", log4jProperties)
        try TestFiles.makeDirectories(directory + "/data")
        try TestFiles.makeDirectories(directory + "/tmp")
        let argv = [
            java, "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-Djava.awt.headless=true",
            "-Djava.io.tmpdir=\(directory)/tmp",
            "--add-reads=java.xml=java.logging",
            "--add-opens", "java.base/java.security=ALL-UNNAMED",
            "--add-opens", "java.base/java.net=ALL-UNNAMED",
            "--add-opens", "java.base/java.lang=ALL-UNNAMED",
            "--add-opens", "java.base/java.util=ALL-UNNAMED",
            "--add-opens", "java.naming/javax.naming.spi=ALL-UNNAMED",
            "--add-opens", "java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED",
            "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
            "--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
            "-Dlog4j.configuration=file:\(directory)/conf/log4j.properties",
            "-Dactivemq.classpath=\(directory)/conf", "-Dactivemq.home=/usr/share/activemq",
            "-Dactivemq.base=\(directory)", "-Dactivemq.conf=\(directory)/conf", "-Dactivemq.data=\(directory)/data",
            "-jar", jar, "start", "xbean:file:\(directory)/conf/activemq.xml",
        ]
        let broker = ActiveMQ(port: port, directory: directory)
        broker.openwirePort = network?.openwire ?? 0
        let child = try ProcessRunner.spawn(argv, stdout: broker.logPath, stderr: directory + "/activemq.err")
        broker.pid.withLock { $0 = child }

        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if acceptsConnections(port: port) { return broker }
            var status: Int32 = 0
            if waitpid(child, &status, WNOHANG) == child {
                broker.pid.withLock { $0 = nil }
                let log = broker.logTail()
                broker.stop()
                throw TestFiles.Failure(description: "ActiveMQ exited (wait status \(status)) before opening port \(port):\n\(log)")
            }
            usleep(50_000)
        }
        let log = broker.logTail()
        broker.stop()
        throw TestFiles.Failure(description: "ActiveMQ did not open port \(port) within 60 s:\n\(log)")
    }

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    deinit { stop() }

    public var logPath: String { directory + "/activemq.log" }

    /// The last `lines` lines of the broker's output (stdout and stderr).
    public func logTail(lines: Int = 40) -> String {
        let text = (TestFiles.read(logPath) ?? "") + (TestFiles.read(directory + "/activemq.err") ?? "")
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }

    /// Freezes the broker (SIGSTOP): connections stay open but nothing is answered, not even
    /// heart-beats. `resume` undoes it.
    public func pause() {
        pid.withLock { pid in pid.map { _ = kill($0, SIGSTOP) } }
    }

    public func resume() {
        pid.withLock { pid in pid.map { _ = kill($0, SIGCONT) } }
    }

    /// Stops the broker: SIGTERM, then SIGKILL after 10 s. Removes its directory. Idempotent.
    public func stop() {
        pid.withLock { pid in
            guard let child = pid else { return }
            pid = nil
            kill(child, SIGCONT)  // in case it was paused
            ProcessRunner.terminate(child, graceSeconds: 10)
        }
        TestFiles.remove(directory)
    }

    private static var javaPath: String? {
        var candidates: [String] = []
        if let home = getenv("JAVA_HOME") { candidates.append(String(cString: home) + "/bin/java") }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin:/bin"
        candidates += path.split(separator: ":").map { String($0) + "/java" }
        candidates.append("/usr/bin/java")
        return candidates.first { access($0, X_OK) == 0 }
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    private static func acceptsConnections(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    private static func configuration(port: Int, network: Network?) -> String {
        let name = network?.name ?? "nodetest"
        let openwire = network.map { "\n      <transportConnector name=\"openwire\" uri=\"tcp://127.0.0.1:\($0.openwire)\"/>" } ?? ""
        var bridges = ""
        if let peer = network?.peer {
            bridges = """
                <networkConnectors>
                  <networkConnector name="\(name)-topics" uri="static:(tcp://127.0.0.1:\(peer))" userName="amq" password="amq-bridge"
                                    duplex="true" decreaseNetworkConsumerPriority="true" networkTTL="2" dynamicOnly="true">
                    <excludedDestinations><queue physicalName="&gt;"/></excludedDestinations>
                  </networkConnector>
                  <networkConnector name="\(name)-queues" uri="static:(tcp://127.0.0.1:\(peer))" userName="amq" password="amq-bridge"
                                    duplex="true" decreaseNetworkConsumerPriority="true" networkTTL="2" dynamicOnly="true"
                                    conduitSubscriptions="false">
                    <excludedDestinations><topic physicalName="&gt;"/></excludedDestinations>
                  </networkConnector>
                </networkConnectors>
            """
        }
        return """
        <beans
          xmlns="http://www.springframework.org/schema/beans"
          xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
          xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
          http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
          <broker xmlns="http://activemq.apache.org/schema/core"
                  brokerName="\(name)" useJmx="false" persistent="false"
                  dataDirectory="${activemq.data}">
        \(bridges)
            <plugins>
              <simpleAuthenticationPlugin>
                <users>
                  <authenticationUser username="mcollective" password="marionette" groups="mcollective,everyone"/>
                  <authenticationUser username="amq" password="amq-bridge" groups="admins,everyone"/>
                </users>
              </simpleAuthenticationPlugin>
              <authorizationPlugin>
                <map>
                  <authorizationMap>
                    <authorizationEntries>
                      <authorizationEntry queue="mcollective.>" write="mcollective" read="mcollective" admin="mcollective"/>
                      <authorizationEntry topic="mcollective.>" write="mcollective" read="mcollective" admin="mcollective"/>
                      <authorizationEntry topic="ActiveMQ.Advisory.>" read="everyone" write="everyone" admin="everyone"/>
                      <authorizationEntry queue=">" write="admins" read="admins" admin="admins"/>
                      <authorizationEntry topic=">" write="admins" read="admins" admin="admins"/>
                    </authorizationEntries>
                  </authorizationMap>
                </map>
              </authorizationPlugin>
            </plugins>
            <systemUsage>
              <systemUsage>
                <memoryUsage><memoryUsage limit="32 mb"/></memoryUsage>
                <storeUsage><storeUsage limit="256 mb"/></storeUsage>
                <tempUsage><tempUsage limit="64 mb"/></tempUsage>
              </systemUsage>
            </systemUsage>
            <transportConnectors>
              <transportConnector name="stomp" uri="stomp://127.0.0.1:\(port)"/>\(openwire)
            </transportConnectors>
          </broker>
        </beans>

        """
    }

    private static let log4jProperties = """
        log4j.rootLogger=INFO, stdout
        log4j.logger.org.springframework=WARN
        log4j.logger.org.apache.xbean=WARN
        log4j.appender.stdout=org.apache.log4j.ConsoleAppender
        log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
        log4j.appender.stdout.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p %c{1} | %m%n

        """
}
