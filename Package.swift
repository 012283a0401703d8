// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "openshift-node",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "openshift-node", targets: ["openshift-node"]),
        .executable(name: "oo-admin-cartridge", targets: ["oo-admin-cartridge"]),
        .executable(name: "oo-cartridge", targets: ["oo-cartridge"]),
        .executable(name: "node-bench", targets: ["node-bench"]),
        .executable(name: "oo-gear-exec", targets: ["oo-gear-exec"]),
        .executable(name: "oo-trap-user", targets: ["oo-trap-user"]),
        .executable(name: "oo-devel-node", targets: ["oo-devel-node"]),
        .executable(name: "oo-admin-ctl-gears", targets: ["oo-admin-ctl-gears"]),
        .executable(name: "gear", targets: ["gear"]),
        .executable(name: "oo-accept-node", targets: ["oo-accept-node"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
    ],
    targets: [
        .target(name: "NodeConfig", dependencies: ["CLinux"]),
        .target(name: "CLinux"),
        .systemLibrary(name: "CSELinux", pkgConfig: "libselinux", providers: [.apt(["libselinux1-dev"])]),
        // libyaml, the parser the original's Psych used: Cartridges composes manifests from its
        // events itself (YAMLLimits.swift), so no Foundation-based YAML library is linked.
        .systemLibrary(name: "CLibYAML", pkgConfig: "yaml-0.1", providers: [.apt(["libyaml-dev"])]),
        .target(
            name: "Containment",
            dependencies: ["NodeConfig", "CLinux", "CSELinux", .product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "Frontend", dependencies: ["NodeConfig"]),
        .target(
            name: "Gears",
            dependencies: ["Cartridges", "Containment", "Frontend", "NodeConfig", .product(name: "Logging", package: "swift-log")]
        ),
        .target(name: "Access", dependencies: ["Gears", "Containment", "NodeConfig", .product(name: "Logging", package: "swift-log")]),
        // The root helper that becomes a gear: C, single-threaded, and linked statically so that no
        // dynamic loader (and no loader variable) is ever involved while it is root.
        .executableTarget(name: "oo-gear-exec", linkerSettings: [.unsafeFlags(["-static-executable"])]),
        // The gear's login shell (GEAR_SHELL), run by sshd as the gear: C and static for the same
        // reason, so that no loader or NSS module runs before it has cleaned its environment.
        .executableTarget(name: "oo-trap-user", linkerSettings: [.unsafeFlags(["-static-executable"])]),
        .target(
            name: "Cartridges",
            dependencies: [
                "NodeConfig", "CLinux", "CLibYAML",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "NodeDaemon",
            dependencies: [
                "NodeConfig", "Cartridges", "Gears", "Frontend", "Agent", "CLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ]
        ),
        .target(
            name: "NodeCLI",
            dependencies: [
                "NodeConfig", "Cartridges", "Containment", "Gears", "Frontend", "Agent",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Agent",
            dependencies: [
                "NodeConfig", "Cartridges", "Containment", "Gears", "Frontend", "Access",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "MCollective",
            dependencies: [
                "Agent",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "NodeTestSupport", dependencies: ["NodeConfig", "Cartridges"]),
        .executableTarget(
            name: "openshift-node",
            dependencies: [
                "NodeCLI", "NodeDaemon", "Cartridges", "NodeConfig", "Frontend", "Gears", "Agent", "MCollective",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "oo-admin-cartridge",
            dependencies: ["NodeCLI", "Cartridges", "Gears", "Agent", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "oo-cartridge",
            dependencies: ["NodeCLI", "Cartridges", "Gears", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "oo-devel-node",
            dependencies: ["NodeCLI", "Gears", "Frontend", "Agent", "Access", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "oo-admin-ctl-gears",
            dependencies: ["NodeCLI", "Gears", "Frontend", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "oo-accept-node",
            dependencies: [
                "NodeCLI", "NodeConfig", "Cartridges", "Containment", "Gears", "Frontend", "MCollective",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The in-gear `gear` command: runs as the gear's user, never as root.
        .executableTarget(name: "gear", dependencies: ["Access", "NodeConfig", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "node-bench",
            dependencies: [
                "Cartridges", "NodeConfig", "NodeTestSupport", "Gears", "Containment", "Frontend", "MCollective", "Access", "NodeCLI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "NodeConfigTests", dependencies: ["NodeConfig"]),
        .testTarget(name: "AccessTests", dependencies: ["Access", "Agent", "Gears", "Containment", "Cartridges", "NodeConfig", "NodeTestSupport"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "Gears", "Cartridges", "NodeConfig", "NodeTestSupport"]),
        .testTarget(
            name: "MCollectiveTests",
            dependencies: [
                "MCollective", "Agent", "NodeTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "ContainmentTests", dependencies: ["Containment", "NodeConfig", "NodeTestSupport"]),
        .testTarget(name: "FrontendTests", dependencies: ["Frontend", "NodeConfig", "NodeTestSupport"], exclude: ["Support"]),
        .testTarget(name: "GearsTests", dependencies: ["Gears", "Frontend", "Containment", "Cartridges", "NodeConfig", "NodeTestSupport"]),
        .testTarget(
            name: "CartridgesTests",
            dependencies: ["Cartridges", "NodeConfig", "NodeTestSupport"],
            exclude: ["Fixtures"]
        ),
        .testTarget(name: "SnapshotTests", dependencies: ["Access", "Gears", "Containment", "Cartridges", "NodeConfig", "NodeTestSupport"]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Cartridges", "Containment", "NodeConfig", "NodeTestSupport"]
        ),
    ]
)
