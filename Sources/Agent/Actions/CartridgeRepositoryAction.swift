import Cartridges

extension OpenShiftAgent {
    /// `cartridge_repository`: install / erase / list, and `rescan` of CARTRIDGE_BASE_PATH.
    /// Failures are statuscode 4 with `"<action> failed for <what> <reason>"`, as the original.
    func cartridgeRepository(_ inputs: Inputs) -> AgentReply {
        let action = inputs.string("action")
        let repository = context.repository
        switch action {
        case "list":
            return AgentReply(data: .symbols(["output": .string(repository.current().listing)]))
        case "install":
            let path = inputs.string("path")
            if path.isEmpty { return .failure(4, "install failed for  a path is required") }
            if path.split(separator: "/").contains("..") {
                return .failure(4, "install failed for \(path) the path must not contain '..'")
            }
            do {
                let result = try repository.install(from: path)
                let what = result.changed ? "install succeeded for" : "install unchanged for"
                return AgentReply(data: .symbols(["output": .string("\(what) \(path)")]))
            } catch {
                return .failure(4, "install failed for \(path) \(error)")
            }
        case "erase":
            let vendor = inputs.string("cartridge_vendor").isEmpty ? "redhat" : inputs.string("cartridge_vendor")
            let (name, version, cartridgeVersion) = (inputs.string("name"), inputs.string("version"), inputs.string("cartridge_version"))
            let tuple = "(\(vendor), \(name), \(version), \(cartridgeVersion))"
            guard !name.isEmpty, !version.isEmpty, !cartridgeVersion.isEmpty else {
                return .failure(4, "erase failed for \(tuple) name, version and cartridge_version are required")
            }
            do {
                try repository.erase(vendor: vendor, name: name, version: version, cartridgeVersion: cartridgeVersion,
                                     force: inputs.string("force") == "true", usage: context.gears)
                return AgentReply(data: .symbols(["output": .string("erase succeeded for \(tuple)")]))
            } catch {
                return .failure(4, "erase failed for \(tuple) \(error)")
            }
        case "rescan":
            let report = repository.rescan()
            var lines = report.items.map { item -> String in
                switch item.outcome {
                case .installed(let tuples): return "installed \(item.source): " + tuples.joined(separator: " ")
                case .unchanged(let tuples): return "unchanged \(item.source): " + tuples.joined(separator: " ")
                case .failed(let reason): return "failed \(item.source): " + reason
                }
            }
            lines.append(report.summary)
            if let problem = report.basePathProblem { return .failure(4, "rescan failed for \(report.basePath) \(problem)") }
            return AgentReply(statuscode: report.failed > 0 ? 1 : 0, statusmsg: report.failed > 0 ? "rescan: \(report.failed) failed" : "OK",
                              data: .symbols(["output": .string(lines.joined(separator: "\n") + "\n")]))
        default:
            return .failure(2, "Unknown cartridge_repository action '\(action)'")
        }
    }
}
