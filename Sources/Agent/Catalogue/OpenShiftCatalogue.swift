/// The `openshift` agent's actions, inputs and outputs, as the original's DDL declares them
/// (reference/message-agent.md A.2), plus `rescan` for `cartridge_repository`.
extension AgentCatalogue {
    static let cartridgeName = InputSpec.Kind.string(validation: #"\A[a-zA-Z0-9\.\-\/_]+\z"#, maxLength: 64)
    static let gearUUID = InputSpec.Kind.string(validation: "^[-a-zA-Z0-9]+$", maxLength: 32)
    static let plainUUID = InputSpec.Kind.string(validation: "^[a-zA-Z0-9]+$", maxLength: 32)

    static let time = OutputSpec("time", "The time as a message", displayAs: "Time")
    static let output = OutputSpec("output", "Output from script", displayAs: "Output")
    static let exitcode = OutputSpec("exitcode", "Exit code", displayAs: "Exit Code")

    /// The 67 sub-actions of `cartridge_do` the DDL lists.
    public static let cartridgeDoActions: [String] = """
        add-alias add-aliases aliases app-create app-destroy app-state-show authorized-ssh-key-add \
        authorized-ssh-key-batch-add authorized-ssh-key-remove authorized-ssh-key-batch-remove \
        authorized-ssh-keys-replace broker-auth-key-add broker-auth-key-remove cartridge-list conceal-port \
        configure connector-execute deconfigure deploy-httpd-proxy env-var-add env-var-remove expose-port \
        force-stop frontend-backup frontend-check-idle frontend-connect frontend-connections frontend-create \
        frontend-destroy frontend-disconnect frontend-reconnect frontend-get-sts frontend-idle frontend-no-sts \
        frontend-restore frontend-sts frontend-to-hash frontend-unidle frontend-update-name get-quota \
        post-configure post-install post-remove pre-install reload remove-alias remove-aliases \
        remove-httpd-proxy restart set-quota show-port ssl-cert-add ssl-cert-remove ssl-certs start status \
        stop threaddump tidy user-var-add user-var-remove user-var-list unsubscribe update-cluster \
        update-configuration deploy activate
        """.split(separator: " ").map(String.init)

    public static let openshift = AgentCatalogue(
        name: "openshift",
        description: "Manages the gears and cartridges of an OpenShift node",
        author: "openshift-node",
        license: "ASL 2.0",
        version: "2.0",
        url: "https://github.com/openshift/origin-server",
        timeout: 360,
        actions: [
            ActionSpec("cartridge_do", "run a cartridge action", inputs: [
                InputSpec("cartridge", cartridgeName, prompt: "Cartridge",
                          description: "Full name and version of the cartridge to run an action on", alsoShellsafe: true),
                InputSpec("action", .list(cartridgeDoActions), prompt: "Action", description: "Cartridge hook to run",
                          alsoShellsafe: true),
                InputSpec("args", .any, optional: true, prompt: "Args", description: "Args to pass to cartridge"),
            ], outputs: [time, output, exitcode,
                         OutputSpec("addtl_params", "Additional Params", displayAs: "Additional Params")]),
            ActionSpec("execute_parallel", "run commands in parallel", outputs: [output, exitcode]),
            ActionSpec("get_facts", "get a specific list of facts", inputs: [
                InputSpec("facts", .any, prompt: "Facts", description: "Enumerable list of fact names for which to retrieve values"),
            ], outputs: [OutputSpec("output", "A hash of facts and their values", displayAs: "Facts")]),
            ActionSpec("get_all_gears", "get info about all gears",
                       outputs: [OutputSpec("output", "Gear information", displayAs: "Output"), exitcode]),
            ActionSpec("get_all_active_gears", "get all the active gears",
                       outputs: [OutputSpec("output", "Active gears", displayAs: "Output"), exitcode]),
            ActionSpec("get_all_gears_endpoints", "get ports info about all gears",
                       outputs: [OutputSpec("output", "Gear external ports information", displayAs: "Output"), exitcode]),
            ActionSpec("get_all_gears_sshkeys", "get all sshkeys for all gears",
                       outputs: [OutputSpec("output", "Gear ssh keys", displayAs: "Output"), exitcode]),
            ActionSpec("set_district", "Set the District of a Node", inputs: [
                InputSpec("uuid", plainUUID, prompt: "District uuid", description: "District uuid"),
                InputSpec("active", .boolean, prompt: "District active boolean", description: "District active boolean"),
                InputSpec("first_uid", .integer, prompt: "First uid", description: "First uid"),
                InputSpec("max_uid", .integer, prompt: "Max uid", description: "Max uid"),
            ], outputs: [time, output, exitcode]),
            ActionSpec("set_district_uid_limits", "Set District uid limits for a Node", inputs: [
                InputSpec("first_uid", .integer, prompt: "First uid", description: "First uid"),
                InputSpec("max_uid", .integer, prompt: "Max uid", description: "Max uid"),
            ], outputs: [time, output, exitcode]),
            ActionSpec("has_gear", "Does this server contain a specified gear?", inputs: [
                InputSpec("uuid", gearUUID, prompt: "Gear uuid", description: "Gear uuid"),
            ], outputs: [time, OutputSpec("output", "true or false", displayAs: "Output"), exitcode]),
            ActionSpec("has_embedded_app", "Does this server contain a specified embedded app?", inputs: [
                InputSpec("uuid", plainUUID, prompt: "Application uuid", description: "Application uuid"),
                InputSpec("embedded_type", .string(validation: "^.+$", maxLength: 32), prompt: "Embedded Type",
                          description: "Type of embedded application"),
            ], outputs: [time, OutputSpec("output", "true or false", displayAs: "Output"), exitcode]),
            ActionSpec("get_gear_envs", "Returns the gear's env hash", inputs: [
                InputSpec("uuid", plainUUID, prompt: "Application uuid", description: "Application uuid"),
            ], outputs: [time, OutputSpec("output", "hash", displayAs: "Output"), exitcode]),
            ActionSpec("get_gear_uid", "Returns the gear's uid", inputs: [
                InputSpec("gear_uuid", gearUUID, prompt: "Gear uuid", description: "Gear uuid"),
            ], outputs: [time, OutputSpec("output", "uid", displayAs: "Output"), exitcode]),
            ActionSpec("has_uid_or_gid", "Returns whether this system has already taken the uid or gid", inputs: [
                InputSpec("uid", .number, prompt: "uid/gid", description: "uid/gid"),
            ], outputs: [time, OutputSpec("output", "true or false", displayAs: "Output"), exitcode]),
            ActionSpec("has_app_cartridge", "Does this application contain the specified cartridge on the gear?", inputs: [
                InputSpec("app_uuid", plainUUID, prompt: "Application uuid", description: "Application uuid"),
                InputSpec("gear_uuid", gearUUID, prompt: "Gear uuid", description: "Gear uuid"),
                InputSpec("cartridge", cartridgeName, prompt: "Cartridge",
                          description: "Full name and version of the cartridge to run an action on"),
            ], outputs: [time, OutputSpec("output", "true or false", displayAs: "Output"), exitcode]),
            ActionSpec("cartridge_repository", "perform given operation on a cartridge repository", inputs: [
                InputSpec("action", .list(["install", "list", "erase", "rescan"]), prompt: "Action",
                          description: "Operation to perform on cartridge repository"),
                InputSpec("path", .string(validation: "^/.*$", maxLength: 2056), optional: true, prompt: "Cartridge Source",
                          description: "Full path to cartridge source"),
                InputSpec("cartridge_vendor", .string(validation: #"^[a-z\d]+$"#, maxLength: 64), optional: true,
                          prompt: "Cartridge Vendor", description: "Cartridge Vendor (default redhat)"),
                InputSpec("name", .string(validation: #"^[A-Za-z\d]+$"#, maxLength: 64), optional: true,
                          prompt: "Cartridge Name", description: "Cartridge Name to Remove"),
                InputSpec("version", .string(validation: #"^\d+[\.\d]*$"#, maxLength: 64), optional: true,
                          prompt: "Software Version", description: "Version for Software packaged by cartridge"),
                InputSpec("cartridge_version", .string(validation: #"^\d+[\.\d]*$"#, maxLength: 64), optional: true,
                          prompt: "Cartridge Version", description: "Cartridge Version number"),
                InputSpec("force", .list(["true", "false"]), optional: true, prompt: "Force",
                          description: "Erase even when gears use the version"),
            ], outputs: [OutputSpec("output", "Result of the operation", displayAs: "Output")]),
            ActionSpec("echo", "echo's a string back", inputs: [
                InputSpec("msg", .string(validation: "^.+$", maxLength: 90), prompt: "prompt when asking for information",
                          description: "description of input"),
            ], outputs: [OutputSpec("msg", "displayed message", displayAs: "Message"),
                         OutputSpec("time", "the time as a message", displayAs: "Time")]),
            ActionSpec("upgrade", "upgrade a gear", inputs: [
                InputSpec("uuid", gearUUID, prompt: "Gear uuid", description: "Gear uuid"),
                InputSpec("app_uuid", plainUUID, prompt: "Application uuid", description: "Application uuid"),
                InputSpec("namespace", .string(validation: "^.+$", maxLength: 32), prompt: "Namespace", description: "Namespace"),
                InputSpec("version", .string(validation: "^.+$", maxLength: 64), prompt: "Target Version", description: "Target version"),
                InputSpec("ignore_cartridge_version", .list(["true", "false"]), prompt: "Ignore Cartridge Version",
                          description: "Do not skip upgrade if Cartridge Versions match"),
            ], outputs: [time, OutputSpec("output", "Output from the upgrade", displayAs: "Output"), exitcode]),
        ])
}
