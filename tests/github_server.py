"""A stand-in for the GitHub REST API on loopback: a real HTTP server in a thread.

It answers the endpoints `quantgate comment` uses the way GitHub documents them, errors
included, and records every request (method, path, query, JSON body, Authorization header):

- GET  /user                                   user tokens: the user; installation tokens
                                               (GITHUB_TOKEN, a fork's token): 403
                                               "Resource not accessible by integration"
- GET  /repos/{o}/{r}/issues/{n}/comments      per_page (default 30, max 100), page, `Link`
- POST /repos/{o}/{r}/issues/{n}/comments      201; fork token 403; over 65,536 chars 422
- PATCH/DELETE /repos/{o}/{r}/issues/comments/{id}
- GET  /repos/{o}/{r}/pulls                    state, head=owner:branch, per_page, page, `Link`
- anything under an optional prefix (GitHub Enterprise Server's `/api/v3`)
- 401 "Bad credentials" without a known token

Faults are scripted with `fault(method, path_regex, status, ...)` (429 with retry-after, a 500
then success, a slow answer that still does the work, ...). A fault with `raw` bytes answers
with exactly those bytes instead of an HTTP answer of its own (a body that is not JSON, a status
line that is not HTTP); with `trickle`, one byte every `trickle` seconds after the first `trickle_from` (a slow-loris
server, which keeps sending until the client hangs up or `trickle_for` seconds have passed).
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOCS = "https://docs.github.com/rest"
INTEGRATION_403 = "Resource not accessible by integration"
BODY_LIMIT = 65536


@dataclass
class Token:
    login: str
    kind: str = "user"  # user | installation (GITHUB_TOKEN) | fork (read-only installation token)
    user_id: int = 1


@dataclass
class Fault:
    method: str
    path_re: str
    status: int | None  # None: answer normally, only after `delay`
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    times: int = 1
    delay: float = 0.0
    raw: bytes | None = None
    trickle: float = 0.0
    trickle_from: int = 0  # bytes of `raw` sent at once before the trickle starts
    trickle_for: float = 300.0


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: object
    authorization: str | None
    status: int = 0


class FakeGitHub:
    def __init__(self, prefix: str = "", link_host: str | None = None):
        self.prefix = prefix.rstrip("/")
        self.link_host = link_host  # to test that a Link to another host is not followed
        self.tokens: dict[str, Token] = {}
        self.comments: dict[int, dict] = {}
        self.pulls: dict[str, list[dict]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Recorded] = []
        self._next_id = 1000
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.prefix

    # -- state --------------------------------------------------------------------------------
    def add_token(self, token: str, login: str, kind: str = "user") -> None:
        self.tokens[token] = Token(login, kind, user_id=len(self.tokens) + 1)

    def add_comment(self, repo: str, number: int, body: str, login: str) -> dict:
        with self._lock:
            self._next_id += 1
            cid = self._next_id
        c = {
            "id": cid,
            "repo": repo,
            "issue": number,
            "body": body,
            "user": {
                "login": login,
                "id": abs(hash(login)) % 10**8,
                "type": "Bot" if login.endswith("[bot]") else "User",
            },
            "html_url": f"https://github.test/{repo}/pull/{number}#issuecomment-{cid}",
            "created_at": f"2026-01-01T00:00:{cid % 60:02d}Z",
        }
        self.comments[cid] = c
        return c

    def add_pull(
        self, repo: str, number: int, head_repo: str, head_branch: str, head_sha: str, state: str = "open"
    ) -> None:
        self.pulls.setdefault(repo, []).append(
            {
                "number": number,
                "state": state,
                "head": {
                    "ref": head_branch,
                    "sha": head_sha,
                    "label": f"{head_repo.split('/')[0]}:{head_branch}",
                    "repo": {"full_name": head_repo},
                },
                "base": {"repo": {"full_name": repo}},
            }
        )

    def comments_on(self, repo: str, number: int) -> list[dict]:
        return sorted(
            (c for c in self.comments.values() if c["repo"] == repo and c["issue"] == number), key=lambda c: c["id"]
        )

    def fault(
        self,
        method: str,
        path_re: str,
        status: int | None,
        body: dict | None = None,
        headers: dict | None = None,
        times: int = 1,
        delay: float = 0.0,
        raw: bytes | None = None,
        trickle: float = 0.0,
        trickle_from: int = 0,
    ) -> None:
        self.faults.append(
            Fault(method, path_re, status, body, headers or {}, times, delay, raw, trickle, trickle_from)
        )

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]


def _handler_for(gh: FakeGitHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

        def do_PATCH(self):
            self._serve("PATCH")

        def do_DELETE(self):
            self._serve("DELETE")

        # -- plumbing -------------------------------------------------------------------------
        def _send(self, status: int, data=None, headers: dict | None = None):
            raw = b"" if data is None else json.dumps(data).encode()
            self._rec.status = status  # before answering: a test may look as soon as the client has it
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if raw:
                self.wfile.write(raw)

        def _send_raw(self, f: Fault):
            """`f.raw` as the whole answer (trickled when asked), then the connection closes."""
            self.close_connection = True
            self._rec.status = -1
            ends = time.monotonic() + f.trickle_for
            try:
                self.wfile.write(f.raw if not f.trickle else f.raw[: f.trickle_from])
                if not f.trickle:
                    return
                for i in range(f.trickle_from, len(f.raw)):
                    if time.monotonic() > ends:
                        return
                    self.wfile.write(f.raw[i : i + 1])
                    self.wfile.flush()
                    time.sleep(f.trickle)
            except OSError:  # the client hung up: what a slow-loris answer waits for
                return

        def _serve(self, method: str):
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            self._rec = Recorded(method, split.path, query, body, self.headers.get("Authorization"))
            gh.requests.append(self._rec)
            delay = 0.0
            for f in gh.faults:
                if f.times > 0 and f.method == method and re.search(f.path_re, split.path):
                    f.times -= 1
                    if f.raw is not None:
                        return self._send_raw(f)
                    if f.status is None:
                        delay = f.delay
                        break
                    time.sleep(f.delay)
                    return self._send(f.status, f.body or {"message": "fault", "documentation_url": DOCS}, f.headers)
            if not split.path.startswith(gh.prefix + "/"):
                return self._send(404, {"message": "Not Found", "documentation_url": DOCS})
            path = split.path[len(gh.prefix) :]
            auth = self.headers.get("Authorization") or ""
            m = re.fullmatch(r"(?:Bearer|token) (\S+)", auth)
            tok = gh.tokens.get(m.group(1)) if m else None
            if tok is None:
                return self._send(401, {"message": "Bad credentials", "documentation_url": DOCS})
            status, data, headers = self._route(method, path, query, body, tok)
            if delay:
                time.sleep(delay)  # the work is done; only the answer is late
            self._send(status, data, headers)

        def _link(self, path: str, query: dict, page: int, last: int) -> dict:
            base = (gh.link_host or gh.origin) + gh.prefix + path
            rels = []
            for rel, p in (("prev", page - 1), ("next", page + 1), ("last", last), ("first", 1)):
                if (
                    (rel == "prev" and page > 1)
                    or (rel == "next" and page < last)
                    or (rel in ("last", "first") and last > 1)
                ):
                    q = urllib.parse.urlencode({**query, "page": p})
                    rels.append(f'<{base}?{q}>; rel="{rel}"')
            return {"Link": ", ".join(rels)} if rels else {}

        def _page(self, items: list, path: str, query: dict):
            per = min(int(query.get("per_page", 30)), 100)
            page = max(int(query.get("page", 1)), 1)
            last = max(1, -(-len(items) // per))
            chunk = items[(page - 1) * per : page * per]
            return 200, chunk, self._link(path, query, page, last)

        def _route(self, method, path, query, body, tok: Token):
            write_refused = (403, {"message": INTEGRATION_403, "documentation_url": DOCS}, {})
            if path == "/user" and method == "GET":
                if tok.kind != "user":
                    return (
                        403,
                        {
                            "message": INTEGRATION_403,
                            "documentation_url": f"{DOCS}/users/users#get-the-authenticated-user",
                        },
                        {},
                    )
                return 200, {"login": tok.login, "id": tok.user_id, "type": "User"}, {}
            m = re.fullmatch(r"/repos/([\w.\-]+/[\w.\-]+)/issues/(\d+)/comments", path)
            if m:
                repo, number = m.group(1), int(m.group(2))
                if method == "GET":
                    return self._page(gh.comments_on(repo, number), path, query)
                if method == "POST":
                    if tok.kind == "fork":
                        return write_refused
                    bad = self._check_body(body)
                    if bad:
                        return bad
                    c = gh.add_comment(repo, number, body["body"], tok.login)
                    return 201, c, {"Location": c["html_url"]}
            m = re.fullmatch(r"/repos/([\w.\-]+/[\w.\-]+)/issues/comments/(\d+)", path)
            if m:
                c = gh.comments.get(int(m.group(2)))
                if c is None or c["repo"] != m.group(1):
                    return 404, {"message": "Not Found", "documentation_url": DOCS}, {}
                if tok.kind == "fork":
                    return write_refused
                if method == "PATCH":
                    bad = self._check_body(body)
                    if bad:
                        return bad
                    c["body"] = body["body"]
                    return 200, c, {}
                if method == "DELETE":
                    del gh.comments[c["id"]]
                    return 204, None, {}
            m = re.fullmatch(r"/repos/([\w.\-]+/[\w.\-]+)/pulls", path)
            if m and method == "GET":
                pulls = gh.pulls.get(m.group(1), [])
                state = query.get("state", "open")
                pulls = [p for p in pulls if state == "all" or p["state"] == state]
                if "head" in query:
                    pulls = [p for p in pulls if p["head"]["label"] == query["head"]]
                return self._page(pulls, path, query)
            return 404, {"message": "Not Found", "documentation_url": DOCS}, {}

        @staticmethod
        def _check_body(body):
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                return 422, {"message": 'Invalid request.\n\n"body" wasn\'t supplied.', "documentation_url": DOCS}, {}
            if len(body["body"]) > BODY_LIMIT:
                return (
                    422,
                    {
                        "message": "Validation Failed",
                        "errors": [
                            {
                                "resource": "IssueComment",
                                "code": "unprocessable",
                                "field": "data",
                                "message": f"Body is too long (maximum is {BODY_LIMIT} characters)",
                            }
                        ],
                        "documentation_url": DOCS,
                    },
                    {},
                )
            return None

    return Handler
