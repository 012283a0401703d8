/// Hostile YAML: what once grew a process to 14.7 GB or overflowed its stack.
public enum HostileYAML {
    /// "Billion laughs": nine anchored lists of nine, each repeating the previous one, 9^9
    /// strings once expanded from under 400 bytes.
    public static let aliasBomb: String = {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        var text = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
        for (previous, name) in zip(names, names.dropFirst()) {
            text += "\(name): &\(name) [" + Array(repeating: "*\(previous)", count: 9).joined(separator: ",") + "]\n"
        }
        return text
    }()

    /// 100,000 nested flow sequences: 200 KB that once crashed every rescan with SIGSEGV.
    public static let deepFlow = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
}
