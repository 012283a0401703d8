import Testing

@testable import NodeConfig

#if canImport(Glibc)
import Glibc
#endif

@Suite("program text")
struct ProgramTextTests {
    @Test("only the executable's read+execute mappings are chosen: never its data, relocated or writable, nor a library's")
    func codeRanges() {
        let maps = """
            55bf59a3d000-55bf5b1ca000 r--p 00000000 fe:00 1234   /usr/libexec/openshift-node/openshift-node
            55bf5b1ca000-55bf5c8ac000 r-xp 0178d000 fe:00 1234   /usr/libexec/openshift-node/openshift-node
            55bf5c8ac000-55bf5c946000 r--p 02e6f000 fe:00 1234   /usr/libexec/openshift-node/openshift-node
            55bf5c946000-55bf5c9a3000 rw-p 02f09000 fe:00 1234   /usr/libexec/openshift-node/openshift-node
            55bf5c9a3000-55bf5c9c0000 rw-p 00000000 00:00 0
            7f1c2a228000-7f1c2a3bd000 r-xp 00028000 fe:00 99     /usr/lib/x86_64-linux-gnu/libc.so.6
            7f1c2a400000-7f1c2a500000 r-xp 00000000 fe:00 77     /usr/libexec/openshift-node/openshift-node-other
            7ffd3a9f0000-7ffd3a9f2000 r-xp 00000000 00:00 0      [vdso]
            """
        let ranges = ProgramText.codeRanges(maps: maps, executable: "/usr/libexec/openshift-node/openshift-node")
        #expect(ranges == [0x55bf5b1ca000..<0x55bf5c8ac000])
        #expect(ProgramText.codeRanges(maps: maps, executable: "/nowhere").isEmpty)
        // A path with spaces (and a replaced executable, which the kernel marks " (deleted)").
        let spaced = "400000-500000 r-xp 00000000 fe:00 1 /opt/my node/openshift-node (deleted)\n"
        #expect(ProgramText.codeRanges(maps: spaced, executable: "/opt/my node/openshift-node (deleted)") == [0x400000..<0x500000])
    }

    @Test("released, this process's code is no longer resident, and it runs on: the pages come back as they are used")
    func release() throws {
        func residentCodeKB() -> Int {
            // The Rss of the test executable's r-xp mappings, from smaps.
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
            let executable = String(decoding: buffer[0..<max(length, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var inCode = false
            var total = 0
            for line in (FileSystem.read("/proc/self/smaps") ?? "").split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count >= 5, fields[0].contains("-"), !fields[0].hasSuffix(":") {
                    inCode = fields[1] == "r-xp" && line.hasSuffix(executable)
                } else if inCode, fields.first == "Rss:", fields.count >= 2 {
                    total += Int(fields[1]) ?? 0
                }
            }
            return total
        }
        let before = residentCodeKB()
        let advised = try #require(ProgramText.release(), "MADV_PAGEOUT of the executable's code")
        let after = residentCodeKB()
        #expect(advised > 0)
        #expect(after < before, "resident code: \(before) kB before, \(after) kB after")
        // Still working: code paged out is faulted back in.
        #expect(ProgramText.codeRanges(maps: "", executable: "x").isEmpty)
    }
}
