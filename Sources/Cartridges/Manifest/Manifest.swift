/// A cartridge manifest projected onto one software version.
///
/// `ManifestDocument.parse` validates a `metadata/manifest.yml` once and builds one `Manifest`
/// per software version: the top-level map with that version's `Version-Overrides` block
/// merged over it (shallowly, as the original did) and `Version` set to the version.
public struct Manifest: Sendable, Equatable {
    /// The projected map, in file order; `Version` is this projection's software version.
    public let map: ManifestMap
    public let vendor: String
    public let name: String
    /// Upper-cased `Cartridge-Short-Name`, the prefix of the cartridge's `OPENSHIFT_*` variables.
    public let shortName: String
    /// The software version of this projection.
    public let version: CartridgeVersion
    /// Every software version of the manifest, `Versions` then `Version`, without duplicates.
    public let versions: [CartridgeVersion]
    /// The manifest's own `Version`: what a gear gets when no software version is asked for.
    public let defaultVersion: CartridgeVersion
    public let cartridgeVersion: CartridgeVersion
    public let compatibleVersions: [CartridgeVersion]
    public let categories: [String]
    public let endpoints: [Endpoint]
    public let installBuildRequired: Bool
    public let sourceURL: String?
    public let sourceMD5: String?
    /// The manifest file this came from.
    public let path: String

    public var displayName: String? { map["Display-Name"]?.string }
    public var isWebFramework: Bool { categories.contains("web_framework") }
    public var isWebProxy: Bool { categories.contains("web_proxy") }
    public var publicEndpoints: [Endpoint] { endpoints.filter { $0.publicPortName != nil } }

    /// `<vendor>:<name>:<software version>:<cartridge version>`, what gears record.
    public var ident: String { "\(vendor):\(name):\(version):\(cartridgeVersion)" }
    /// The repository directory of this cartridge, relative to the repository root.
    public var repositoryDirectory: String { "\(vendor)-\(name)/\(cartridgeVersion)" }
    /// The directory a gear keeps its copy of the cartridge in.
    public var gearDirectory: String { name.lowercased() }
    /// The listing line, exactly as the original printed it.
    public var tuple: String { "(\(vendor), \(name), \(version), \(cartridgeVersion))" }
}

/// A parsed and validated manifest file with its projections.
public struct ManifestDocument: Sendable {
    /// The projection for the manifest's own `Version` (the original's unprojected manifest).
    public let primary: Manifest
    /// One projection per software version, in ascending version order.
    public let projections: [Manifest]

    public var vendor: String { primary.vendor }
    public var name: String { primary.name }
    public var cartridgeVersion: CartridgeVersion { primary.cartridgeVersion }

    public static let systemCategories = ["web_framework", "plugin", "service", "embedded", "web_proxy", "ci_builder", "external"]
    public static let reservedNames: Set<String> = ["app-root", "git"]
    public static let maximumNameLength = 32
    /// Overrides may not change what the repository indexes by.
    static let identityFields = ["Name", "Cartridge-Vendor", "Cartridge-Version", "Version"]

    /// Parses and validates manifest text. `path` is used in error messages.
    /// `fromURL` marks a manifest supplied as text by a broker (requires `Source-Url`).
    public static func parse(yaml: String, path: String, fromURL: Bool = false) throws(CartridgesError) -> ManifestDocument {
        try parse(map: try topMap(yaml: yaml, path: path), path: path, fromURL: fromURL)
    }

    /// The manifest's fields as written, before validation: what the repository's index keeps.
    static func topMap(yaml: String, path: String) throws(CartridgesError) -> ManifestMap {
        let value: ManifestValue
        do {
            value = try ManifestValue.parse(yaml: yaml)
        } catch let error as YAMLLimitError {
            throw .manifestOverLimit(path: path, reason: error.description)
        } catch {
            throw .unparsableManifest(path: path, reason: oneLine("\(error)"))
        }
        guard let map = value.map else {
            throw .invalidManifest(path: path, element: "manifest", reason: "manifest is not a mapping of fields")
        }
        return map
    }

    public static func parse(map top: ManifestMap, path: String, fromURL: Bool = false) throws(CartridgesError) -> ManifestDocument {
        func invalid(_ element: String, _ reason: String? = nil) -> CartridgesError {
            .invalidManifest(path: path, element: element, reason: reason ?? "\(element) is not valid")
        }
        func missing(_ element: String) -> CartridgesError {
            .invalidManifest(path: path, element: element, reason: "\(element) is a required element")
        }
        func version(_ element: String, _ value: ManifestValue?) throws(CartridgesError) -> CartridgeVersion {
            guard let text = value?.string else { throw invalid(element) }
            guard let parsed = CartridgeVersion(text) else {
                throw invalid(element, "\(element) '\(printable(text))' is not a valid version (expected digits separated by dots, like 1.10)")
            }
            return parsed
        }

        // The original's order: Version, Versions, Compatible-Versions, then the version values.
        guard let versionValue = top["Version"], versionValue != .null else { throw missing("Version") }
        if let v = top["Versions"], v != .null, v.list == nil { throw invalid("Versions") }
        if let v = top["Compatible-Versions"], v != .null, v.list == nil { throw invalid("Compatible-Versions") }

        var versions: [CartridgeVersion] = []
        for item in top["Versions"]?.list ?? [] {
            let v = try version("Versions", item)
            if !versions.contains(v) { versions.append(v) }
        }
        let defaultVersion = try version("Version", versionValue)
        if !versions.contains(defaultVersion) { versions.append(defaultVersion) }
        guard let cvValue = top["Cartridge-Version"], cvValue != .null else { throw missing("Cartridge-Version") }
        let cartridgeVersion = try version("Cartridge-Version", cvValue)
        var compatible: [CartridgeVersion] = []
        for item in top["Compatible-Versions"]?.list ?? [] { compatible.append(try version("Compatible-Versions", item)) }

        // Overrides: a map of software version -> map, never touching identity fields.
        var overrides: [String: ManifestMap] = [:]
        if let value = top["Version-Overrides"], value != .null {
            guard let map = value.map else { throw invalid("Version-Overrides") }
            for (key, block) in map {
                guard CartridgeVersion(key) != nil else {
                    throw invalid("Version-Overrides", "Version-Overrides key '\(printable(key))' is not a valid version")
                }
                guard let blockMap = block.map else {
                    throw invalid("Version-Overrides", "Version-Overrides for '\(key)' is not a mapping")
                }
                for field in identityFields where blockMap[field] != nil {
                    throw invalid("Version-Overrides", "Version-Overrides for '\(key)' may not change \(field)")
                }
                overrides[key] = blockMap
            }
        }

        var projections: [Manifest] = []
        var primary: Manifest?
        for softwareVersion in versions.sorted() {
            var map = top
            for (key, value) in overrides[softwareVersion.text] ?? ManifestMap() { map[key] = value }
            map["Version"] = .scalar(softwareVersion.text, quoted: true)
            let projection = try project(map, version: softwareVersion, versions: versions, defaultVersion: defaultVersion,
                                         cartridgeVersion: cartridgeVersion,
                                         compatible: compatible, path: path, fromURL: fromURL)
            projections.append(projection)
            if softwareVersion == defaultVersion { primary = projection }
        }
        return ManifestDocument(primary: primary!, projections: projections)
    }

    private static func project(
        _ map: ManifestMap, version: CartridgeVersion, versions: [CartridgeVersion], defaultVersion: CartridgeVersion,
        cartridgeVersion: CartridgeVersion,
        compatible: [CartridgeVersion], path: String, fromURL: Bool
    ) throws(CartridgesError) -> Manifest {
        func invalid(_ element: String, _ reason: String) -> CartridgesError {
            .invalidManifest(path: path, element: element, reason: reason)
        }
        let categories = map["Categories"]?.stringList ?? []

        if let scaling = map["Scaling"]?.map {
            let minimum = scaling["Min"].map { $0.integer } ?? 1
            let maximum = scaling["Max"].map { $0.integer } ?? -1
            guard let minimum, let maximum else { throw invalid("Scaling", "Scaling 'Min' and 'Max' must be integers") }
            if categories.contains("external") {
                if minimum != 0 || maximum != 0 {
                    throw invalid("Scaling", "Scaling should either not be specified or have 0 for 'Min' and 'Max' in case of an 'external' cartridge.")
                }
            } else if minimum == 0 || maximum == 0 {
                throw invalid("Scaling", "Scaling 'Min' and 'Max' cannot be 0 unless its an 'external' cartridge.")
            }
        }

        guard let short = map["Cartridge-Short-Name"]?.string, !short.isEmpty else {
            throw invalid("Cartridge-Short-Name", "Cartridge-Short-Name is a required element")
        }
        guard !short.contains("-"), short.utf8.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "_") }) else {
            throw invalid("Cartridge-Short-Name", "Cartridge-Short-Name is not valid")
        }
        guard let name = map["Name"]?.string, !name.isEmpty else { throw invalid("Name", "Name is a required element") }
        let vendor = map["Cartridge-Vendor"]?.string ?? ""
        if let problem = vendorProblem(vendor) { throw invalid("Cartridge-Vendor", problem) }
        if let problem = nameProblem(name) { throw invalid("Name", problem) }

        var sourceURL: String?
        if let url = map["Source-Url"], url != .null {
            guard let text = url.string, isAbsoluteURI(text) else { throw invalid("Source-Url", "Source-Url is not valid") }
            sourceURL = text
        } else if fromURL && !categories.contains("external") {
            throw invalid("Source-Url", "Source-Url is required in manifest to obtain cartridge via URL")
        }

        let tag = short.uppercased()
        let endpoints: [Endpoint]
        switch Endpoint.parse(map["Endpoints"], shortName: tag) {
        case .success(let list): endpoints = list
        case .failure(let problem): throw invalid("Endpoints", problem.message)
        }
        var projected = map
        projected["Cartridge-Short-Name"] = .scalar(tag, quoted: false)
        return Manifest(
            map: projected, vendor: vendor, name: name, shortName: tag, version: version, versions: versions,
            defaultVersion: defaultVersion,
            cartridgeVersion: cartridgeVersion, compatibleVersions: compatible, categories: categories,
            endpoints: endpoints, installBuildRequired: map["Install-Build-Required"]?.boolean ?? false,
            sourceURL: sourceURL, sourceMD5: map["Source-Md5"]?.string, path: path)
    }

    /// The original's vendor rule and message; nil when the vendor is acceptable.
    public static func vendorProblem(_ vendor: String) -> String? {
        if !matchesIdentifier(vendor, allowHyphenAndDot: false) {
            return "Cartridge-Vendor '\(printable(vendor))' does not match pattern /\\A[a-z0-9](?:[a-z0-9_]*[a-z0-9]|)\\z/."
        }
        if vendor.utf8.count > maximumNameLength {
            return "Cartridge-Vendor '\(vendor)' must be no longer than \(maximumNameLength) characters."
        }
        return nil
    }

    /// The original's name rules and messages; nil when the name is acceptable.
    public static func nameProblem(_ name: String) -> String? {
        if name.isEmpty { return "Name is a required element" }
        if !matchesIdentifier(name, allowHyphenAndDot: true) {
            return "Name '\(printable(name))' does not match pattern /\\A[a-z0-9](?:[-\\.a-z0-9_]*[a-z0-9]|)\\z/."
        }
        if name.utf8.count > maximumNameLength { return "Name '\(name)' must be no longer than \(maximumNameLength) characters." }
        if reservedNames.contains(name) { return "Name '\(name)' is reserved." }
        return nil
    }

    /// `[a-z0-9]([a-z0-9_]*[a-z0-9])?`, with `-` and `.` also allowed inside names.
    static func matchesIdentifier(_ text: String, allowHyphenAndDot: Bool) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, let last = bytes.last, isLowerAlnum(first), isLowerAlnum(last) else { return false }
        return bytes.allSatisfy {
            isLowerAlnum($0) || $0 == UInt8(ascii: "_") || (allowHyphenAndDot && ($0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")))
        }
    }

    /// `scheme:rest` with a non-empty remainder and no white space (RFC 2396 absolute URI shape).
    static func isAbsoluteURI(_ text: String) -> Bool {
        guard let colon = text.firstIndex(of: ":") else { return false }
        let scheme = text[..<colon].utf8
        guard let first = scheme.first, isAlpha(first),
              scheme.allSatisfy({ isAlnum($0) || $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") })
        else { return false }
        let rest = text[text.index(after: colon)...]
        return !rest.isEmpty && !rest.unicodeScalars.contains { $0.properties.isWhitespace || $0.value < 0x20 }
    }
}

func isLowerAlnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
func isAlpha(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 65 && c <= 90) }
func isAlnum(_ c: UInt8) -> Bool { isAlpha(c) || (c >= 48 && c <= 57) }

func oneLine(_ text: String) -> String {
    text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map(String.init).joined(separator: " ")
}
