import ArgumentParser
import Cartridges
import Gears
import NodeCLI

/// `oo-cartridge`: the admin's view of cartridges. `list` shows the repository; the per-gear
/// `add` and `delete` actions of the original arrive with gears.
@main
struct OOCartridge: NodeTool {
    static let configuration = CommandConfiguration(
        commandName: "oo-cartridge",
        abstract: "List the cartridges of this node's repository; add or delete a cartridge in a gear.",
        discussion: """
            oo-cartridge list [--json]: one (vendor, name, version, cartridge_version) tuple a line.
            oo-cartridge -a add -c UUID -n python-3.11: configure a cartridge into a gear (delete removes it).
            """)

    @Argument(help: "The action: list.")
    var actionArgument: String?

    @Option(name: [.customShort("a"), .long], help: "The action (same as the argument): list.")
    var action: String?

    @Flag(help: "Machine-readable output: one object per entry with default and shipped flags.")
    var json = false

    @Option(name: [.customShort("c"), .customLong("with-container-uuid")], help: "add/delete: the gear.")
    var uuid: String?

    @Option(name: [.customShort("n"), .customLong("with-cartridge-name")], help: "add/delete: the cartridge, e.g. mock-0.1 or python.")
    var cartridge: String?

    @OptionGroup var node: NodeOptions

    func validate() throws {
        if let actionArgument, let action, actionArgument != action {
            throw ValidationError("two different actions given: '\(actionArgument)' and '\(action)'")
        }
        switch effectiveAction {
        case "list": break
        case "add", "delete":
            if uuid == nil || cartridge == nil { throw ValidationError("Invalid arguments: add and delete need --with-container-uuid and --with-cartridge-name") }
        case let other:
            throw ValidationError("unknown action '\(other)'; expected list, add or delete")
        }
    }

    var effectiveAction: String { action ?? actionArgument ?? "list" }

    func run() throws {
        try runReportingFailures {
            if effectiveAction == "list" {
                let repository = CartridgeRepository.shared(for: try node.layout())
                try AdminListing.print(repository, json: json)
                return
            }
            let services = try NodeServices(layout: try node.layout())
            do {
                let result = effectiveAction == "add"
                    ? try services.gears.configure(uuid!, cartridge: cartridge!)
                    : try services.gears.deconfigure(uuid!, cartridge: cartridge!)
                printLine("Cartridge \(effectiveAction) succeeded")
                if !result.output.isEmpty { printText(result.output) }
            } catch {
                throw CommandFailure(error, prefix: "Cartridge \(effectiveAction) finished with error. (Cartridge left in situ): ")
            }
        }
    }
}
