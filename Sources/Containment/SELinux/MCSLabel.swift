import NodeConfig

/// The SELinux MCS level of a gear, from its uid: a pure function of the uid and four
/// `node.conf` parameters, identical to the original's for every uid it accepted.
///
/// All `groupSize`-element subsets of the categories `0..<setSize` are listed in lexicographic
/// order; the first belongs to uid `uidOffset + groupSize - 1`, the next to the next uid, and so
/// on. The level is `s<mls>:c<a>,c<b>...`. As in the original, with groups of two the very last
/// pair (uid 523776 with the defaults) is refused.
public struct MCSLabel: Sendable, Hashable, CustomStringConvertible {
    public struct Parameters: Sendable, Hashable {
        public var setSize: Int
        public var groupSize: Int
        public var uidOffset: Int
        public var mlsNum: Int

        public init(setSize: Int = 1024, groupSize: Int = 2, uidOffset: Int = 0, mlsNum: Int = 0) {
            self.setSize = setSize
            self.groupSize = groupSize
            self.uidOffset = uidOffset
            self.mlsNum = mlsNum
        }

        public init(configuration: NodeConfiguration) {
            self.init(setSize: configuration.integer("SELINUX_MCS_SET_SIZE"),
                      groupSize: configuration.integer("SELINUX_MCS_GROUP_SIZE"),
                      uidOffset: configuration.integer("SELINUX_MCS_UID_OFFSET"),
                      mlsNum: configuration.integer("SELINUX_MLS_NUM"))
        }

        /// The first uid that has a label.
        public var firstUID: Int { uidOffset + groupSize - 1 }

        /// The last uid that has a label. Saturates instead of trapping when the number of
        /// labels does not fit an Int (a large set with a large group).
        public var lastUID: Int {
            let count = binomial(setSize, groupSize)
            let (last, overflow) = firstUID.addingReportingOverflow(count - 1 - (groupSize == 2 ? 1 : 0))
            return overflow ? Int.max : last
        }
    }

    public let sensitivity: Int
    public let categories: [Int]

    public var description: String {
        "s\(sensitivity):" + categories.map { "c\($0)" }.joined(separator: ",")
    }

    public init(uid: Int, parameters: Parameters = .init()) throws(ContainmentError) {
        let p = parameters
        guard p.setSize > 0, p.groupSize > 0, p.groupSize <= p.setSize, p.uidOffset >= 0, p.mlsNum >= 0,
              p.setSize <= 1 << 16, p.uidOffset <= Int(UInt32.max) else {
            throw .invalidMCSParameters("SELINUX_MCS_SET_SIZE=\(p.setSize), SELINUX_MCS_GROUP_SIZE=\(p.groupSize), "
                + "SELINUX_MCS_UID_OFFSET=\(p.uidOffset), SELINUX_MLS_NUM=\(p.mlsNum)")
        }
        guard uid >= p.firstUID else {
            throw .uidOutOfMCSRange(uid: uid, reason: "must resolve to a UID greater than \(p.firstUID - 1)")
        }
        guard uid <= p.lastUID else {
            throw .uidOutOfMCSRange(uid: uid, reason: "too large for MCS set parameters (the last labelled uid is \(p.lastUID))")
        }
        sensitivity = p.mlsNum
        categories = Self.unrank(uid - p.firstUID, of: p.groupSize, from: p.setSize)
    }

    /// The `rank`-th `size`-element subset of `0..<n` in lexicographic order (combinatorial
    /// number system): at each position take the smallest element whose block of subsets
    /// still contains the rank.
    static func unrank(_ rank: Int, of size: Int, from n: Int) -> [Int] {
        if size == 2 { return unrankPair(rank, from: n) }
        var result: [Int] = []
        var remaining = rank
        var next = 0
        for position in 0..<size {
            let left = size - position - 1
            while true {
                let block = binomial(n - next - 1, left)
                if remaining < block { break }
                remaining -= block
                next += 1
            }
            result.append(next)
            next += 1
        }
        return result
    }
}

extension MCSLabel {
    /// Pairs in closed form: row `a` (pairs starting with category `a`) begins at rank
    /// `a(2n - a - 1)/2`; the floating-point root gives the row, an exact check corrects it.
    static func unrankPair(_ rank: Int, from n: Int) -> [Int] {
        func rowStart(_ a: Int) -> Int { a * (2 * n - a - 1) / 2 }
        let b = Double(2 * n - 1)
        var a = Int(((b - (b * b - 8 * Double(rank)).squareRoot()) / 2).rounded(.down))
        a = max(0, min(a, n - 2))
        while a > 0 && rowStart(a) > rank { a -= 1 }
        while a < n - 2 && rowStart(a + 1) <= rank { a += 1 }
        return [a, a + 1 + rank - rowStart(a)]
    }
}

/// n choose k, exact for the sizes MCS uses.
func binomial(_ n: Int, _ k: Int) -> Int {
    guard k >= 0, n >= k else { return 0 }
    let k = min(k, n - k)
    var result = 1
    for i in 0..<k {
        let (product, overflow) = result.multipliedReportingOverflow(by: n - i)
        if overflow { return Int.max }
        result = product / (i + 1)
    }
    return result
}
