/// One self-check of the node. Checks only read: nothing on disk, in the account databases or
/// in the kernel changes because a check ran.
protocol NodeCheck: Sendable {
    /// The name `--verbose` prints and JSON reports (`"check"`).
    var name: String { get }
    func run(_ node: NodeUnderTest) -> [Finding]
}
