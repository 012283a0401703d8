"""A keep-alive backend that answers each request with the number of the connection it came on
(1 for the first connection accepted, and so on): how many connections a proxy opened.
Usage: connection_count.py ADDRESS PORT"""
import itertools
import socket
import sys
import threading

counter = itertools.count(1)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], int(sys.argv[2])))
listener.listen(64)


def serve(connection, number):
    data = b""
    with connection:
        while True:
            while b"\r\n\r\n" not in data:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                data += chunk
            _, data = data.split(b"\r\n\r\n", 1)
            body = b"connection %d\n" % number
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


while True:
    connection, _ = listener.accept()
    threading.Thread(target=serve, args=(connection, next(counter)), daemon=True).start()
