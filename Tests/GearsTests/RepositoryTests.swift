import Foundation
import Gears
import NodeConfig
import NodeTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The application repository a deployable cartridge's configure creates (`~/git/<app>.git`):
/// from the cartridge's template, from a template URL, or empty; git always runs as the gear.
/// Node mode (real accounts) as root, so ownership is checked; the sandbox otherwise.
@Suite("the gear's git repository", .enabled(if: access("/usr/bin/git", X_OK) == 0 || Prerequisites.inCI))
struct RepositoryTests {
    static var plugin: String { Prerequisites.isRoot ? "selinux" : "sandbox" }

    static func git(_ repo: String, _ arguments: [String]) throws -> ProcessRunner.Result {
        try ProcessRunner.run(["/usr/bin/git", "-c", "safe.directory=*", "--git-dir=" + repo] + arguments, environment: ["PATH": "/usr/bin:/bin"])
    }

    @Test("configure makes the template the repository's master and the first, active deployment; hooks are root's, objects the gear's")
    func fromTemplate() throws {
        let node = try GearNode(Self.plugin, label: "repo-template")
        defer { node.destroy() }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "python")
        let repo = gear.home + "/git/app.git"
        #expect(try Self.git(repo, ["log", "--format=%s", "master"]).stdout == "Creating template\n")
        #expect(try Self.git(repo, ["ls-tree", "--name-only", "master"]).stdout == "wsgi.py\n")
        #expect(try Self.git(repo, ["symbolic-ref", "HEAD"]).stdout == "refs/heads/master\n")
        #expect(!TestFiles.exists(repo + "/index"), "no index is left in the bare repository")
        for hook in ["pre-receive", "post-receive"] {
            let status = try #require(mode(repo + "/hooks/" + hook))
            #expect(status.owner == 0 && status.mode & 0o777 == 0o755, "\(hook): \(status)")
            #expect(TestFiles.read(repo + "/hooks/" + hook)?.hasPrefix("#!/bin/sh\nexec '") == true)
        }
        #expect(mode(repo + "/hooks")?.owner == 0)
        #expect(TestFiles.exists(gear.home + "/.gitconfig"))
        if Self.plugin == "selinux" {
            let objects = try #require(FileManager.default.enumerator(atPath: repo + "/objects")).compactMap { $0 as? String }
            #expect(!objects.isEmpty && objects.allSatisfy { mode(repo + "/objects/" + $0)?.owner == gear.identity.uid }, "objects are the gear's")
        }
        let deployments = gear.home + "/app-deployments"
        #expect(TestFiles.list(deployments + "/by-id").count == 1)
        #expect(TestFiles.read(gear.home + "/app-root/runtime/repo/wsgi.py") == TestFiles.read(shippedCartridges + "/python/template/wsgi.py"))
        let listed = try node.manager.deploymentsJSON(gear.uuid)
        #expect(listed.contains(#""ref":"master""#) && listed.contains(#""active":true"#), "\(listed)")
    }

    @Test("as the gear: links planted for the hooks, the repository or ~/.gitconfig never make root write, read or remove outside the gear",
          .enabled(if: Prerequisites.rootOrCI))
    func plantedLinks() throws {
        try #require(Prerequisites.rootProblem == nil, "\(Prerequisites.rootProblem ?? "")")
        let node = try GearNode("selinux", label: "repo-attack")
        defer { node.destroy() }
        let decoy = node.scratch.root + "/decoy"
        try Attack.rootOnlyDecoy(decoy, count: 3)
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(gear.uuid, cartridge: "python")
        let repo = gear.home + "/git/app.git"

        // The hooks directory (root's, but in the gear's repository: the gear can move it aside)
        // becomes a link to root's directory: configure again rewrites the hooks, not through the
        // link, and keeps the gear's code.
        let planted = try Attack.asGear(gear, "mv git/app.git/hooks git/app.git/hooks.root && ln -s \(decoy) git/app.git/hooks")
        #expect(planted.status == 0, "\(planted.stderr)")
        _ = try node.manager.deconfigure(gear.uuid, cartridge: "python")
        _ = try node.manager.configure(gear.uuid, cartridge: "python")
        #expect(Attack.intactDecoyFiles(decoy, count: 3) == 3, "root's files are untouched")
        #expect(TestFiles.list(decoy).count == 3, "nothing was written into root's directory")
        #expect(mode(repo + "/hooks").map { $0.owner == 0 } == true && mode(repo + "/hooks/post-receive")?.owner == 0, "hooks rebuilt, root's")
        #expect(try Self.git(repo, ["log", "--format=%s", "master"]).stdout == "Creating template\n", "the gear's code is kept")

        // ~/git and ~/.gitconfig are entries of the home, which is root's: the gear cannot swap them.
        let swapped = try Attack.asGear(gear, "mv git git.old || rm -f .gitconfig || ln -s \(decoy) .gitconfig")
        #expect(swapped.status != 0 && TestFiles.exists(repo + "/HEAD"), "\(swapped.stderr)")
    }

    @Test("a template URL: a local repository's branch after #, or empty; other schemes and options are refused and leave nothing")
    func fromURL() throws {
        let node = try GearNode(Self.plugin, label: "repo-url")
        defer { node.destroy() }
        // A source repository with a branch `other` (the gear's own files: git refuses another owner's).
        let source = node.scratch.root + "/source.git"
        let work = node.scratch.root + "/source"
        let environment = ["PATH": "/usr/bin:/bin", "HOME": node.scratch.root, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e",
                           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@e"]
        for argv in [["init", "-q", "-b", "master", work], ["-C", work, "commit", "-q", "--allow-empty", "-m", "on master"],
                     ["-C", work, "checkout", "-q", "-b", "other"]] {
            #expect(try ProcessRunner.run(["/usr/bin/git"] + argv, environment: environment).status == 0)
        }
        try TestFiles.write(work + "/from-url.txt", "from the URL\n")
        for argv in [["-C", work, "add", "from-url.txt"], ["-C", work, "commit", "-q", "-m", "on other"], ["clone", "-q", "--bare", work, source]] {
            #expect(try ProcessRunner.run(["/usr/bin/git"] + argv, environment: environment).status == 0)
        }
        let gear = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        if Self.plugin == "selinux" {
            #expect(try ProcessRunner.run(["/bin/chown", "-R", "\(gear.identity.uid):\(gear.identity.uid)", source]).status == 0)
        }
        _ = try node.manager.configure(gear.uuid, cartridge: "python", templateURL: "file://\(source)#other")
        let repo = gear.home + "/git/app.git"
        #expect(try Self.git(repo, ["log", "--format=%s", "-1", "master"]).stdout == "on other\n")
        #expect(TestFiles.read(gear.home + "/app-root/runtime/repo/from-url.txt") == "from the URL\n")

        let empty = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
        _ = try node.manager.configure(empty.uuid, cartridge: "python", templateURL: "empty")
        #expect(try Self.git(empty.home + "/git/app.git", ["rev-parse", "--verify", "--quiet", "master"]).status != 0, "an empty repository")
        #expect(!TestFiles.exists(empty.home + "/app-deployments/current"), "nothing to deploy yet")

        for (url, expected) in [("ftp://example.com/x.git", "protocol must be one of"), ("--upload-pack=touch /tmp/x", "protocol must be one of"),
                                ("file:///x.git#--output=y", "the #fragment"), ("/nonexistent/x.git", "could not be set up")] {
            let refused = try node.manager.create(GearCreateRequest(uuid: uniqueUUID()))
            #expect {
                _ = try node.manager.configure(refused.uuid, cartridge: "python", templateURL: url)
            } throws: { error in
                "\(error)".contains(expected)
            }
            #expect(!TestFiles.exists(refused.home + "/git/app.git"), "\(url): the repository is left")
            #expect(node.manager.cartridges(of: refused).isEmpty, "\(url): the cartridge is left")
        }
    }
}
