"""A backend that answers each request with its own request line and X-/Host headers, byte for
byte: what a gear receives. Usage: request_echo.py ADDRESS PORT"""
import socket
import sys

listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(64)
while True:
    connection, _ = listener.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    lines = data.split(b"\r\n")
    headers = [line for line in lines[1:] if line.lower().startswith((b"x-", b"host:"))]
    body = b"\n".join([lines[0]] + headers) + b"\n"
    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    connection.close()
