"""A socket-level guard against outbound connections, for the test process and its children.

A child process gets it by having this folder on PYTHONPATH (Python imports `sitecustomize` at start-up) and
NETWORK_GUARD_LOG naming a file. Every attempt to resolve or connect to anything but 127.0.0.1 is appended to that file
(libraries swallow the error) and refused with OSError. Unix sockets are allowed.
"""

import os
import socket
import traceback

ALLOWED_HOSTS = ("127.0.0.1",)
LOG_ENV = "NETWORK_GUARD_LOG"


def _record(log_path: str, what: str) -> None:
    caller = "".join(traceback.format_stack(limit=40)[:-2])
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"pid {os.getpid()}: {what}\n{caller}\n")


def install(log_path: str):
    """Patch socket.getaddrinfo and socket.socket.connect/connect_ex; returns a function that undoes it."""
    original = (socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)

    def getaddrinfo(host, *args, **kwargs):
        text = host.decode() if isinstance(host, bytes) else host
        if text is not None and text not in ALLOWED_HOSTS:
            _record(log_path, f"getaddrinfo({text!r})")
            raise socket.gaierror(socket.EAI_NONAME, f"network guard: no lookup of {text!r}")
        return original[0](host, *args, **kwargs)

    def guarded(method):
        def call(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ALLOWED_HOSTS:
                _record(log_path, f"connect({address!r})")
                raise OSError(f"network guard: no connection to {address!r}")
            return method(self, address)

        return call

    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = guarded(original[1])
    socket.socket.connect_ex = guarded(original[2])

    def undo() -> None:
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = original

    return undo


if os.environ.get(LOG_ENV):
    install(os.environ[LOG_ENV])
