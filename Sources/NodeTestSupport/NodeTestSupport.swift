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
        .init(path: repositoryPath, cartridgeBasePath: basePath)
    }

    public func repository(afterFileCopied: (@Sendable (Int) -> Void)? = nil) -> CartridgeRepository {
        CartridgeRepository(configuration: configuration, afterFileCopied: afterFileCopied)
    }

    public func destroy() { TestFiles.remove(root) }
}
