import Testing

@testable import Containment

@Suite("MCS label")
struct MCSLabelTests {
    @Test("the reference's worked examples", arguments: [
        (1, "s0:c0,c1"), (500, "s0:c0,c500"), (1000, "s0:c0,c1000"), (1023, "s0:c0,c1023"), (1024, "s0:c1,c2"),
        (1500, "s0:c1,c478"), (1524, "s0:c1,c502"), (2045, "s0:c1,c1023"), (2046, "s0:c2,c3"), (4092, "s0:c4,c10"),
        (5501, "s0:c5,c401"), (6999, "s0:c6,c882"), (8184, "s0:c8,c36"), (14191, "s0:c13,c983"),
        (32736, "s0:c32,c528"), (65472, "s0:c66,c165"), (261888, "s0:c299,c861"), (523775, "s0:c1021,c1023"),
    ])
    func examples(uid: Int, label: String) throws {
        #expect(try MCSLabel(uid: uid).description == label)
    }

    @Test("every uid from 1 to 523775 gets the pair a lexicographic enumeration gives it")
    func bruteForce() throws {
        var uid = 1
        var mismatches = 0
        for a in 0..<1024 {
            for b in (a + 1)..<1024 where uid <= 523775 {
                let label = try MCSLabel(uid: uid)
                if label.categories != [a, b] || label.sensitivity != 0 { mismatches += 1 }
                uid += 1
            }
        }
        #expect(uid == 523776)
        #expect(mismatches == 0)
    }

    @Test("outside the range is a clear error", arguments: [
        (0, "uid 0: must resolve to a UID greater than 0"),
        (-5, "uid -5: must resolve to a UID greater than 0"),
        (523776, "uid 523776: too large for MCS set parameters (the last labelled uid is 523775)"),
    ])
    func outOfRange(uid: Int, message: String) {
        #expect(throws: ContainmentError.self) { try MCSLabel(uid: uid) }
        do {
            _ = try MCSLabel(uid: uid)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test("other parameters follow the same enumeration, offset and sensitivity included")
    func otherParameters() throws {
        let parameters = MCSLabel.Parameters(setSize: 8, groupSize: 3, uidOffset: 1000, mlsNum: 2)
        var uid = parameters.firstUID
        #expect(uid == 1002)
        for a in 0..<8 {
            for b in (a + 1)..<8 {
                for c in (b + 1)..<8 {
                    #expect(try MCSLabel(uid: uid, parameters: parameters).description == "s2:c\(a),c\(b),c\(c)")
                    uid += 1
                }
            }
        }
        #expect(throws: ContainmentError.self) { try MCSLabel(uid: uid, parameters: parameters) }
        let offset = MCSLabel.Parameters(uidOffset: 500)
        #expect(try MCSLabel(uid: 501, parameters: offset).description == "s0:c0,c1")
        #expect(throws: ContainmentError.self) { try MCSLabel(uid: 500, parameters: offset) }
    }

    @Test("nonsense parameters are refused", arguments: [
        MCSLabel.Parameters(setSize: 0), MCSLabel.Parameters(groupSize: 0), MCSLabel.Parameters(setSize: 4, groupSize: 5),
        MCSLabel.Parameters(uidOffset: -1),
    ])
    func badParameters(parameters: MCSLabel.Parameters) {
        #expect(throws: ContainmentError.self) { try MCSLabel(uid: 10, parameters: parameters) }
    }
}
