/// MCollective `server.cfg` / `client.cfg` text for a private broker on loopback (the ActiveMQ
/// helper's account), as tests and node-bench write them.
public enum MCollectiveConfig {
    /// The common part: identity, collective, psk security, one activemq pool entry.
    public static func text(identity: String, port: Int, psk: String, extra: [String] = []) -> String {
        text(identity: identity, pool: [port], psk: psk, extra: extra)
    }

    /// The same with a pool of brokers, in the order given.
    public static func text(identity: String, pool: [Int], psk: String, extra: [String] = []) -> String {
        var lines = [
            "identity = \(identity)",
            "main_collective = mcollective",
            "collectives = mcollective",
            "securityprovider = psk",
            "plugin.psk = \(psk)",
            "connector = activemq",
            "plugin.activemq.pool.size = \(pool.count)",
        ]
        for (index, port) in pool.enumerated() {
            lines += ["plugin.activemq.pool.\(index + 1).host = 127.0.0.1", "plugin.activemq.pool.\(index + 1).port = \(port)",
                      "plugin.activemq.pool.\(index + 1).user = mcollective", "plugin.activemq.pool.\(index + 1).password = marionette"]
        }
        return (lines + extra).joined(separator: "\n") + "\n"
    }

    /// An `mco` client's configuration: plain console output, no colours, `libdir` first.
    public static func client(identity: String = "client1.test", port: Int, psk: String, libdir: String) -> String {
        text(identity: identity, port: port, psk: psk,
             extra: ["libdir = \(libdir):/usr/share/mcollective/plugins", "logger_type = console", "loglevel = warn", "color = 0"])
    }
}
