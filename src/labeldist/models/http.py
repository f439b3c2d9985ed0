"""A small JSON-over-HTTP client for OpenAI-compatible servers: a bounded number of requests
in flight, timeouts, and retries with exponential backoff.

What is retried and what is not decides whether a run stops or records a gap:

- the server cannot be reached, times out, or answers 429/502/503/504: retried with backoff
  (``Retry-After`` honoured); when the retries run out the server is down or overloaded, and
  :class:`ServerUnavailable` (a :class:`ModelError`) stops the run. The batch in flight is lost
  and rerunning the command resumes.
- 401/403/404: a wrong key, model or URL; :class:`ServerUnavailable` at once, no retry.
- other 4xx and 500: the request itself is the problem (a prompt longer than the context,
  say); :class:`RequestFailed` with the server's message, which the backend records as a gap
  for that item.
- a 200 whose body is not JSON (truncated): retried, then :class:`RequestFailed`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from labeldist.errors import ModelError

log = logging.getLogger("labeldist")

RETRY_STATUS = frozenset({429, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})


class ServerUnavailable(ModelError):
    """The server cannot serve this run (down, overloaded past the retries, wrong URL, key or
    model). Stops the run; rerunning resumes it."""


class RequestFailed(RuntimeError):
    """One request failed for a reason of its own; the item it belongs to becomes a gap."""


@dataclass
class Stats:
    """Request counts of a client: requests, retries, failures, seconds spent, requests per kind,
    and with several replicas, per replica: requests answered, failed attempts, whether it is down."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)
    replicas: dict[str, dict] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The counts as a JSON-ready dict, the seconds rounded to milliseconds."""
        out = {
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "request_seconds": round(self.seconds, 3),
            "by_kind": dict(self.by_kind),
        }
        if len(self.replicas) > 1:
            out["replicas"] = {url: dict(counts) for url, counts in self.replicas.items()}
        return out


@dataclass
class _Replica:
    """One server of the pool: its connection, load and health."""

    url: str
    client: object = None  # httpx.AsyncClient, inside ``async with``
    in_flight: int = 0
    down_until: float = 0.0  # monotonic time before which it is not asked (it just failed)
    strikes: int = 0  # failed attempts in a row; the pause before asking it again doubles with each


class ServerClient:
    """POSTs JSON to ``base_url + path`` on one server or on several replicas of one model.
    Use inside one event loop: ``async with client:``.

    With several replicas (``base_url`` a list), each request goes to the replica with the fewest
    requests in flight; a replica that fails (cannot be reached, times out, 429/502-504) is left
    alone for a pause that doubles with each failure in a row (``Retry-After`` honoured) and the
    request is sent again at once to another. Only when every replica is paused does a request
    wait. A request gives up (ServerUnavailable) after ``retries + 1`` failed attempts per
    replica, so the run goes on while any replica answers. Each replica's requests and failures
    are counted in ``stats.replicas``; a replica going down or coming back is logged."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        concurrency: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls or len(set(u.rstrip("/") for u in urls)) != len(urls):
            raise ValueError(f"give one or more distinct server URLs, not {urls!r}")
        self.replicas = [_Replica(url.rstrip("/")) for url in urls]
        self.base_url = self.replicas[0].url
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency  # per replica
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats = Stats()
        self._slots: asyncio.Semaphore | None = None
        self.on_request = None  # called after each finished request (a progress bar)

    async def __aenter__(self) -> ServerClient:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        # the semaphore bounds the requests in flight; a replica may carry all of them while the
        # others are down, so its own pool never makes a request queue (and time out) behind it
        total = self.concurrency * len(self.replicas)
        for replica in self.replicas:
            replica.client = httpx.AsyncClient(
                base_url=replica.url,
                headers=headers,
                timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                limits=httpx.Limits(max_connections=total, max_keepalive_connections=self.concurrency),
            )
            self.stats.replicas.setdefault(replica.url, {"requests": 0, "failed_attempts": 0, "down": False})
        self._slots = asyncio.Semaphore(self.concurrency * len(self.replicas))
        return self

    async def __aexit__(self, *exc) -> None:
        for replica in self.replicas:
            await replica.client.aclose()
            replica.client = None

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        # full jitter keeps many clients that failed together from retrying together
        return random.uniform(0.5, 1.0) * min(self.max_backoff, self.backoff * 2**attempt)

    def _pick(self) -> _Replica:
        """The replica to ask: the least busy of those not paused, else the one paused shortest."""
        now = time.monotonic()
        up = [r for r in self.replicas if r.down_until <= now]
        if up:
            return min(up, key=lambda r: (r.in_flight, self.stats.replicas[r.url]["requests"]))
        return min(self.replicas, key=lambda r: r.down_until)

    def _failed(self, replica: _Replica, reason: str, retry_after: str | None) -> None:
        now = time.monotonic()
        if replica.down_until <= now:  # requests sent before the pause began do not lengthen it again
            replica.strikes += 1
        replica.down_until = max(replica.down_until, now + self._delay(replica.strikes - 1, retry_after))
        counts = self.stats.replicas[replica.url]
        counts["failed_attempts"] += 1
        if len(self.replicas) > 1 and not counts["down"]:
            counts["down"] = True
            log.warning("replica %s failed (%s); its requests go to the other replicas until it answers", replica.url, reason)

    def _answered(self, replica: _Replica) -> None:
        replica.strikes = 0
        counts = self.stats.replicas[replica.url]
        counts["requests"] += 1
        if counts["down"]:
            counts["down"] = False
            log.warning("replica %s answers again", replica.url)

    async def get_each(self, path: str) -> dict[str, tuple[str, object]]:
        """GET ``path`` from every replica once (no retries). By URL: ``("ok", body)``,
        ``("down", error)`` (cannot be reached; the replica is paused like after any failed
        attempt), ``("refused", error)`` (401/403: a wrong key) or ``("none", error)`` (another
        answer: a 404, a body that is not a JSON object)."""
        import httpx

        async def one(replica: _Replica) -> tuple[str, object]:
            where = replica.url + path
            try:
                response = await replica.client.request("GET", path)
            except httpx.HTTPError as err:
                self._failed(replica, f"cannot connect ({type(err).__name__})", None)
                return "down", ServerUnavailable(f"{where}: cannot connect ({type(err).__name__}: {err})")
            status = response.status_code
            if status == 200:
                try:
                    body = response.json()
                except ValueError:
                    return "none", RequestFailed(f"{where}: the response is not valid JSON")
                return ("ok", body) if isinstance(body, dict) else ("none", RequestFailed(f"{where}: not a JSON object"))
            if status in (401, 403):
                return "refused", ServerUnavailable(f"{where} answered {status}: {_message(response)}")
            if status in RETRY_STATUS:
                self._failed(replica, f"answered {status}", response.headers.get("retry-after"))
                return "down", ServerUnavailable(f"{where} answered {status}: {_message(response)}")
            return "none", RequestFailed(f"{where} answered {status}: {_message(response)}")

        found = await asyncio.gather(*(one(replica) for replica in self.replicas))
        return {replica.url: result for replica, result in zip(self.replicas, found)}

    async def get(self, path: str) -> dict:
        """GET ``path`` with retries and return the JSON object of the answer."""
        return await self._call("GET", path, None, "get")

    async def post(self, path: str, payload: dict, kind: str = "post") -> dict:
        """POST ``payload`` as JSON to ``path`` with retries and return the JSON object of the answer; ``kind`` counts it."""
        return await self._call("POST", path, payload, kind)

    async def _call(self, method: str, path: str, payload: dict | None, kind: str) -> dict:
        import httpx

        attempts = (self.retries + 1) * len(self.replicas)
        last = ""
        async with self._slots:
            for attempt in range(attempts):
                if attempt:
                    self.stats.retries += 1
                replica = self._pick()
                wait = replica.down_until - time.monotonic()
                if wait > 0:  # every replica is paused: wait for the first to be asked again
                    await asyncio.sleep(wait)
                url = replica.url + path
                started = time.perf_counter()
                retry_after = None
                replica.in_flight += 1
                try:
                    response = await replica.client.request(method, path, json=payload)
                except httpx.TimeoutException:
                    last = f"{url}: no answer within {self.timeout:g} s"
                except httpx.TransportError as err:
                    last = f"{url}: cannot connect ({type(err).__name__}: {err})"
                else:
                    status = response.status_code
                    if status == 200:
                        try:
                            body = response.json()
                        except (json.JSONDecodeError, UnicodeDecodeError) as err:
                            reason = err.msg if hasattr(err, "msg") else err
                            last = f"{url}: the response is not valid JSON ({reason}; {len(response.content)} bytes, truncated?)"
                        else:
                            self._count(kind, started)
                            self._answered(replica)
                            if not isinstance(body, dict):
                                raise RequestFailed(f"{url}: the response is JSON but not an object")
                            return body
                        if attempt == attempts - 1:
                            self.stats.failures += 1
                            raise RequestFailed(last)
                    elif status in FATAL_STATUS:
                        raise ServerUnavailable(f"{url} answered {status}: {_message(response)}")
                    elif status in RETRY_STATUS:
                        last = f"{url} answered {status}: {_message(response)}"
                        retry_after = response.headers.get("retry-after")
                    else:
                        self._count(kind, started)
                        self._answered(replica)  # it is up: the request itself is the problem
                        self.stats.failures += 1
                        raise RequestFailed(f"{url} answered {status}: {_message(response)}")
                finally:
                    replica.in_flight -= 1
                self._failed(replica, last.removeprefix(url + ": "), retry_after)
            where = "every replica" if len(self.replicas) > 1 else "the server"
            raise ServerUnavailable(f"{last} (gave up after {attempts} attempts on {where})")

    def _count(self, kind: str, started: float) -> None:
        self.stats.requests += 1
        self.stats.seconds += time.perf_counter() - started
        self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
        if self.on_request is not None:
            self.on_request()


def _message(response) -> str:
    """The error text of a response: OpenAI's ``{"error": {"message": ...}}``, FastAPI's
    ``{"detail": ...}``, or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
        if "detail" in body:
            return json.dumps(body["detail"])[:500]
        if "message" in body:
            return str(body["message"])[:500]
    text = response.text.strip()
    return (text[:300] + "...") if len(text) > 300 else (text or "(empty body)")
