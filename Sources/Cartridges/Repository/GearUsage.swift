/// Which cartridge versions the gears of this node use.
///
/// A gear records each cartridge it runs as `<gear home>/<cartridge dir>/env/OPENSHIFT_<SHORT>_IDENT`
/// holding `vendor:name:software version:cartridge version`. Gear homes are the non-hidden
/// directories of `GEAR_BASE_DIR`.
public struct GearUsage: Sendable {
    public struct Use: Sendable, Equatable {
        public var gear: String
        public var ident: String
    }

    public let gearBaseDir: String

    public init(gearBaseDir: String) { self.gearBaseDir = gearBaseDir }

    /// Gears using `(vendor, name, *, cartridgeVersion)`.
    public func gears(using vendor: String, name: String, cartridgeVersion: String) -> [Use] {
        var uses: [Use] = []
        for gear in (try? Posix.listDirectory(gearBaseDir)) ?? [] where !gear.hasPrefix(".") {
            let home = gearBaseDir + "/" + gear
            guard Posix.isDirectory(home, followLinks: false) else { continue }
            for cartridge in (try? Posix.listDirectory(home)) ?? [] {
                let env = home + "/" + cartridge + "/env"
                guard Posix.isDirectory(env, followLinks: false) else { continue }
                for file in (try? Posix.listDirectory(env)) ?? [] where file.hasPrefix("OPENSHIFT_") && file.hasSuffix("_IDENT") {
                    guard let text = try? Posix.readText(env + "/" + file) else { continue }
                    let ident = text.trimmingCharacters(in: [" ", "\n", "\r", "\t"])
                    let parts = ident.split(separator: ":", omittingEmptySubsequences: false)
                    if parts.count == 4, parts[0] == vendor, parts[1] == name, parts[3] == cartridgeVersion {
                        uses.append(Use(gear: gear, ident: ident))
                    }
                }
            }
        }
        return uses
    }
}

extension String {
    func trimmingCharacters(in set: Set<Character>) -> String {
        String(drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
    }
}
