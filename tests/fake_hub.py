"""A local fake of the Hugging Face Hub for fault injection: an HTTP server on 127.0.0.1 speaking the endpoints the
project uses, with the paths and JSON shapes huggingface_hub 2.4 sends and reads (its hf_api.py, file_download.py,
_commit_api.py, _jobs_api.py), and faults that each endpoint can be told to produce.

Endpoints (name: method path):
  reachable: HEAD /                              (the project's reachability probe)
  whoami:    GET  /api/whoami-v2
  repo_info: GET  /api/models/{repo}[/revision/{rev}], GET /api/models/{repo}/tree/{rev}[/{path}]
  resolve:   HEAD|GET /{repo}/resolve/{rev}/{path}  (file download; Range honoured)
  create:    POST /api/repos/create
  validate:  POST /api/validate-yaml               (a model card's metadata, before its commit)
  preupload: POST /api/models/{repo}/preupload/{rev}
  commit:    POST /api/models/{repo}/commit/{rev}   (NDJSON: header, file, deletedFile)
  jobs_run:  POST /api/jobs/{namespace}
  jobs_inspect: GET /api/jobs/{namespace}/{id}
  jobs_logs: GET  /api/jobs/{namespace}/{id}/logs (server-sent events)

Faults (`FakeHub.fail(endpoint, kind, times=...)`): hang (accept, read the request, never answer), 500, 429 (with
Retry-After), reset (close the connection with RST), truncate (a file body cut in half, Content-Length kept), slow
(answer after `delay` seconds). `times` requests are hit (None: all), then the endpoint answers normally.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

FAULTS = ("hang", "500", "429", "reset", "truncate", "slow")
SHA = "0123456789abcdef0123456789abcdef01234567"
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
ROUTES = [  # (endpoint, method, pattern)
    ("reachable", "HEAD", r"/"),
    ("whoami", "GET", r"/api/whoami-v2"),
    ("repo_info", "GET", rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?"),
    ("repo_info", "GET", rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?"),
    ("resolve", "HEAD", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
    ("resolve", "GET", rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"),
    ("create", "POST", r"/api/repos/create"),
    ("validate", "POST", r"/api/validate-yaml"),
    ("preupload", "POST", rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"),
    ("commit", "POST", rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"),
    ("jobs_run", "POST", r"/api/jobs/(?P<ns>[\w.-]+)"),
    ("jobs_inspect", "GET", r"/api/jobs/(?P<ns>[\w.-]+)/(?P<job>[\w]+)"),
    ("jobs_logs", "GET", r"/api/jobs/(?P<ns>[\w.-]+)/(?P<job>[\w]+)/logs"),
]


@dataclass
class Fault:
    kind: str
    times: int | None = 1
    retry_after: int = 1
    delay: float = 0.3


@dataclass
class Job:
    id: str
    namespace: str
    spec: dict
    logs: list[str]
    inspections_until_done: int = 1
    stage: str = "COMPLETED"
    inspected: int = 0


@dataclass
class FakeHub:
    """The server's state: repos {repo_id: {path: bytes}}, jobs, faults and the log of requests seen."""

    repos: dict[str, dict[str, bytes]] = field(default_factory=dict)
    jobs: dict[str, Job] = field(default_factory=dict)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[tuple[float, str, str, str]] = field(default_factory=list)  # (time, endpoint, method, path)
    user: str = "alice"
    job_logs: list[str] = field(default_factory=lambda: ["step 1", "step 2", "done"])
    url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, endpoint: str, kind: str, times: int | None = 1, **options) -> None:
        """Make `endpoint` ("*" for every one) produce `kind` for its next `times` requests (None: all)."""
        assert kind in FAULTS, kind
        self.faults[endpoint] = Fault(kind, times, **options)

    def heal(self) -> None:
        self.faults.clear()

    def add_file(self, repo_id: str, path: str, data: bytes) -> None:
        self.repos.setdefault(repo_id, {})[path] = data

    def seen(self, endpoint: str) -> list[float]:
        return [t for t, name, _, _ in self.requests if name == endpoint]

    def take_fault(self, endpoint: str, method: str) -> Fault | None:
        """The fault this request meets (counted); a truncation only meets a file download's GET."""
        with self.lock:
            fault = self.faults.get(endpoint) or self.faults.get("*")
            if fault is None or fault.times == 0:
                return None
            if fault.kind == "truncate" and (endpoint, method) != ("resolve", "GET"):
                return None
            if fault.times is not None:
                fault.times -= 1
            return fault


def route(method: str, path: str) -> tuple[str, dict] | None:
    for endpoint, verb, pattern in ROUTES:
        match = re.fullmatch(pattern, path)
        if verb == method and match:
            return endpoint, {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
    return None


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Handler(BaseHTTPRequestHandler):
    server_version = "FakeHub/1"
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method: str) -> None:
        path = urlparse(self.path).path
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        found = route(method, path)
        if found is None:
            self.hub.requests.append((time.monotonic(), "unknown", method, self.path))
            return self.answer(404, {"error": f"no route {method} {path}"}, {"X-Error-Code": "EntryNotFound"})
        endpoint, params = found
        self.hub.requests.append((time.monotonic(), endpoint, method, path))
        fault = self.hub.take_fault(endpoint, method)
        if fault is not None and fault.kind != "truncate":
            if fault.kind == "hang":
                self.hub.stopping.wait()
                self.close_connection = True
                return None
            if fault.kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                return None
            if fault.kind == "500":
                return self.answer(500, {"error": "Internal Error (fake)"})
            if fault.kind == "429":
                return self.answer(429, {"error": "rate limited (fake)"}, {"Retry-After": str(fault.retry_after)})
            if fault.kind == "slow":
                time.sleep(fault.delay)
        truncate = fault is not None and fault.kind == "truncate"
        return getattr(self, f"on_{endpoint}")(method, params, body, truncate)

    def answer(self, status: int, payload=None, headers: dict | None = None, raw: bytes | None = None,
               length: int | None = None, send_body: bool = True) -> None:  # fmt: skip
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        content_type = "application/octet-stream" if raw is not None else "application/json"
        for name, value in {"Content-Type": content_type, **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        if send_body and self.command != "HEAD":
            self.wfile.write(data)

    # -- endpoints -----------------------------------------------------------------------------------------------
    def on_reachable(self, method, params, body, truncate):
        self.answer(200, raw=b"")

    def on_whoami(self, method, params, body, truncate):
        self.answer(200, {"type": "user", "name": self.hub.user, "auth": {"accessToken": {"role": "write"}}})

    def missing_repo(self, repo: str) -> None:
        self.answer(404, {"error": f"Repository {repo} not found"}, {"X-Error-Code": "RepoNotFound"})

    def on_repo_info(self, method, params, body, truncate):
        files = self.hub.repos.get(params["repo"])
        if files is None:
            return self.missing_repo(params["repo"])
        if "/tree/" in self.path:
            prefix = params.get("path", "")
            entries = [{"type": "file", "path": p, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                       for p, d in sorted(files.items()) if p.startswith(prefix)]  # fmt: skip
            return self.answer(200, entries)
        siblings = [{"rfilename": p, "size": len(d)} for p, d in sorted(files.items())]
        self.answer(200, {"id": params["repo"], "modelId": params["repo"], "sha": SHA, "private": True,
                          "siblings": siblings, "lastModified": now()})  # fmt: skip

    def on_resolve(self, method, params, body, truncate):
        files = self.hub.repos.get(params["repo"])
        if files is None:
            return self.missing_repo(params["repo"])
        if params["path"] not in files:
            return self.answer(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        data = files[params["path"]]
        etag = f'"{hashlib.sha1(data).hexdigest()}"'
        headers = {"ETag": etag, "X-Repo-Commit": SHA, "Accept-Ranges": "bytes"}
        start = 0
        if (wanted := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))) and method == "GET":
            start = int(wanted.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        part = data[start:]
        if method == "HEAD":
            return self.answer(200, headers=headers, raw=data, send_body=False)
        status = 206 if start else 200
        if truncate:  # promise the whole part, send half, drop the connection
            self.close_connection = True
            return self.answer(status, headers=headers, raw=part[: len(part) // 2], length=len(part))
        self.answer(status, headers=headers, raw=part)

    def on_create(self, method, params, body, truncate):
        request = json.loads(body or b"{}")
        repo = f"{request.get('organization') or self.hub.user}/{request['name']}"
        self.hub.repos.setdefault(repo, {})
        self.answer(200, {"url": f"{self.hub.url}/{repo}", "name": repo})

    def on_validate(self, method, params, body, truncate):
        self.answer(200, {"errors": [], "warnings": []})

    def on_preupload(self, method, params, body, truncate):
        files = json.loads(body)["files"]
        self.answer(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                    for f in files]})  # fmt: skip

    def on_commit(self, method, params, body, truncate):
        files = self.hub.repos.get(params["repo"])
        if files is None:
            return self.missing_repo(params["repo"])
        staged = dict(files)
        for line in body.decode().splitlines():
            item = json.loads(line)
            value = item.get("value", {})
            if item["key"] == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "deletedFile":
                staged.pop(value["path"], None)
        files.clear()
        files.update(staged)  # all or nothing, as a git commit
        self.answer(200, {"commitUrl": f"{self.hub.url}/{params['repo']}/commit/{SHA}", "commitOid": SHA})

    def job_json(self, job: Job) -> dict:
        stage = job.stage if job.inspected >= job.inspections_until_done else "RUNNING"
        return {"id": job.id, "createdAt": now(), "dockerImage": job.spec.get("dockerImage"),
                "command": job.spec.get("command"), "flavor": job.spec.get("flavor"), "status": {"stage": stage},
                "owner": {"id": "u1", "name": job.namespace, "type": "user"}}  # fmt: skip

    def on_jobs_run(self, method, params, body, truncate):
        job = Job(f"job{len(self.hub.jobs) + 1:04d}", params["ns"], json.loads(body), list(self.hub.job_logs))
        self.hub.jobs[job.id] = job
        self.answer(200, self.job_json(job))

    def on_jobs_inspect(self, method, params, body, truncate):
        job = self.hub.jobs.get(params["job"])
        if job is None:
            return self.answer(404, {"error": "job not found"})
        job.inspected += 1
        self.answer(200, self.job_json(job))

    def on_jobs_logs(self, method, params, body, truncate):
        job = self.hub.jobs.get(params["job"])
        if job is None:
            return self.answer(404, {"error": "job not found"})
        events = "".join(f"data: {json.dumps({'data': line, 'timestamp': now()})}\n\n" for line in job.logs)
        self.close_connection = True
        self.answer(200, headers={"Content-Type": "text/event-stream"}, raw=events.encode())


class TrackingServer(ThreadingHTTPServer):
    """Keeps its open connections, so that stopping can end the handlers waiting on a kept-alive one."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.open_connections: set[socket.socket] = set()

    def process_request(self, request, client_address) -> None:
        self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        self.open_connections.discard(request)
        super().shutdown_request(request)

    def end_connections(self) -> None:
        for connection in list(self.open_connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class FakeHubServer:
    """Start with `start()`, stop with `stop()` (hanging handlers released, open connections ended, every thread
    joined, the port closed)."""

    def __init__(self) -> None:
        self.hub = FakeHub()
        handler = type("BoundHandler", (Handler,), {"hub": self.hub})
        self.server = TrackingServer(("127.0.0.1", 0), handler)
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})

    def start(self) -> FakeHub:
        self.thread.start()
        return self.hub

    def stop(self) -> None:
        self.hub.stopping.set()
        self.server.shutdown()
        self.server.end_connections()
        self.server.server_close()  # joins the handler threads
        self.thread.join()
