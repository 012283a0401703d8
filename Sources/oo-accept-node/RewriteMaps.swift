import NodeConfig

/// The Apache plugin's text maps as Apache reads them (`key value` lines).
struct RewriteMaps {
    struct Route {
        var key: String
        var destination: String
        var uuid: String
    }

    let directory: String
    /// `routes.txt`: `<host><path> <destination>|<app uuid>|<gear uuid>`.
    let routes: [Route]
    /// `aliases.txt`: alias -> fqdn.
    let aliases: [String: String]
    /// `idler.txt`: fqdn -> gear uuid.
    let idler: [String: String]
    /// `hosts.txt`: fqdn or alias -> its record (the layout is `ApacheFrontend`'s).
    let hosts: [String: String]

    init(directory: String) {
        self.directory = directory
        func pairs(_ map: String) -> [(String, String)] {
            (FileSystem.read(directory + "/" + map + ".txt", limit: 1 << 28) ?? "").split(separator: "\n").compactMap { line in
                let parts = line.split(separator: " ", maxSplits: 1)
                return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
            }
        }
        routes = pairs("routes").compactMap { key, value in
            let fields = value.split(separator: "|", omittingEmptySubsequences: false)
            return fields.count == 3 ? Route(key: key, destination: String(fields[0]), uuid: String(fields[2])) : nil
        }
        aliases = Dictionary(pairs("aliases"), uniquingKeysWith: { _, last in last })
        idler = Dictionary(pairs("idler"), uniquingKeysWith: { _, last in last })
        // Apache takes a key's first line.
        hosts = Dictionary(pairs("hosts"), uniquingKeysWith: { first, _ in first })
    }

    func path(_ map: String) -> String { directory + "/" + map + ".txt" }
}
