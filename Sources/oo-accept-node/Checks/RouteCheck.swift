import Frontend
import Gears
import NodeConfig

/// Every gear's routes are served for its recorded host name: its route document
/// (`GEAR_BASE_DIR/.frontend/<uuid>.json`) exists and names `<gear>-<namespace>.<CLOUD_DOMAIN>`,
/// and with Apache every connection, alias and idle mark of the document is in the maps; map
/// lines of gears this node does not have are reported too (the original's "httpd config
/// references UUID without associated gear").
struct RouteCheck: NodeCheck {
    let name = "frontend routes"
    static let knownPlugins = ["apache"]

    func run(_ node: NodeUnderTest) -> [Finding] {
        var findings: [Finding] = []
        let plugins = node.frontendPlugins
        for plugin in plugins where !Self.knownPlugins.contains(plugin) {
            findings.append(.fail("OPENSHIFT_FRONTEND_HTTP_PLUGINS names '\(plugin)', which is no frontend plugin of this node: every gear command fails",
                                  fix: "set OPENSHIFT_FRONTEND_HTTP_PLUGINS=apache, or leave it empty for no routes"))
        }
        guard !plugins.isEmpty else {
            return [.note("no frontend plugin (OPENSHIFT_FRONTEND_HTTP_PLUGINS is empty): gears are not routed")]
        }
        let maps = node.apacheConfigured ? RewriteMaps(directory: node.mapDirectory) : nil
        let frontend = node.frontend
        var served: [String: String] = [:]   // fqdn -> uuid, for the aliases
        // Gears half created or half destroyed are not judged, and their lines are no strays.
        let complete = Set(node.gears.map(\.uuid))
        for uuid in node.recordedUUIDs.subtracting(complete) {
            if let document = try? frontend.frontend(uuid) { served[document.fqdn] = uuid }
        }
        for gear in node.gears {
            let busy = node.isBusy(gear.uuid)
            let document: GearFrontend?
            do {
                document = try frontend.frontend(gear.uuid)
            } catch {
                if busy { continue }
                findings.append(.fail("gear \(gear.uuid): its route document cannot be read: \(error)",
                                      fix: "restore it from a backup (\(node.command(["oo-devel-node", "frontend-restore", "--with-container-uuid", gear.uuid, "--with-backup", "JSON"]))) "
                                        + "or re-create the gear"))
                continue
            }
            let expected = (try? HostName.clean("\(gear.gearName)-\(gear.namespace).\(node.configuration.string("CLOUD_DOMAIN"))")) ?? ""
            guard let document else {
                if busy { continue }
                findings.append(.fail("gear \(gear.uuid) has no route document (\(frontend.stateDirectory)/\(gear.uuid).json): its host name \(expected) is not routed",
                                      fix: "re-create the gear, or restore its routes: \(node.command(["oo-devel-node", "frontend-restore", "--with-container-uuid", gear.uuid, "--with-backup", "JSON"]))"))
                continue
            }
            served[document.fqdn] = gear.uuid
            // Its routes may be half changed; its map lines are still not strays.
            if busy { continue }
            if document.fqdn != expected {
                findings.append(.fail("gear \(gear.uuid) is routed as \(document.fqdn), but its record makes its host name \(expected) (<gear>-<namespace>.CLOUD_DOMAIN)",
                                      fix: "set CLOUD_DOMAIN back to the domain the gear was created in, or re-create the gear"))
            }
            if let maps { findings += compare(document, gear: gear, with: maps, node) }
        }
        if let maps { findings += strays(maps, served: served, node) }
        for name in FileSystem.entries(frontend.stateDirectory) ?? [] where name.hasSuffix(".json") && !name.hasPrefix(".") {
            let uuid = String(name.dropLast(5))
            if !node.recordedUUIDs.contains(uuid) {
                findings.append(.fail("route document \(frontend.stateDirectory)/\(name) belongs to \(uuid), which is no gear of this node",
                                      fix: "remove it: rm \(NodeUnderTest.quoted(frontend.stateDirectory + "/" + name))"))
            }
        }
        return findings
    }

    /// The gear's document against the Apache maps.
    func compare(_ document: GearFrontend, gear: Gear, with maps: RewriteMaps, _ node: NodeUnderTest) -> [Finding] {
        var findings: [Finding] = []
        let uuid = gear.uuid
        let routes = maps.routes.filter { $0.uuid == uuid }
        for connection in document.connections {
            let key = document.fqdn + connection.path
            let shown = "\(key.isEmpty ? "/" : key) -> \(connection.destination)"
            if let route = routes.first(where: { $0.key == key }) {
                if route.destination != connection.destination {
                    findings.append(.fail("gear \(uuid): \(maps.path("routes")) sends \(key) to \(route.destination), its route document to \(connection.destination)",
                                          fix: reapply(connection, gear: gear, node)))
                }
            } else {
                findings.append(.fail("gear \(uuid): route \(shown) is missing from \(maps.path("routes")): Apache does not serve it",
                                      fix: reapply(connection, gear: gear, node)))
            }
        }
        let known = Set(document.connections.map { document.fqdn + $0.path })
        for route in routes where !known.contains(route.key) {
            findings.append(.fail("gear \(uuid): \(maps.path("routes")) routes \(route.key) to \(route.destination), which its route document does not have",
                                  fix: "remove the line from \(maps.path("routes")) (write the map anew and rename it over the old one: Apache re-reads it by itself)"))
        }
        for alias in document.aliases where maps.aliases[alias] != document.fqdn {
            findings.append(.fail("gear \(uuid): alias \(alias) of \(document.fqdn) is missing from \(maps.path("aliases"))",
                                  fix: "re-apply it: \(node.command(["oo-devel-node", "remove-alias", "--with-container-uuid", uuid, "--with-alias-name", alias])), then "
                                    + node.command(["oo-devel-node", "add-alias", "--with-container-uuid", uuid, "--with-alias-name", alias])))
        }
        let idle = maps.idler[document.fqdn] == uuid
        if document.idle != idle {
            findings.append(.fail("gear \(uuid) is \(document.idle ? "idle" : "not idle") in its route document, but \(maps.path("idler")) "
                                  + (idle ? "marks it idle" : "does not mark it idle"),
                                  fix: "re-apply the state: \(node.command(["oo-devel-node", document.idle ? "frontend-idle" : "frontend-unidle", "--with-container-uuid", uuid]))"))
        }
        // Apache starts every request from the name's record: a wrong one misroutes the name.
        for line in ApacheFrontend.lines(of: document)["hosts"] ?? [] {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2, maps.hosts[parts[0]] != parts[1] else { continue }
            findings.append(.fail("gear \(uuid): \(maps.path("hosts")) gives \(parts[0]) "
                                  + (maps.hosts[parts[0]].map { "the record \($0)" } ?? "no record") + ", its route document makes it \(parts[1])",
                                  fix: "rebuild the maps from the documents: " + node.command(["oo-admin-ctl-gears", "routes", "--repair"])))
        }
        return findings
    }

    /// Map lines of gears this node does not have.
    func strays(_ maps: RewriteMaps, served: [String: String], _ node: NodeUnderTest) -> [Finding] {
        var findings: [Finding] = []
        let fix = { (map: String) in "remove its line from \(maps.path(map)) (write the map anew and rename it over the old one: Apache re-reads it by itself)" }
        for route in maps.routes where !node.recordedUUIDs.contains(route.uuid) {
            findings.append(.fail("\(maps.path("routes")) routes \(route.key) to gear \(route.uuid), which is no gear of this node", fix: fix("routes")))
        }
        for (alias, fqdn) in maps.aliases.sorted(by: { $0.key < $1.key }) where served[fqdn] == nil {
            findings.append(.fail("\(maps.path("aliases")) sends alias \(alias) to \(fqdn), which is no gear's host name on this node", fix: fix("aliases")))
        }
        for (fqdn, uuid) in maps.idler.sorted(by: { $0.key < $1.key }) where !node.recordedUUIDs.contains(uuid) {
            findings.append(.fail("\(maps.path("idler")) marks \(fqdn) idle for gear \(uuid), which is no gear of this node", fix: fix("idler")))
        }
        for (name, record) in maps.hosts.sorted(by: { $0.key < $1.key }) {
            let uuid = ApacheFrontend.gear(ofHostRecord: record) ?? ""
            if !node.recordedUUIDs.contains(uuid) {
                findings.append(.fail("\(maps.path("hosts")) routes \(name) to gear \(uuid), which is no gear of this node", fix: fix("hosts")))
            }
        }
        return findings
    }

    /// Disconnect and connect again: a connect of what the document already has changes nothing.
    func reapply(_ connection: Connection, gear: Gear, _ node: NodeUnderTest) -> String {
        let options = Connection.Options.flagNames.filter { connection.options.isSet($0) }.flatMap { ["--option", $0] }
        return "re-apply it: " + node.command(["oo-devel-node", "frontend-disconnect", "--with-container-uuid", gear.uuid, "--path", connection.path])
            + ", then " + node.command(["oo-devel-node", "frontend-connect", "--with-container-uuid", gear.uuid, "--path", connection.path,
                                        "--target", connection.target] + options)
    }
}
