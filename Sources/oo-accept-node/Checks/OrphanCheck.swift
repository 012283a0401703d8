/// What looks like a gear but is none: accounts with `GEAR_GECOS` without a gear (orphan
/// accounts, left by a destroy that did not finish or made by hand), and directories in
/// `GEAR_BASE_DIR` without a gear record.
///
/// Only accounts of this node are considered: home under `GEAR_BASE_DIR` or uid in
/// `GEAR_MIN_UID...GEAR_MAX_UID`. Another node on the same host (a test, a second base
/// directory) keeps its own gears.
struct OrphanCheck: NodeCheck {
    let name = "orphan accounts and directories"

    func run(_ node: NodeUnderTest) -> [Finding] {
        var findings: [Finding] = []
        let base = node.gearBaseDir
        if node.usesAccounts {
            let range = node.configuration.gearUIDs
            for account in node.gearAccounts where !node.recordedUUIDs.contains(account.name) {
                let ours = account.home.hasPrefix(base + "/") || (range?.contains(account.uid) ?? false)
                guard ours else { continue }
                let group = account.gid == account.uid ? " && groupdel \(account.name)" : ""
                if PathStatus.isDirectory(account.home) {
                    findings.append(.fail("account \(account.name) (uid \(account.uid)) has the gear GECOS '\(account.gecos)' and the home "
                                          + "\(account.home), but no gear of this node is \(account.name) (no record in \(base)/.gears)",
                                          fix: "keep what you need from \(account.home), then remove it: userdel \(account.name)\(group) "
                                            + "&& rm -r \(NodeUnderTest.quoted(account.home))"))
                } else {
                    findings.append(.fail("orphan account \(account.name) (uid \(account.uid)): it has the gear GECOS '\(account.gecos)' "
                                          + "but no gear and no home (\(account.home) does not exist)",
                                          fix: "remove it: userdel \(account.name)\(group)"))
                }
            }
        }
        let accountNames = Set(node.gearAccounts.map(\.name))
        // The node's own directories may be configured inside GEAR_BASE_DIR.
        let own = Set([node.layout.cartridgeRepoDir, node.layout.cartridgeBasePath, node.mapDirectory, node.layout.path("LAST_ACCESS_DIR")])
        for entry in node.baseDirectoryEntries where !entry.hasPrefix(".") && entry != "lost+found" && !node.recordedUUIDs.contains(entry) {
            let path = base + "/" + entry
            if own.contains(path) { continue }
            guard case .success(let status) = PathStatus.of(path), status.isDirectory else { continue }
            // An account whose home this is was reported above.
            if accountNames.contains(entry) && node.usesAccounts { continue }
            findings.append(.fail("directory \(path) in GEAR_BASE_DIR is no gear of this node (no record in \(base)/.gears)",
                                  fix: "move it out of \(base), or remove it: rm -r \(NodeUnderTest.quoted(path))"))
        }
        return findings
    }
}
