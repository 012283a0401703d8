import Containment
import Gears
import NodeConfig

/// Every gear the node records: its account and group carry the recorded ids (node mode), its
/// home exists with the owner and mode the node gives it, its cgroup exists when cgroups are in
/// use. Records of creates or destroys that did not finish are reported.
struct GearCheck: NodeCheck {
    let name = "gears"

    func run(_ node: NodeUnderTest) -> [Finding] {
        var findings: [Finding] = []
        let complete = Set(node.gears.map(\.uuid))
        for uuid in node.recordedUUIDs.subtracting(complete).sorted() {
            findings.append(.warn("the record of gear \(uuid) is not complete (a create or destroy of it is running, was interrupted, or the record is unreadable)",
                                  fix: "if no command is working on it, finish it: \(node.command(["oo-devel-node", "app-destroy", "--with-container-uuid", uuid]))"))
        }
        let hierarchy = node.usesAccounts ? CgroupHierarchy.detect() : nil
        for gear in node.gears {
            if node.isBusy(gear.uuid) {
                findings.append(.note("gear \(gear.uuid) is being changed by another command (its lock is held): not checked"))
                continue
            }
            if node.usesAccounts { findings += account(of: gear, node) }
            findings += home(of: gear, node)
            if let hierarchy { findings += cgroup(of: gear, hierarchy: hierarchy, node) }
        }
        findings.append(.note("\(node.gears.count) gear(s) recorded in \(node.gearBaseDir)/.gears"))
        return findings
    }

    func destroy(_ gear: Gear, _ node: NodeUnderTest) -> String {
        node.command(["oo-devel-node", "app-destroy", "--with-container-uuid", gear.uuid])
    }

    func account(of gear: Gear, _ node: NodeUnderTest) -> [Finding] {
        let uuid = gear.uuid, uid = gear.identity.uid, gid = gear.identity.gid
        var findings: [Finding] = []
        if let group = UnixAccounts.groupID(named: uuid) {
            if group != gid {
                findings.append(.fail("gear \(uuid): group \(uuid) has gid \(group), but the gear's record says \(gid)",
                                      fix: "groupmod -g \(gid) \(uuid), or destroy the gear: \(destroy(gear, node))"))
            }
        } else {
            findings.append(.fail("gear \(uuid) has no group \(uuid) (gid \(gid))",
                                  fix: "re-create it: groupadd -g \(gid) \(uuid); or destroy the gear: \(destroy(gear, node))"))
        }
        guard let account = UnixAccounts.user(named: uuid) else {
            let shell = node.configuration.string("GEAR_SHELL"), gecos = node.configuration.string("GEAR_GECOS")
            findings.append(.fail("gear \(uuid) (uid \(uid)) has no account \(uuid): none of its processes can run and nobody can log in to it",
                                  fix: "re-create the account: useradd -u \(uid) -g \(gid) -d \(NodeUnderTest.quoted(gear.home)) "
                                    + "-s \(NodeUnderTest.quoted(shell)) -c \(NodeUnderTest.quoted(gecos)) -M -N \(uuid); "
                                    + "or destroy the gear: \(destroy(gear, node))"))
            return findings
        }
        if account.uid != uid {
            findings.append(.fail("gear \(uuid): account \(uuid) has uid \(account.uid), but the gear's record says \(uid)",
                                  fix: "usermod -u \(uid) \(uuid) if the account is the gear's, else destroy the gear: \(destroy(gear, node))"))
        }
        if account.gid != gid {
            findings.append(.fail("gear \(uuid): account \(uuid) has primary group \(account.gid), not the gear's \(gid)",
                                  fix: "usermod -g \(gid) \(uuid)"))
        }
        if account.home != gear.home {
            findings.append(.fail("gear \(uuid): account \(uuid) has home \(account.home), not the gear's home \(gear.home)",
                                  fix: "usermod -d \(NodeUnderTest.quoted(gear.home)) \(uuid)"))
        }
        if account.gecos != node.configuration.string("GEAR_GECOS") {
            findings.append(.warn("gear \(uuid): account \(uuid) has GECOS '\(account.gecos)', not GEAR_GECOS '\(node.configuration.string("GEAR_GECOS"))'",
                                  fix: "usermod -c \(NodeUnderTest.quoted(node.configuration.string("GEAR_GECOS"))) \(uuid)"))
        }
        return findings
    }

    /// The home: root's with the gear's group, 0750 (node mode); 0750 in a sandbox.
    func home(of gear: Gear, _ node: NodeUnderTest) -> [Finding] {
        let uuid = gear.uuid, home = gear.home
        switch PathStatus.of(home) {
        case .failure(let error) where error.missing:
            return [.fail("gear \(uuid): its home \(home) does not exist", fix: "its files are gone: destroy the gear (\(destroy(gear, node))) and re-create it")]
        case .failure(let error):
            return [.fail("gear \(uuid): its home \(home) cannot be examined: \(error.reason)", fix: "make \(node.gearBaseDir) readable by root")]
        case .success(let status):
            guard status.isDirectory else {
                return [.fail("gear \(uuid): its home \(home) is \(status.kind), not a directory",
                              fix: "move it away and destroy the gear: \(destroy(gear, node))")]
            }
            var findings: [Finding] = []
            if node.usesAccounts && (status.uid != 0 || status.gid != gear.identity.gid) {
                findings.append(.fail("gear \(uuid): its home \(home) is owned by \(status.uid):\(status.gid), not root:\(gear.identity.gid) "
                                      + "(the gear may enter its home, never replace what root keeps there)",
                                      fix: "chown root:\(gear.identity.gid) \(NodeUnderTest.quoted(home))"))
            }
            if status.permissions != 0o750 {
                findings.append(.fail("gear \(uuid): its home \(home) has mode \(PathStatus.octal(status.permissions)), not 0750",
                                      fix: "chmod 0750 \(NodeUnderTest.quoted(home))"))
            }
            return findings
        }
    }

    func cgroup(of gear: Gear, hierarchy: CgroupHierarchy, _ node: NodeUnderTest) -> [Finding] {
        guard let cgroup = try? GearCgroup(hierarchy: hierarchy, parent: node.configuration.string("OPENSHIFT_CGROUP_ROOT"), name: gear.uuid) else {
            return []
        }
        return cgroup.directories.filter { !PathStatus.isDirectory($0) }.map { directory in
            .fail("gear \(gear.uuid): its cgroup \(directory) does not exist: its processes cannot be started or limited",
                  fix: "re-create the gear (\(destroy(gear, node)), then create it again), or mkdir \(directory) and write its limits")
        }
    }
}
