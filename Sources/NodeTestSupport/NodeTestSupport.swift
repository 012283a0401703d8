import Cartridges
import NodeConfig

/// A scratch node: a temporary root with a base path, a repository and a gear directory.
public struct ScratchNode: Sendable {
    public let root: String
    public var basePath: String { root + "/cartridges" }
    public var repositoryPath: String { root + "/repository" }
    public var gearBaseDir: String { root + "/gears" }

    public init(_ label: String = "node-test") {
        root = TestFiles.temporaryDirectory(label)
        try? TestFiles.makeDirectories(root + "/cartridges")
        try? TestFiles.makeDirectories(root + "/gears")
    }

    public var configuration: CartridgeRepository.Configuration {
        .init(path: repositoryPath, cartridgeBasePath: basePath, gearBaseDir: gearBaseDir)
    }

    public func repository(afterFileCopied: (@Sendable (Int) -> Void)? = nil) -> CartridgeRepository {
        CartridgeRepository(configuration: configuration, afterFileCopied: afterFileCopied)
    }

    /// Records that gear `uuid` uses `ident` the way gears do (`<cart>/env/OPENSHIFT_<SHORT>_IDENT`).
    public func addGear(_ uuid: String, using ident: String, cartridgeDirectory: String, shortName: String) throws {
        try TestFiles.write("\(gearBaseDir)/\(uuid)/\(cartridgeDirectory)/env/OPENSHIFT_\(shortName)_IDENT", ident)
    }

    public func destroy() { TestFiles.remove(root) }
}
