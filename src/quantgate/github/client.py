"""A thin GitHub REST client on urllib: auth, JSON, `Link` pagination, retries. No domain logic.

What it promises:
- the base URL comes from `GITHUB_API_URL` (GitHub Enterprise Server's `https://host/api/v3`
  included); a `Link: rel="next"` URL is only followed when it stays below that base, so the
  token is never sent to another host;
- 429, and 403 that GitHub marks as a rate limit (secondary: its message says so; primary:
  `x-ratelimit-remaining: 0`), are retried after `retry-after` or until `x-ratelimit-reset`,
  a bounded number of times and never longer than `max_wait` per wait;
- 5xx and timeouts back off exponentially, a bounded number of times; a POST is not resent
  after a timeout or 5xx (it may have landed): the caller decides (see `Transient`);
- every request, its retries and waits included, ends within the client's `deadline` (seconds
  from its first request): a server that answers a byte at a time, or never finishes its
  headers, has its connection shut down then (a per-read timeout alone would wait for ever);
  an answer over `MAX_ANSWER_BYTES` is refused, and an answer that is not HTTP is one line too;
- the token never appears in an exception, a log line or a JSON document: errors carry the
  method, the path, the status and GitHub's own message, scrubbed of the token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import one_line

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?([^";]+)"?')
_RETRY_5XX = {500, 502, 503, 504}
# All the requests of one client (one `quantgate comment`) end within this many seconds; the
# action stops the comment command at 180 s, so this comes first. QUANTGATE_GITHUB_DEADLINE sets it.
DEFAULT_DEADLINE = 120.0
DEADLINE_VARIABLE = "QUANTGATE_GITHUB_DEADLINE"
# The largest answer read: a page of 100 comments of 65,536 characters is under 27 MB as JSON.
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class GitHubError(Exception):
    """A request GitHub refused or that could not be completed. Never carries the token."""

    def __init__(
        self, method: str, path: str, status: int | None, message: str, data: Any = None, headers: dict | None = None
    ):
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        self.data = data
        self.headers = headers or {}
        where = f"{method} {path}"
        super().__init__(f"{where}: {status} {message}" if status else f"{where}: {message}")

    @property
    def not_accessible(self) -> bool:
        """A token that may read but not write (a fork's pull request) or lacks the permission."""
        return (
            self.status == 403
            and not isinstance(self, RateLimited)
            and not is_rate_limited(403, self.headers, self.message)
        )

    @property
    def too_long(self) -> bool:
        text = (self.message + " " + json.dumps(self.data)).lower() if self.data else self.message.lower()
        return self.status == 422 and "too long" in text


class Transient(GitHubError):
    """5xx, timeout or connection failure still failing after the retries (or a POST, not resent)."""


class RateLimited(GitHubError):
    """Rate limited for longer than we are willing to wait, or beyond the retry budget."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    data: Any
    url: str

    def link(self, rel: str) -> str | None:
        for url, r in _LINK_RE.findall(self.headers.get("link", "")):
            if rel in r.split():
                return url
        return None


def is_rate_limited(status: int, headers: dict, message: str) -> bool:
    if status == 429:
        return True
    if status != 403:
        return False
    if headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers:
        return True
    return "rate limit" in message.lower()


def _message(data: Any, raw: bytes) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        msg = data["message"]
        errors = data.get("errors")
        if isinstance(errors, list):
            found = [e.get("message") or e.get("code") for e in errors if isinstance(e, dict)]
            extra = [str(x) for x in found if x]
            if extra:
                msg += " (" + "; ".join(extra) + ")"
        return msg
    text = raw.decode("utf-8", "replace").strip()
    return one_line(text, 200) or "no message"


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class _SameOriginAuth(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but send the token only to the origin it was meant for: a redirect to
    another host or scheme goes there without `Authorization`."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for key in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[key]
            new.unredirected_hdrs.pop("Authorization", None)
        return new


class _Watch:
    """The sockets one request opens, shut down once its deadline passes: the read blocked on
    them returns at once, however slowly the server was sending."""

    def __init__(self, seconds: float):
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watch:
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            late = self.fired
        if late:
            _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shut(sock)

    def connect(self, *args, **kwargs) -> socket.socket:
        """`socket.create_connection`, the socket watched from the start (before any TLS)."""
        sock = socket.create_connection(*args, **kwargs)
        self.add(sock)
        return sock


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _watched(handler: type[urllib.request.AbstractHTTPHandler], watch: _Watch) -> urllib.request.BaseHandler:
    """`handler` (urllib's HTTP or HTTPS handler) whose connections open their socket through
    `watch`."""

    class Watched(handler):  # type: ignore[valid-type,misc]
        def do_open(self, http_class: type[http.client.HTTPConnection], req, **kwargs):
            class Connection(http_class):  # type: ignore[valid-type,misc]
                def __init__(self, *a, **kw):
                    super().__init__(*a, **kw)
                    self._create_connection = watch.connect

            return super().do_open(Connection, req, **kwargs)

    return Watched()


def _opener(watch: _Watch) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        _SameOriginAuth, _watched(urllib.request.HTTPHandler, watch), _watched(urllib.request.HTTPSHandler, watch)
    )


@dataclass
class GitHubClient:
    """`request(method, path, json=..., params=...)` and `paginate(path, params)`.

    `sleep` and `clock` are injectable so tests never wait; every wait is recorded in `waits`.
    """

    token: str | None
    base_url: str = DEFAULT_API_URL
    timeout: float = 20.0
    max_attempts: int = 4
    max_wait: float = 120.0
    backoff: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    user_agent: str = "quantgate"
    deadline: float = DEFAULT_DEADLINE
    waits: list[float] = field(default_factory=list)
    _ends: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = (self.base_url or DEFAULT_API_URL).rstrip("/")
        parsed = urllib.parse.urlsplit(self.base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"GITHUB_API_URL: '{self.base_url}' is not an http(s) URL")

    @classmethod
    def from_env(cls, token: str | None, env: Mapping[str, str] | None = None, **kw) -> GitHubClient:
        """The API at `GITHUB_API_URL`; the deadline from `QUANTGATE_GITHUB_DEADLINE` (seconds)
        when set. A value that is not a positive number raises `ValueError` naming it."""
        env = os.environ if env is None else env
        raw = (env.get(DEADLINE_VARIABLE) or "").strip()
        if raw and "deadline" not in kw:
            try:
                kw["deadline"] = float(raw)
            except ValueError:
                kw["deadline"] = -1.0
            if not 0 < kw["deadline"] < float("inf"):
                raise ValueError(f"{DEADLINE_VARIABLE}: '{raw}' is not a positive number of seconds")
        return cls(token=token, base_url=env.get("GITHUB_API_URL") or DEFAULT_API_URL, **kw)

    def remaining(self) -> float:
        """Seconds left before the deadline (which starts with the first request)."""
        if self._ends is None:
            self._ends = time.monotonic() + self.deadline
        return self._ends - time.monotonic()

    def _late(self, method: str, shown: str) -> Transient:
        return Transient(
            method, shown, None, f"no complete answer within the {self.deadline:g} s quantgate gives GitHub"
        )

    # -- helpers ---------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        if self.token and self.token in text:
            text = text.replace(self.token, "***")
        return text

    def _url(self, path_or_url: str, params: dict | None) -> str:
        if path_or_url.startswith(("http://", "https://")):
            url = path_or_url
            if not self.same_origin(url):
                raise GitHubError("GET", self._display(url), None, "refusing to follow a link outside the API base URL")
        else:
            url = self.base_url + "/" + path_or_url.lstrip("/")
        if params:
            sep = "&" if "?" in url else "?"
            url += sep + urllib.parse.urlencode(params)
        return url

    def same_origin(self, url: str) -> bool:
        a, b = urllib.parse.urlsplit(url), urllib.parse.urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc) and (a.path + "/").startswith(b.path + "/")

    def _display(self, url: str) -> str:
        """The URL without the base, for messages: '/repos/o/r/issues/1/comments?page=2'."""
        if url.startswith(self.base_url):
            url = url[len(self.base_url) :] or "/"
        return self._scrub(url)

    def _wait_for_limit(self, headers: dict) -> float:
        """Seconds to wait before retrying a rate-limited request, as GitHub documents it."""
        ra = headers.get("retry-after")
        if ra is not None:
            try:
                return max(0.0, float(ra))
            except ValueError:
                pass
        if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset"):
            try:
                return max(0.0, float(headers["x-ratelimit-reset"]) - self.clock()) + 1.0
            except ValueError:
                pass
        return 60.0  # GitHub: without either header, wait at least one minute

    # -- the request -----------------------------------------------------------------------
    def request(self, method: str, path: str, *, json_body: Any = None, params: dict | None = None) -> Response:
        method = method.upper()
        url = self._url(path, params)
        shown = self._display(url)
        data = None if json_body is None else json.dumps(json_body).encode("utf-8")
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": self.user_agent,
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if data is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        resend_ok = method != "POST"
        attempt = 0
        while True:
            attempt += 1
            left = self.remaining()
            if left <= 0:
                raise self._late(method, shown)
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            with _Watch(left) as watch:
                try:
                    with _opener(watch).open(req, timeout=min(self.timeout, left)) as resp:
                        raw = resp.read(MAX_ANSWER_BYTES + 1)
                        status, rh = resp.status, {k.lower(): v for k, v in resp.headers.items()}
                except urllib.error.HTTPError as e:
                    try:
                        raw = e.read(MAX_ANSWER_BYTES + 1) or b""
                    except (OSError, http.client.HTTPException):
                        raw = b""
                    status, rh = e.code, {k.lower(): v for k, v in (e.headers or {}).items()}
                except (TimeoutError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as e:
                    if watch.fired:
                        raise self._late(method, shown) from None
                    reason = getattr(e, "reason", e)
                    if isinstance(e, http.client.HTTPException) and not isinstance(e, ConnectionError):
                        msg = f"not an HTTP answer ({type(e).__name__}: {one_line(e, 120)})"
                    elif isinstance(e, (TimeoutError, socket.timeout)):
                        msg = f"no response within {self.timeout:g} s"
                    else:
                        msg = f"no response ({type(reason).__name__}: {reason})"
                    msg = self._scrub(msg)
                    if resend_ok and attempt < self.max_attempts:
                        self._pause(self.backoff * 2 ** (attempt - 1), method, shown)
                        continue
                    raise Transient(method, shown, None, msg) from None
            if watch.fired:  # the answer was cut off at the deadline, not finished
                raise self._late(method, shown)
            if len(raw) > MAX_ANSWER_BYTES:
                raise GitHubError(method, shown, status, f"an answer over {MAX_ANSWER_BYTES:,} bytes; not reading it")
            parsed = None
            if raw:
                try:
                    parsed = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    parsed = None
            if status < 400:
                return Response(status, rh, parsed, url)
            message = self._scrub(_message(parsed, raw))
            if is_rate_limited(status, rh, message):
                wait = self._wait_for_limit(rh)
                if attempt >= self.max_attempts or wait > self.max_wait or wait > self.remaining():
                    raise RateLimited(
                        method, shown, status, f"{message} (rate limited; retry in {wait:.0f} s)", parsed, rh
                    )
                self._pause(wait, method, shown)
                continue
            if status in _RETRY_5XX:
                if resend_ok and attempt < self.max_attempts:
                    self._pause(self.backoff * 2 ** (attempt - 1), method, shown)
                    continue
                raise Transient(method, shown, status, message, parsed, rh)
            raise GitHubError(method, shown, status, message, parsed, rh)

    def _pause(self, seconds: float, method: str, shown: str) -> None:
        seconds = min(seconds, self.max_wait)
        if seconds >= self.remaining():
            raise self._late(method, shown)
        self.waits.append(seconds)
        self.sleep(seconds)

    def paginate(self, path: str, params: dict | None = None, *, max_pages: int = 100) -> Iterator[Any]:
        """Every item of a list endpoint, following `Link: rel="next"` (per_page=100)."""
        params = {"per_page": 100, **(params or {})}
        resp = self.request("GET", path, params=params)
        pages = 1
        while True:
            if not isinstance(resp.data, list):
                raise GitHubError(
                    "GET",
                    self._display(resp.url),
                    resp.status,
                    "malformed answer: not a JSON list, as GitHub lists are",
                )
            yield from resp.data
            nxt = resp.link("next")
            if not nxt:
                return
            if pages >= max_pages:
                raise GitHubError("GET", self._display(nxt), None, f"more than {max_pages} pages; stopping")
            resp = self.request("GET", nxt)
            pages += 1
