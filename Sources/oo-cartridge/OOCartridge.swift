import ArgumentParser
import Cartridges
import NodeCLI

/// `oo-cartridge`: the admin's view of cartridges. `list` shows the repository; the per-gear
/// `add` and `delete` actions of the original arrive with gears.
@main
struct OOCartridge: NodeTool {
    static let configuration = CommandConfiguration(
        commandName: "oo-cartridge",
        abstract: "List the cartridges of this node's repository.",
        discussion: "Prints one (vendor, name, version, cartridge_version) tuple a line, or JSON with --json.")

    @Argument(help: "The action: list.")
    var actionArgument: String?

    @Option(name: [.customShort("a"), .long], help: "The action (same as the argument): list.")
    var action: String?

    @Flag(help: "Machine-readable output: one object per entry with default and shipped flags.")
    var json = false

    @OptionGroup var node: NodeOptions

    func validate() throws {
        if let actionArgument, let action, actionArgument != action {
            throw ValidationError("two different actions given: '\(actionArgument)' and '\(action)'")
        }
        switch action ?? actionArgument ?? "list" {
        case "list": break
        case "add", "delete":
            throw ValidationError("'\(action ?? actionArgument!)' needs gears, which this node does not manage yet")
        case let other:
            throw ValidationError("unknown action '\(other)'; expected list")
        }
    }

    func run() throws {
        try runReportingFailures {
            let repository = CartridgeRepository(configuration: .init(layout: try node.layout()))
            try AdminListing.print(repository, json: json)
        }
    }
}
