import Access
import Containment
import Crypto
import FoundationEssentials

#if canImport(Glibc)
import Glibc
#endif
import Gears
import NodeConfig

extension OpenShiftAgent {
    func gearExists(_ uuid: String) -> Bool {
        (try? context.gears.gear(uuid)) != nil
    }

    /// uuid → uid (as a String, as the original read it from /etc/passwd).
    /// `with_broker_key_auth: true` keeps only gears holding a broker auth token.
    func getAllGears(_ inputs: Inputs) -> AgentReply {
        let onlyWithToken = inputs["with_broker_key_auth"]?.bool == true
        let pairs = context.gears.allGears()
            .filter { !onlyWithToken || context.gears.hasBrokerAuth($0) }
            .sorted { $0.uuid < $1.uuid }
            .map { AgentValue.Pair(.string($0.uuid), .string(String($0.identity.uid))) }
        return output(.hash(pairs))
    }

    /// uuid → nil for every gear that is neither idle nor stopped.
    func getAllActiveGears() -> AgentReply {
        let gears = context.gears
        let pairs = gears.allGears()
            .filter { ![.idle, .stopped].contains(gears.state($0)) }
            .sorted { $0.uuid < $1.uuid }
            .map { AgentValue.Pair(.string($0.uuid), .null) }
        return output(.hash(pairs))
    }

    /// uuid → public endpoints. Public ports come from the port proxy, which this node does not
    /// run yet: gears without mapped public ports are omitted, as in the original, so this is
    /// an empty hash until `expose-port` exists.
    func getAllGearsEndpoints() -> AgentReply {
        output(.hash([]))
    }

    /// uuid → `["<last field>::<md5 hex of the second-to-last field>", ...]` from each gear's
    /// authorized_keys, as the original computed it (key id and key body for the node's lines).
    /// Principals are not reported, as in the original.
    func getAllGearsSSHKeys() -> AgentReply {
        var pairs: [AgentValue.Pair] = []
        for gear in context.gears.allGears().sorted(by: { $0.uuid < $1.uuid }) {
            guard let file = try? context.keys.authorizedKeys(gear) else { continue }
            var keys: [AgentValue] = []
            for line in file.lines {
                let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                guard fields.count >= 2 else { continue }
                let digest = Insecure.MD5.hash(data: Array(fields[fields.count - 2].utf8)).map { CFormat.string("%02x", $0) }.joined()
                keys.append(.string("\(fields[fields.count - 1])::\(digest)"))
            }
            if !keys.isEmpty { pairs.append(.init(.string(gear.uuid), .array(keys))) }
        }
        return output(.hash(pairs))
    }

    /// Whether `<gear>/<embedded_type>` exists. The type must be one path component (the
    /// original joined it into the path unchecked).
    func hasEmbeddedApp(_ inputs: Inputs) -> AgentReply {
        let type = inputs.string("embedded_type")
        guard !type.contains("/"), type != "..", type != ".", !type.contains(where: { $0.isNewline }) else {
            return .failure(4, "Cannot validate input embedded_type: value must be a single path component")
        }
        guard let gear = try? context.gears.gear(inputs.string("uuid")) else { return output(.bool(false)) }
        return output(.bool(context.gears.cartridges(of: gear).contains { $0.name == type }))
    }

    func hasAppCartridge(_ inputs: Inputs) -> AgentReply {
        guard let gear = try? context.gears.gear(inputs.string("gear_uuid")), gear.appUUID == inputs.string("app_uuid") else {
            return output(.bool(false))
        }
        let wanted = inputs.string("cartridge")
        let found = context.gears.cartridges(of: gear).contains { cartridge in
            cartridge.name == wanted || cartridge.shortName == wanted
                || cartridge.manifest.map { "\($0.name)-\($0.version)" == wanted || $0.name == wanted } == true
        }
        return output(.bool(found))
    }

    func getGearEnvs(_ inputs: Inputs) -> AgentReply {
        guard let gear = try? context.gears.gear(inputs.string("uuid")) else {
            return AgentReply(statuscode: 1, statusmsg: "gear \(inputs.string("uuid")) does not exist on this node",
                              data: .symbols(["output": .hash([]), "exitcode": .int(1)]))
        }
        let env = context.gears.environment(gear, cartridge: nil)
        return output(.hash(env.sorted { $0.key < $1.key }.map { .init(.string($0.key), .string($0.value)) }))
    }

    func getGearUID(_ inputs: Inputs) -> AgentReply {
        guard let gear = try? context.gears.gear(inputs.string("gear_uuid")) else {
            return AgentReply(statuscode: 1, statusmsg: "gear \(inputs.string("gear_uuid")) does not exist on this node",
                              data: .symbols(["output": .null, "exitcode": .int(1)]))
        }
        return output(.int(Int(gear.identity.uid)))
    }

    /// True when a user *or* a group holds the id (the original required both, despite its name,
    /// and so let a broker reuse a uid whose group was left behind).
    func hasUIDOrGID(_ inputs: Inputs) -> AgentReply {
        let number: Int
        switch inputs["uid"] {
        case .int(let n)?: number = n
        case .float(let d)? where d.rounded() == d && abs(d) < 1e12: number = Int(d)
        default: return output(.bool(false))
        }
        guard let id = UInt32(exactly: number) else { return output(.bool(false)) }
        return output(.bool(UnixAccounts.uidExists(id) || UnixAccounts.gidExists(id)))
    }
}
