import NodeConfig
import NodeTestSupport
import Testing

@testable import Containment

#if canImport(Glibc)
import Glibc
#endif

@Suite("cgroups")
struct CgroupTests {
    @Test("the hierarchy is read from the mount table: v1 controllers, or the unified v2 tree")
    func detect() {
        let v1 = """
            tmpfs /sys/fs/cgroup tmpfs rw 0 0
            cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
            cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
            cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
            """
        #expect(CgroupHierarchy.detect(mounts: v1) == .v1(controllers: [
            "cpu": "/sys/fs/cgroup/cpu", "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids",
        ]))
        #expect(CgroupHierarchy.detect(mounts: "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n") == .v2(root: "/sys/fs/cgroup"))
        #expect(CgroupHierarchy.detect(mounts: "proc /proc proc rw 0 0\n") == nil)
    }

    @Test("a gear's cgroup name is one path component", arguments: ["", "..", "a/b", "x\ny"])
    func names(name: String) {
        #expect(throws: ContainmentError.self) {
            try GearCgroup(hierarchy: .v2(root: "/sys/fs/cgroup"), parent: "openshift", name: name)
        }
    }

    @Test("cpu shares map onto v2 weights at the ends and the default")
    func weights() {
        #expect(GearCgroup.weight(forShares: 2) == 1)
        #expect(GearCgroup.weight(forShares: 262_144) == 10000)
        #expect(GearCgroup.weight(forShares: 1024) == 39)
    }

    @Test("resource_limits.conf: profile values, template sections and the legacy key")
    func resourceLimits() throws {
        let limits = try ResourceLimits(parsing: """
            node_profile=small
            max_active_apps=80
            memory_limit_in_bytes=268435456
            cpu_shares=256

            [cg_template_throttled]
            cpu_shares=128
            cpu_cfs_quota_us=100000
            """, file: "resource_limits.conf")
        #expect(limits.values["max_active_gears"] == "80")
        #expect(limits.cgroupLimits.memoryBytes == 268_435_456)
        #expect(limits.cgroupLimits.cpuShares == 256)
        #expect(limits.cgroupLimits.processes == 250, "unset keys keep the small profile's value")
        #expect(limits.sections["cg_template_throttled"]?["cpu_cfs_quota_us"] == "100000")
        #expect(throws: NodeConfigError.malformedLine(file: "r.conf", line: 2, text: "oops", reason: "expected KEY=value")) {
            try ResourceLimits(parsing: "a=1\noops\n", file: "r.conf")
        }
    }

    @Test("a gear's cgroup gets the limits, holds the gear's processes, and destroy leaves nothing",
          .enabled(if: Prerequisites.rootOrCI), .timeLimit(.minutes(3)))
    func lifecycle() async throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let hierarchy = try #require(CgroupHierarchy.detect(), "no cgroup hierarchy mounted")
        let name = "test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let cgroup = try GearCgroup(hierarchy: hierarchy, parent: "openshift-node-tests", name: name)
        let limits = CgroupLimits(memoryBytes: 256 << 20, cpuShares: 256, cpuQuotaMicroseconds: 50_000, processes: 64)
        try cgroup.create(limits: limits)
        defer {
            try? cgroup.destroy()
            // The test parent too, unless another test's cgroup is still in it.
            for directory in cgroup.directories { rmdir(String(directory[..<directory.lastIndex(of: "/")!])) }
        }
        switch hierarchy {
        case .v1(let controllers):
            if let memory = controllers["memory"] {
                #expect(TestFiles.read(memory + "/" + cgroup.path + "/memory.limit_in_bytes") == "268435456\n")
            }
            if let cpu = controllers["cpu"] {
                #expect(TestFiles.read(cpu + "/" + cgroup.path + "/cpu.shares") == "256\n")
                #expect(TestFiles.read(cpu + "/" + cgroup.path + "/cpu.cfs_quota_us") == "50000\n")
            }
            if let pids = controllers["pids"] { #expect(TestFiles.read(pids + "/" + cgroup.path + "/pids.max") == "64\n") }
        case .v2(let root):
            #expect(TestFiles.read(root + "/" + cgroup.path + "/memory.max") == "268435456\n")
            #expect(TestFiles.read(root + "/" + cgroup.path + "/pids.max") == "64\n")
        }

        // A gear process, and a child it forks into the background, both land in the cgroup. They
        // sleep for ten minutes (destroy kills them): a CI run under load once resumed this test
        // more than a minute after the spawn, when a shorter sleep had already exited.
        let scratch = TestFiles.temporaryDirectory("gear-cgroup")
        defer { TestFiles.remove(scratch) }
        var spec = GearExec(uid: 45010, gid: 45010, command: ["/bin/sh", "-c", "/bin/sleep 600 & exec /bin/sleep 601"])
        spec.cgroupFiles = cgroup.procsFiles
        spec.environmentOnDescriptor3 = false
        let pid = try ProcessRunner.spawn([ProcessRunner.executable("oo-gear-exec")] + spec.arguments,
                                          stdout: scratch + "/out", stderr: scratch + "/err")
        let text = await status(of: pid, once: "sleep")
        #expect(text != nil, "\(TestFiles.read(scratch + "/err") ?? "")")
        let membership = TestFiles.read("/proc/\(pid)/cgroup") ?? ""
        #expect(membership.contains("/" + cgroup.path + "\n"), "\(membership)")
        #expect(cgroup.processes().count == 2)

        try cgroup.destroy()
        #expect(ProcessRunner.wait(pid) == 128 + SIGKILL)
        #expect(!cgroup.exists)
        #expect(kill(pid, 0) != 0)
    }

    @Test("on v1 a gear's cgroup.procs files are the gear's (its login shell joins them), every limit file stays root's",
          .enabled(if: Prerequisites.rootOrCI))
    func membershipFilesBelongToTheGear() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let hierarchy = try #require(CgroupHierarchy.detect(), "no cgroup hierarchy mounted")
        let cgroup = try GearCgroup(hierarchy: hierarchy, parent: "openshift-node-tests", name: "member-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try cgroup.create(limits: CgroupLimits(memoryBytes: 256 << 20, cpuShares: 256, processes: 64), member: 45011)
        defer {
            try? cgroup.destroy()
            for directory in cgroup.directories { rmdir(String(directory[..<directory.lastIndex(of: "/")!])) }
        }
        for directory in cgroup.directories {
            var st = stat()
            for file in ["cgroup.procs", "tasks"] where stat(directory + "/" + file, &st) == 0 {
                if case .v1 = hierarchy {
                    #expect(st.st_uid == 45011, "\(directory)/\(file)")
                } else {
                    #expect(st.st_uid == 0, "v2: moving needs the common ancestor, nothing is handed out")
                }
            }
            for file in ["memory.limit_in_bytes", "cpu.shares", "pids.max", "memory.max"] where stat(directory + "/" + file, &st) == 0 {
                #expect(st.st_uid == 0, "\(directory)/\(file) must stay root's")
            }
        }
    }

    @Test("as the gear, on v1: it joins its own cgroup, but cannot leave it, raise its limits, or pull another user's process in",
          .enabled(if: Prerequisites.rootOrCI))
    func gearCannotUseItsMembershipFiles() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let hierarchy = try #require(CgroupHierarchy.detect(), "no cgroup hierarchy mounted")
        guard case .v1 = hierarchy else { return }
        let cgroup = try GearCgroup(hierarchy: hierarchy, parent: "openshift-node-tests", name: "attack-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try cgroup.create(limits: CgroupLimits(memoryBytes: 256 << 20, cpuShares: 256, processes: 64), member: 45012)
        defer {
            try? cgroup.destroy()
            for directory in cgroup.directories { rmdir(String(directory[..<directory.lastIndex(of: "/")!])) }
        }
        let memory = try #require(cgroup.directories.first { $0.contains("/memory/") }, "\(cgroup.directories)")
        let parent = String(memory[..<memory.lastIndex(of: "/")!])
        // Each step as uid 45012 with no capability; each line says whether the write worked.
        let script = """
            try() { if sh -c "$1" 2>/dev/null; then echo "$2=ok"; else echo "$2=refused"; fi; }
            try 'echo 0 > \(memory)/tasks' join
            try 'echo 0 > \(parent)/tasks' leave-parent
            try 'echo 0 > /sys/fs/cgroup/memory/tasks' leave-root
            try 'echo $$ > \(parent)/cgroup.procs' leave-procs
            try 'echo 1073741824 > \(memory)/memory.limit_in_bytes' raise-limit
            try 'echo 1 > \(memory)/tasks' pull-init
            try 'echo 1 > \(memory)/cgroup.procs' pull-init-procs
            """
        let result = try ProcessRunner.run(["/usr/bin/setpriv", "--reuid=45012", "--regid=45012", "--clear-groups", "--inh-caps=-all",
                                            "--bounding-set=-all", "--", "/bin/sh", "-c", script],
                                           environment: ["PATH": "/usr/bin:/bin"])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = Set(result.stdout.split(separator: "\n").map(String.init))
        #expect(lines == ["join=ok", "leave-parent=refused", "leave-root=refused", "leave-procs=refused", "raise-limit=refused",
                          "pull-init=refused", "pull-init-procs=refused"], "\(result.stdout)")
    }
}

@Suite("disk quota")
struct DiskQuotaTests {
    @Test("quotas are used only where the gears' file system has user quotas on")
    func detection() {
        let mounts = """
            /dev/vda / ext4 rw,relatime 0 0
            /dev/vdb /var/lib/openshift xfs rw,usrquota 0 0
            /dev/vdc /srv ext4 rw,usrjquota=aquota.user,jqfmt=vfsv1 0 0
            """
        let gears = DiskQuota(path: "/var/lib/openshift/abc", mounts: mounts, setquota: "/bin/true")
        #expect(gears.supported && gears.mountPoint == "/var/lib/openshift")
        #expect(DiskQuota(path: "/srv/gears", mounts: mounts, setquota: "/bin/true").supported)
        let root = DiskQuota(path: "/tmp/gears", mounts: mounts, setquota: "/bin/true")
        #expect(!root.supported && root.reason == "user quotas are not enabled on /")
        let noTool = DiskQuota(path: "/var/lib/openshift", mounts: mounts, setquota: "/nonexistent/setquota")
        #expect(!noTool.supported && noTool.reason.contains("install the quota package"))
    }
}
