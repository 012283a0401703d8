import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Gears
import NodeConfig

/// The node's district (`<GEAR_BASE_DIR>/.settings/district.info`), in the original's format:
/// a comment line, then `uuid='…'`, `active='…'`, `first_uid=…`, `max_uid=…`.
public struct District: Sendable, Equatable {
    public var uuid: String
    public var active: Bool
    public var firstUID: Int
    public var maxUID: Int

    public static func path(gearBaseDir: String) -> String { gearBaseDir + "/.settings/district.info" }

    /// The district, or nil when the node has none (no file).
    public static func read(gearBaseDir: String) -> District? {
        guard let text = FileSystem.read(path(gearBaseDir: gearBaseDir)) else { return nil }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            var value = line[line.index(after: eq)...]
            while let first = value.first, first == "'" || first == "\"" { value = value.dropFirst() }
            while let last = value.last, last == "'" || last == "\"" { value = value.dropLast() }
            values[String(line[..<eq])] = String(value)
        }
        return District(uuid: values["uuid"] ?? "NONE", active: values["active"] == "true",
                        firstUID: values["first_uid"].flatMap { Int($0) } ?? 1000,
                        maxUID: values["max_uid"].flatMap { Int($0) } ?? 6999)
    }

    var text: String {
        "#Do not modify manually!\nuuid='\(uuid)'\nactive='\(active)'\nfirst_uid=\(firstUID)\nmax_uid=\(maxUID)\n"
    }

    func write(gearBaseDir: String) throws(GearsError) {
        do {
            try FileSystem.makeDirectories(gearBaseDir + "/.settings")
            try FileSystem.writeAtomically(Self.path(gearBaseDir: gearBaseDir), text)
        } catch {
            throw GearsError(error)
        }
    }
}

extension OpenShiftAgent {
    /// Serialises district writers across processes (the original's /var/lock/oo-district-info).
    func withDistrictLock<T>(_ body: () -> T) -> T {
        let directory = context.layout.gearBaseDir + "/.settings"
        try? FileSystem.makeDirectories(directory)
        let lock = try? LockFile.acquire(directory + "/.district.lock")
        defer { lock?.release() }
        return body()
    }

    func setDistrict(_ inputs: Inputs) -> AgentReply {
        let district = District(uuid: inputs.string("uuid"), active: inputs["active"]?.bool ?? false,
                                firstUID: inputs["first_uid"]?.int ?? 0, maxUID: inputs["max_uid"]?.int ?? 0)
        guard district.firstUID > 0, district.maxUID >= district.firstUID else {
            return districtFailure("invalid uid range \(district.firstUID)...\(district.maxUID)")
        }
        return withDistrictLock {
            let existed = District.read(gearBaseDir: context.layout.gearBaseDir) != nil
            do { try district.write(gearBaseDir: context.layout.gearBaseDir) } catch { return districtFailure("\(error)") }
            let message = "\(existed ? "updated" : "created") district \(district.uuid) with active = \(district.active), "
                + "first_uid = \(district.firstUID), max_uid = \(district.maxUID)"
            return AgentReply(data: .symbols(["output": .string(message), "exitcode": .int(0)]))
        }
    }

    func setDistrictUIDLimits(_ inputs: Inputs) -> AgentReply {
        let (first, max) = (inputs["first_uid"]?.int ?? 0, inputs["max_uid"]?.int ?? 0)
        guard first > 0, max >= first else { return districtFailure("invalid uid range \(first)...\(max)") }
        return withDistrictLock {
            guard var district = District.read(gearBaseDir: context.layout.gearBaseDir) else {
                return districtFailure("this node has no district (set_district first)")
            }
            district.firstUID = first
            district.maxUID = max
            do { try district.write(gearBaseDir: context.layout.gearBaseDir) } catch { return districtFailure("\(error)") }
            return AgentReply(data: .symbols(["output": .string("updated district uid limits with first_uid = \(first), max_uid = \(max)"),
                                              "exitcode": .int(0)]))
        }
    }

    func districtFailure(_ message: String) -> AgentReply {
        AgentReply(statuscode: 1, statusmsg: message, data: .symbols(["output": .string(message), "exitcode": .int(255)]))
    }
}
