#!/usr/bin/env python3
"""The python cartridge's server: the repository's WSGI app, or a plain answer.

Usage: serve.py [--pid-file FILE] [--control-socket PATH [--takeover]] [--status-file FILE] [--] IP PORT REPO_DIR

Loads `application` from REPO_DIR/wsgi.py when that file exists (REPO_DIR is resolved to its
real path once, at start); otherwise answers every request with a short text, so a new gear
shows that it is alive.

--control-socket PATH: keep a Unix socket (mode 0600) at PATH through which a newer server can
    take over the listening socket, for restarts that refuse no connection.
--takeover: instead of binding IP:PORT, ask the server listening on --control-socket for its
    listening socket (SCM_RIGHTS), load the application, start serving, then tell the old server
    to stop accepting, finish its requests and exit. If the application does not load, exit 1
    and leave the old server serving. The reason of a failure goes to --status-file.
--pid-file FILE: written (atomically) with this process's pid once it serves.
"""
import errno
import importlib.util
import contextlib
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

DRAIN_SECONDS = 10
HANDOVER_SECONDS = 20


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, *args, **kwargs):
        self.in_flight = 0
        self.in_flight_changed = threading.Condition()
        super().__init__(*args, **kwargs)

    def server_bind(self):
        # As HTTPServer/WSGIServer, without a (possibly slow) reverse DNS look-up.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.adopt_listener()

    def adopt_listener(self):
        self.server_address = self.socket.getsockname()
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port
        self.setup_environ()

    def process_request(self, request, client_address):
        with self.in_flight_changed:
            self.in_flight += 1
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.request_done()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.request_done()

    def request_done(self):
        with self.in_flight_changed:
            self.in_flight -= 1
            self.in_flight_changed.notify_all()

    def drain(self, seconds):
        """Waits (at most `seconds`) until no request is being handled."""
        deadline = time.monotonic() + seconds
        with self.in_flight_changed:
            while self.in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.in_flight_changed.wait(left)
        return True


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
    sys.modules["wsgi"] = module
    spec.loader.exec_module(module)
    application = getattr(module, "application", None)
    if not callable(application):
        raise RuntimeError("%s defines no callable `application`" % path)
    return application


def log(message):
    sys.stderr.write("serve.py[%d]: %s\n" % (os.getpid(), message))
    sys.stderr.flush()


def write_atomically(path, text):
    if not path:
        return
    temporary = "%s.%d.tmp" % (path, os.getpid())
    with open(temporary, "w") as f:
        f.write(text)
    os.rename(temporary, path)


@contextlib.contextmanager
def short_path(path):
    """A name for `path` that fits a Unix socket address (108 bytes): through /proc/self/fd and a
    descriptor of its directory, so deep gear homes work too."""
    directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield "/proc/self/fd/%d/%s" % (directory, os.path.basename(path))
    finally:
        os.close(directory)


def recv_line(connection, timeout):
    connection.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = connection.recv(64)
        if not chunk:
            break
        data += chunk
    return data.strip()


class Server:
    def __init__(self, options):
        self.options = options
        self.http = None
        self.control = None
        self.control_inode = None
        self.handed_over = False
        self.stopping = threading.Event()
        self.stop_lock = threading.Lock()
        self.accepting = False

    # -- control socket -------------------------------------------------------------------------

    def open_control_socket(self):
        """Binds a fresh control socket and renames it over the path (atomic for clients)."""
        path = self.options["control_socket"]
        if not path:
            return
        temporary = "%s.%d" % (path, os.getpid())
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            with short_path(temporary) as short:
                control.bind(short)
        finally:
            os.umask(old_umask)
        os.chmod(temporary, 0o600)
        control.listen(4)
        os.rename(temporary, path)
        self.control = control
        self.control_inode = os.stat(path).st_ino
        threading.Thread(target=self.control_loop, name="control", daemon=True).start()

    def control_loop(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.control.accept()
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.1)
                continue
            try:
                if self.hand_over(connection):
                    return
            except Exception:
                log("hand-over failed, serving on: %s" % traceback.format_exc().strip())
            finally:
                connection.close()

    def hand_over(self, connection):
        """Gives the listener to a newer server; True once that one serves and this one stopped."""
        if recv_line(connection, 5) != b"TAKEOVER":
            return False
        if os.getuid() != peer_credentials(connection)[1]:
            log("hand-over refused: another user asked")
            return False
        socket.send_fds(connection, [b"LISTENER\n"], [self.http.socket.fileno()])
        # The newer server now loads its application; it answers READY once it serves.
        answer = recv_line(connection, HANDOVER_SECONDS)
        if answer != b"READY":
            log("the new server gave up (%r); serving on" % answer)
            return False
        log("handing over to the new server")
        # The control socket's path is the new server's now: it renames its own socket over it.
        # Removing ours at exit, even after checking the inode, could remove the new one (the
        # rename can fall between the check and the unlink), and the next restart would then
        # stop and start, refusing connections.
        self.handed_over = True
        self.stop_accepting()
        try:
            connection.sendall(b"DONE\n")
        except OSError:
            pass
        self.stopping.set()
        return True

    # -- serving --------------------------------------------------------------------------------

    def start(self, application, listener=None):
        ip, port = self.options["ip"], self.options["port"]
        if listener is None:
            # A previous server's last connections may hold the address a moment longer.
            deadline = time.monotonic() + 5
            while True:
                try:
                    self.http = ThreadingWSGIServer((ip, port), QuietHandler)
                    break
                except OSError as error:
                    if error.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        else:
            self.http = ThreadingWSGIServer((ip, port), QuietHandler, bind_and_activate=False)
            self.http.socket.close()
            self.http.socket = listener
            self.http.adopt_listener()
        # Several processes may share the listener during a hand-over: an accept that finds the
        # queue already emptied by the other one must not block.
        self.http.socket.setblocking(False)
        self.http.set_app(application)
        self.serving = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="http", daemon=True)
        self.serving.start()
        self.accepting = True

    def stop_accepting(self):
        """Stops accepting and closes this process's copy of the listener (never shuts it down: a
        newer server may be accepting on it)."""
        with self.stop_lock:
            if self.accepting:
                self.http.shutdown()  # returns once serve_forever accepts no more
                self.http.socket.close()
                self.accepting = False

    def stop_serving(self):
        self.stop_accepting()
        self.stopping.set()

    def run_until_stopped(self):
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        signal.signal(signal.SIGINT, lambda *_: self.stopping.set())
        while not self.stopping.wait(1):
            pass
        self.stop_serving()
        self.remove_control_socket()
        if not self.http.drain(DRAIN_SECONDS):
            log("requests still running after %d s; exiting anyway" % DRAIN_SECONDS)

    def remove_control_socket(self):
        """Removes the control socket's path unless a newer server has put its own there."""
        path = self.options["control_socket"]
        if self.control is None or self.handed_over:
            return
        try:
            if os.stat(path).st_ino == self.control_inode:
                os.unlink(path)
        except OSError:
            pass


def peer_credentials(connection):
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    creds = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def parse(argv):
    options = {"pid_file": None, "control_socket": None, "takeover": False, "status_file": None}
    positional = []
    arguments = list(argv)
    while arguments:
        argument = arguments.pop(0)
        if argument in ("--pid-file", "--control-socket", "--status-file") and arguments:
            options[argument[2:].replace("-", "_")] = arguments.pop(0)
        elif argument == "--takeover":
            options["takeover"] = True
        elif argument == "--":
            positional.extend(arguments)
            break
        elif argument.startswith("--"):
            return None
        else:
            positional.append(argument)
    if len(positional) != 3 or (options["takeover"] and not options["control_socket"]):
        return None
    try:
        options["ip"], options["port"], options["repo_dir"] = positional[0], int(positional[1]), positional[2]
    except ValueError:
        return None
    return options


def fail(options, reason):
    log(reason)
    if options["status_file"]:
        write_atomically(options["status_file"], reason.replace("\n", " ") + "\n")
    return 1


def describe(error):
    if isinstance(error, SyntaxError):
        return "%s: %s (%s, line %s)" % (type(error).__name__, error.msg, error.filename, error.lineno)
    return "%s: %s" % (type(error).__name__, error)


def main():
    options = parse(sys.argv[1:])
    if options is None:
        sys.stderr.write(__doc__)
        return 2
    repo_dir = os.path.realpath(options["repo_dir"])
    server = Server(options)
    listener = None
    old = None
    if options["takeover"]:
        try:
            old = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old.settimeout(5)
            with short_path(options["control_socket"]) as short:
                old.connect(short)
            old_pid = peer_credentials(old)[0]
            old.sendall(b"TAKEOVER\n")
            message, fds, _, _ = socket.recv_fds(old, 64, 1)
            if message.strip() != b"LISTENER" or len(fds) != 1:
                return fail(options, "the running server did not hand over its listening socket")
            listener = socket.socket(fileno=fds[0])
        except OSError as error:
            return fail(options, "cannot reach the running server at %s: %s" % (options["control_socket"], error))
    try:
        application = load_application(repo_dir)
    except BaseException as error:  # SyntaxError, ImportError, SystemExit...
        traceback.print_exc()
        return fail(options, "the application in %s does not load: %s" % (repo_dir, describe(error)))
    log("serving %s on %s:%d with %s" % (repo_dir, options["ip"], options["port"], sys.executable))
    try:
        server.start(application, listener)
    except OSError as error:
        return fail(options, "cannot listen on %s:%d: %s" % (options["ip"], options["port"], error))
    if old is not None:
        # Both serve now; the old one stops accepting once told, and confirms with DONE.
        try:
            old.sendall(b"READY\n")
            done = recv_line(old, HANDOVER_SECONDS)
        except OSError as error:
            done = repr(error).encode()
        old.close()
        if done != b"DONE":  # it gave up, or died (then this server carries on alone)
            for _ in range(20):
                if not alive(old_pid):
                    break
                time.sleep(0.05)
        if done != b"DONE" and alive(old_pid):
            server.stop_serving()
            server.http.drain(DRAIN_SECONDS)
            return fail(options, "the running server did not give up its socket (%s); it keeps serving"
                        % done.decode(errors="replace"))
    try:
        server.open_control_socket()
    except OSError as error:
        log("no control socket, restarts will not be seamless: %s" % error)
    write_atomically(options["pid_file"], "%d\n" % os.getpid())
    server.run_until_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(main())
