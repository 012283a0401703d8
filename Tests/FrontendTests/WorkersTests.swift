import Testing

@testable import Frontend

/// `workers.conf` is written from routes that documents (and so gears' requests) shaped: only
/// an address and a port may reach Apache's configuration.
@Suite("pooled workers")
struct WorkersTests {
    @Test("proxied destinations become one worker per address and port; anything else is left out")
    func workerLines() {
        let routes = [
            "app-ns.example.com 127.1.2.3:8080|a|g",
            "app-ns.example.com/sub 127.1.2.3:8080/deep|a|g",
            "app-ns.example.com/secure TOHTTPS:127.1.2.4:8443|a|g",
            "b-ns.example.com GONE|b|h",
            "b-ns.example.com/f FILE:/var/www/x|b|h",
            "b-ns.example.com/r REDIRECT:https://elsewhere|b|h",
            "c-ns.example.com 127.0.0.1:80\">\n</Proxy>\nInclude /etc/shadow|c|i",
            "c-ns.example.com/x 127.0.0.1:99999|c|i",
            "c-ns.example.com/y 300.0.0.1:80|c|i",
            "c-ns.example.com/z 127.0.0:80|c|i",
            "c-ns.example.com/w 127.0.0.1:80x|c|i",
            "c-ns.example.com/v SSL_TO_GEAR:127.1.2.5:8443|c|i",
            "garbage",
        ]
        let text = ApacheFrontend.workersText(routes: routes)
        let declared = text.split(separator: "\n").filter { $0.hasPrefix("<Proxy ") }
        #expect(declared == ["<Proxy \"http://127.1.2.3:8080\">", "<Proxy \"http://127.1.2.4:8443\">"])
        #expect(!text.contains("shadow") && !text.contains("99999") && !text.contains("300.") && !text.contains(":80x"))
        #expect(text.components(separatedBy: "</Proxy>").count == 3, "every block is closed")
    }
}
