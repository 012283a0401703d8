/// The checks, in the order they run: the directories first, then what lives in them (gears,
/// accounts, routes, cartridges), then the services the node talks to, then the host's features.
enum Acceptance {
    static let checks: [any NodeCheck] = [
        DirectoryCheck(),
        GearCheck(),
        OrphanCheck(),
        RouteCheck(),
        RepositoryCheck(),
        ApacheCheck(),
        MCollectiveCheck(),
        HostCheck(),
    ]

    /// Runs every check; `progress` sees each check's name before it runs and each finding as
    /// it is made. Without the privileges the node's files need (root in node mode) nothing
    /// else is checked: every check would only report "permission denied".
    static func run(_ node: NodeUnderTest, into report: inout AcceptanceReport,
                    progress: (_ check: String, _ finding: Finding?) -> Void) {
        if let problem = node.privilegeProblem {
            progress("privileges", nil)
            report.entries.append(.init(check: "privileges", finding: problem))
            progress("privileges", problem)
            return
        }
        for check in checks {
            progress(check.name, nil)
            for finding in check.run(node) {
                report.entries.append(.init(check: check.name, finding: finding))
                progress(check.name, finding)
            }
        }
    }
}
