import NodeConfig
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Unix socket addresses")
struct UnixAddressTests {
    @Test("a path is NUL-terminated; an @name is abstract, with its exact length; empty or too long is refused")
    func addresses() throws {
        let family = MemoryLayout<sa_family_t>.size
        let path = try #require(UnixAddress("/run/notify"))
        #expect(path.length == socklen_t(family + 12))
        let abstract = try #require(UnixAddress("@/org/freedesktop/systemd1/notify"))
        #expect(abstract.length == socklen_t(family + 33))
        let first = withUnsafeBytes(of: abstract.storage.sun_path) { $0[0] }
        #expect(first == 0, "an abstract name starts with a NUL byte")
        #expect(UnixAddress("") == nil)
        #expect(UnixAddress(String(repeating: "a", count: UnixAddress.capacity)) != nil)
        #expect(UnixAddress(String(repeating: "a", count: UnixAddress.capacity + 1)) == nil)
    }
}
