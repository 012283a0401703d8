#!/usr/bin/env python3
"""A minimal WebSocket echo server for the frontend tests (stdlib only).

Usage: ws_echo.py IP PORT. Answers the upgrade handshake, then echoes text frames.
Plain HTTP requests get "plain\n".
"""
import base64
import hashlib
import socketserver
import sys

MAGIC = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.strip().lower()] = value.strip()
        key = headers.get(b"sec-websocket-key")
        if headers.get(b"upgrade", b"").lower() != b"websocket" or key is None:
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nplain\n")
            return
        accept = base64.b64encode(hashlib.sha1(key + MAGIC.encode()).digest())
        self.request.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        while True:
            header = self.rfile.read(2)
            if len(header) < 2:
                return
            length = header[1] & 0x7F
            mask = self.rfile.read(4) if header[1] & 0x80 else b"\0\0\0\0"
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if header[0] & 0x0F == 8:
                return
            self.request.sendall(bytes([0x81, len(payload)]) + payload)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
