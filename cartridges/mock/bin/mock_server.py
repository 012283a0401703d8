#!/usr/bin/env python3
"""The mock cartridge's server: answers every GET with `mock cartridge`. Usage: IP PORT [READY_FILE]
Once it listens it writes READY_FILE; if it cannot bind it exits with the reason on stderr."""
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"mock cartridge\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


try:
    server = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
except OSError as error:
    sys.exit(f"cannot listen on {sys.argv[1]}:{sys.argv[2]}: {error.strerror}")
if len(sys.argv) > 3:
    with open(sys.argv[3], "w") as ready:
        ready.write("listening\n")
server.serve_forever()
