#!/usr/bin/env python3
"""The python cartridge's server: the repository's WSGI app, or a plain answer.

Usage: serve.py IP PORT REPO_DIR
Loads `application` from REPO_DIR/wsgi.py when that file exists; otherwise answers every
request with a short text, so a new gear shows that it is alive.
"""
import importlib.util
import os
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))


def default_application(environ, start_response):
    body = b"Hello from python cartridge\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def load_application(repo_dir):
    path = os.path.join(repo_dir, "wsgi.py")
    if not os.path.isfile(path):
        return default_application
    sys.path.insert(0, repo_dir)
    spec = importlib.util.spec_from_file_location("wsgi", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "application")


def main():
    if len(sys.argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    ip, port, repo_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = make_server(ip, port, load_application(repo_dir),
                         server_class=ThreadingWSGIServer, handler_class=QuietHandler)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
