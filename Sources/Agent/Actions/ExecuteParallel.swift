extension OpenShiftAgent {
    /// `execute_parallel`: runs this node's jobs (the request is keyed by node identity)
    /// concurrently on the pool, each with its own deadline, and returns the job list with
    /// `result_exit_code`, `result_stdout` and `result_addtl_params` filled in.
    ///
    /// The original ran the jobs one after another under one shared budget and skipped the DDL
    /// checks for them; here a job's action and cartridge are checked exactly as a direct
    /// `cartridge_do`'s.
    func executeParallel(_ data: AgentValue) async -> AgentReply {
        let jobs = data[context.identity]?.array ?? []
        let results = await withTaskGroup(of: (Int, CartridgeDoResult).self) { group in
            for (index, job) in jobs.enumerated() {
                let spec = job["job"] ?? .null
                let request = AgentValue.symbols([
                    "cartridge": spec["cartridge"] ?? .null, "action": spec["action"] ?? .null, "args": spec["args"] ?? .null,
                ])
                group.addTask { [self] in
                    if case .failure(let failure) = validator.validate(action: "cartridge_do", data: request) {
                        return (index, CartridgeDoResult(exitcode: 4, output: failure.message))
                    }
                    let action = spec["action"]?.string ?? ""
                    let cartridge = spec["cartridge"]?.string ?? ""
                    let gear = Self.gearName(spec["args"])
                    let result = await self.runAction(gear: gear, { self.runSubAction(action, cartridge: cartridge, args: spec["args"]) },
                                                      refused: { admitted in
                        CartridgeDoResult(exitcode: 1, output: "gear \(gear ?? "") already has \(admitted) requests running or waiting; try again later")
                    }, timedOut: { [budgetSeconds = self.budgetSeconds] in
                        CartridgeDoResult(exitcode: 1, output: "\(action) did not finish within \(Int(budgetSeconds)) s: it was stopped")
                    })
                    return (index, result)
                }
            }
            var results = [CartridgeDoResult?](repeating: nil, count: jobs.count)
            for await (index, result) in group { results[index] = result }
            return results
        }
        let filled: [AgentValue] = jobs.enumerated().map { index, job in
            let result = results[index] ?? CartridgeDoResult(exitcode: 1, output: "not run")
            var pairs = job.pairs ?? []
            for (key, value) in [("result_exit_code", AgentValue.int(result.exitcode)), ("result_stdout", .string(result.output)),
                                 ("result_addtl_params", result.addtlParams)] {
                if let at = pairs.firstIndex(where: { $0.key.string == key }) { pairs[at].value = value } else { pairs.append(.init(.symbol(key), value)) }
            }
            return .hash(pairs)
        }
        return output(.array(filled))
    }
}
