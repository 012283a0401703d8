/// A rule between keys of `node.conf` whose values are each acceptable on their own.
///
/// Checked once the whole file is read; a broken rule is reported at the line of whichever of
/// its keys the file set last, since that is the assignment that made the values disagree.
/// The defaults satisfy every rule.
public struct NodeConfigRule: Sendable {
    /// The keys the rule reads; all are `.integer` keys.
    public var keys: [String]
    /// What is wrong, as a sentence a user can act on; nil when the rule holds.
    let problem: @Sendable ([String: Int]) -> String?

    init(_ keys: [String], problem: @escaping @Sendable ([String: Int]) -> String?) {
        self.keys = keys
        self.problem = problem
    }
}

extension NodeConfigRule {
    /// In order: a later rule may assume the earlier ones hold.
    public static let all: [NodeConfigRule] = [
        .init(["GEAR_MIN_UID", "GEAR_MAX_UID"]) { v in
            let low = v["GEAR_MIN_UID"]!, high = v["GEAR_MAX_UID"]!
            return low <= high ? nil
                : "GEAR_MAX_UID (\(high)) is below GEAR_MIN_UID (\(low)), so no uid is left for gears; "
                    + "set GEAR_MAX_UID to at least GEAR_MIN_UID"
        },
        .init(["SELINUX_MCS_SET_SIZE", "SELINUX_MCS_GROUP_SIZE"]) { v in
            let set = v["SELINUX_MCS_SET_SIZE"]!, group = v["SELINUX_MCS_GROUP_SIZE"]!
            return group <= set ? nil
                : "SELINUX_MCS_GROUP_SIZE (\(group)) is larger than SELINUX_MCS_SET_SIZE (\(set)); "
                    + "a label cannot hold more categories than there are"
        },
        .init(["GEAR_MIN_UID", "GEAR_MAX_UID", "SELINUX_MCS_SET_SIZE", "SELINUX_MCS_GROUP_SIZE", "SELINUX_MCS_UID_OFFSET"]) { v in
            let low = v["GEAR_MIN_UID"]!, high = v["GEAR_MAX_UID"]!
            let labelled = labelledUIDs(setSize: v["SELINUX_MCS_SET_SIZE"]!, groupSize: v["SELINUX_MCS_GROUP_SIZE"]!,
                                        uidOffset: v["SELINUX_MCS_UID_OFFSET"]!)
            if let labelled, labelled.contains(low) && labelled.contains(high) { return nil }
            let which = labelled.map { "only uids \($0.lowerBound)...\($0.upperBound) have one" } ?? "no uid has one"
            return "GEAR_MIN_UID...GEAR_MAX_UID (\(low)...\(high)) includes uids without an MCS label (\(which) with these "
                + "SELINUX_MCS_* settings); narrow the uid range or change the MCS settings"
        },
        .init(["WRAPAROUND_UID", "IP_ADDRESS_WRAPAROUND_OFFSET"]) { v in
            let modulus = v["WRAPAROUND_UID"]!, offset = v["IP_ADDRESS_WRAPAROUND_OFFSET"]!
            // Block b of a gear is 127.0.0.0 + (b << 7); b reaches modulus - 1 + offset.
            return modulus + offset <= 1 << 17 ? nil
                : "WRAPAROUND_UID + IP_ADDRESS_WRAPAROUND_OFFSET (\(modulus) + \(offset)) is above 131072, "
                    + "so some gear addresses would fall outside 127.0.0.0/8"
        },
        .init(["PORT_BEGIN", "PORTS_PER_USER"]) { v in
            let begin = v["PORT_BEGIN"]!, count = v["PORTS_PER_USER"]!
            return begin + count - 1 <= 65_535 ? nil
                : "PORT_BEGIN + PORTS_PER_USER (\(begin) + \(count)) goes past port 65535, "
                    + "so not even one gear has a full set of proxy ports"
        },
    ]

    /// The uids that have an MCS label: the formula of `MCSLabel` in Containment (first uid
    /// `offset + group - 1`, one uid per `group`-element subset of the categories, the last pair
    /// refused when the group is two, as in the original), with no arithmetic that can trap; nil
    /// when no uid has one.
    static func labelledUIDs(setSize: Int, groupSize: Int, uidOffset: Int) -> ClosedRange<Int>? {
        let first = uidOffset + groupSize - 1
        var count = 1
        for i in 0..<min(groupSize, setSize - groupSize) {
            let (product, overflow) = count.multipliedReportingOverflow(by: setSize - i)
            if overflow { return first...Int.max }
            count = product / (i + 1)
        }
        let (last, overflow) = first.addingReportingOverflow(count - 1 - (groupSize == 2 ? 1 : 0))
        if overflow { return first...Int.max }
        return last >= first ? first...last : nil
    }
}
