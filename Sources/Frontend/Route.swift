/// A host name the frontend serves: cleaned as the original did (lower-case, one trailing dot
/// dropped, `[a-z0-9.-]`, starting and ending with a letter or digit, at most 255, no IP
/// address), plus what the original missed: no empty label and labels of at most 63.
public enum HostName {
    public static func clean(_ raw: String, field: String = "host name") throws(FrontendError) -> String {
        var name = raw.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        func fail(_ reason: String) -> FrontendError { .invalidName(field: field, value: raw, reason: reason) }
        let bytes = Array(name.utf8)
        guard let first = bytes.first, let last = bytes.last else { throw fail("Name was blank") }
        func alnum(_ c: UInt8) -> Bool { (c >= 97 && c <= 122) || (c >= 48 && c <= 57) }
        guard alnum(first) else { throw fail("Invalid start character") }
        guard alnum(last) else { throw fail("Invalid end character") }
        guard bytes.allSatisfy({ alnum($0) || $0 == 46 || $0 == 45 }) else { throw fail("Invalid characters") }
        guard bytes.count <= 255 else { throw fail("Too long") }
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 63 }) else { throw fail("Empty label or label longer than 63") }
        if labels.count == 4 && labels.allSatisfy({ $0.allSatisfy(\.isNumber) }) { throw fail("IP addresses are not allowed") }
        return name
    }
}

/// Where a path of a gear's host name goes.
public struct Connection: Sendable, Codable, Equatable, Hashable {
    /// `""` for the root, else `/seg[/seg...]`.
    public var path: String
    /// `ip:port[/path]` for a proxy; a path or URL for `redirect`/`file`.
    public var target: String
    public var options: Options

    public struct Options: Sendable, Codable, Equatable, Hashable {
        public var websocket = false
        public var gone = false
        public var forbidden = false
        public var noproxy = false
        public var health = false
        public var redirect = false
        public var file = false
        public var tohttps = false
        public var sslToGear = false
        public var protocols: [String] = ["http"]

        public init() {}

        enum CodingKeys: String, CodingKey {
            case websocket, gone, forbidden, noproxy, health, redirect, file, tohttps, protocols
            case sslToGear = "ssl_to_gear"
        }

        /// The flags by the original's option names, in its order.
        public static let flagNames = ["websocket", "gone", "forbidden", "noproxy", "health", "redirect", "file", "tohttps", "ssl_to_gear"]

        /// Sets a flag by its option name; false when there is no such option.
        @discardableResult
        public mutating func set(_ name: String, _ on: Bool = true) -> Bool {
            switch name {
            case "websocket": websocket = on
            case "gone": gone = on
            case "forbidden": forbidden = on
            case "noproxy": noproxy = on
            case "health": health = on
            case "redirect": redirect = on
            case "file": file = on
            case "tohttps": tohttps = on
            case "ssl_to_gear": sslToGear = on
            default: return false
            }
            return true
        }

        /// Whether the named flag is set (false for an unknown name).
        public func isSet(_ name: String) -> Bool {
            var probe = self
            guard probe.set(name, false) else { return false }
            return probe != self
        }
    }

    public init(path: String, target: String, options: Options = .init()) {
        self.path = path
        self.target = target
        self.options = options
    }

    /// The deepest path a route may have: deeper paths are refused, never silently unreachable.
    public static let maximumDepth = 8

    /// Checks the path and, for proxied routes, that the target is in `allowedIPs`.
    public func validate(allowedIPs: Set<String>?) throws(FrontendError) {
        if !path.isEmpty {
            guard path.hasPrefix("/"), !path.hasSuffix("/") else {
                throw .invalidConnection(field: "path", value: path, reason: "expected \"\" or /segment[/segment...] without a trailing slash")
            }
            let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
            guard segments.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
                throw .invalidConnection(field: "path", value: path, reason: "empty, '.' or '..' segments are not allowed")
            }
            guard segments.count <= Self.maximumDepth else {
                throw .invalidConnection(field: "path", value: path, reason: "at most \(Self.maximumDepth) segments are routed")
            }
        }
        for (field, value) in [("path", path), ("target", target)] where value.unicodeScalars.contains(where: {
            $0.value <= 0x20 || $0.value == 0x7f || $0 == "|" || $0 == "\\" || $0 == "$" || $0 == "%"
        }) {
            throw .invalidConnection(field: field, value: value, reason: "spaces, control characters, |, \\, $ and % are not allowed")
        }
        if target.contains("..") { throw .invalidConnection(field: "target", value: target, reason: "'..' is not allowed") }
        if isProxy {
            let hostPort = target.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
            let parts = hostPort.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]), (1...65535).contains(port),
                  parts[0].split(separator: ".").count == 4, parts[0].split(separator: ".").allSatisfy({ UInt8($0) != nil }) else {
                throw .invalidConnection(field: "target", value: target, reason: "expected ip:port[/path]")
            }
            if let allowedIPs, !allowedIPs.contains(String(parts[0])) {
                throw .invalidConnection(field: "target", value: target, reason: "not in the gear's own IP range")
            }
        }
    }

    /// Whether requests are proxied to the target (rather than answered by the frontend).
    public var isProxy: Bool {
        !(options.gone || options.forbidden || options.noproxy || options.health || options.redirect || options.file)
    }

    /// The map value: `ip:port[/path]`, or a keyword with its target, in the original's precedence.
    public var destination: String {
        if options.gone { return "GONE" }
        if options.forbidden { return "FORBIDDEN" }
        if options.noproxy { return "NOPROXY" }
        if options.health { return "HEALTH" }
        if options.redirect { return "REDIRECT:" + target }
        if options.file { return "FILE:" + target }
        if options.sslToGear { return "SSL_TO_GEAR:" + target }
        if options.tohttps { return "TOHTTPS:" + target }
        return target
    }
}

/// Everything the frontend knows about one gear; stored as one JSON document per gear.
public struct GearFrontend: Sendable, Codable, Equatable {
    public var uuid: String
    public var appUUID: String
    public var fqdn: String
    public var connections: [Connection] = []
    public var aliases: [String] = []
    public var idle = false
    public var sts: Int?
    /// Aliases with an SSL certificate (the files live in the frontend's certificate store).
    public var sslAliases: [String] = []
    /// A fingerprint of each alias's installed certificate and key: a replaced certificate is a
    /// change that plugins must load.
    public var certificates: [String: String] = [:]

    public init(uuid: String, appUUID: String, fqdn: String) {
        self.uuid = uuid
        self.appUUID = appUUID
        self.fqdn = fqdn
    }

    enum CodingKeys: String, CodingKey {
        case uuid, fqdn, connections, aliases, idle, sts, certificates
        case appUUID = "app_uuid"
        case sslAliases = "ssl_aliases"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        uuid = try c.decode(String.self, forKey: .uuid)
        appUUID = try c.decode(String.self, forKey: .appUUID)
        fqdn = try c.decode(String.self, forKey: .fqdn)
        connections = try c.decodeIfPresent([Connection].self, forKey: .connections) ?? []
        aliases = try c.decodeIfPresent([String].self, forKey: .aliases) ?? []
        idle = try c.decodeIfPresent(Bool.self, forKey: .idle) ?? false
        sts = try c.decodeIfPresent(Int.self, forKey: .sts)
        sslAliases = try c.decodeIfPresent([String].self, forKey: .sslAliases) ?? []
        certificates = try c.decodeIfPresent([String: String].self, forKey: .certificates) ?? [:]
    }
}
