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
import random
import time
from dataclasses import dataclass, field

from labeldist.errors import ModelError

RETRY_STATUS = frozenset({429, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})


class ServerUnavailable(ModelError):
    """The server cannot serve this run (down, overloaded past the retries, wrong URL, key or
    model). Stops the run; rerunning resumes it."""


class RequestFailed(RuntimeError):
    """One request failed for a reason of its own; the item it belongs to becomes a gap."""


@dataclass
class Stats:
    """Request counts of a client: requests, retries, failures, seconds spent, and requests per kind."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    seconds: float = 0.0
    by_kind: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The counts as a JSON-ready dict, the seconds rounded to milliseconds."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "failures": self.failures,
            "request_seconds": round(self.seconds, 3),
            "by_kind": dict(self.by_kind),
        }


class ServerClient:
    """POSTs JSON to ``base_url + path``. Use inside one event loop: ``async with client:``."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 5,
        concurrency: int = 8,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
    ):
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.stats = Stats()
        self._client = None
        self._slots: asyncio.Semaphore | None = None
        self.on_request = None  # called after each finished request (a progress bar)

    async def __aenter__(self) -> ServerClient:
        import httpx

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._slots = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._client.aclose()
        self._client = None

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        # full jitter keeps many clients that failed together from retrying together
        return random.uniform(0.5, 1.0) * min(self.max_backoff, self.backoff * 2**attempt)

    async def get(self, path: str) -> dict:
        """GET ``path`` with retries and return the JSON object of the answer."""
        return await self._call("GET", path, None, "get")

    async def post(self, path: str, payload: dict, kind: str = "post") -> dict:
        """POST ``payload`` as JSON to ``path`` with retries and return the JSON object of the answer; ``kind`` counts it."""
        return await self._call("POST", path, payload, kind)

    async def _call(self, method: str, path: str, payload: dict | None, kind: str) -> dict:
        import httpx

        url = self.base_url + path
        last = ""
        async with self._slots:
            for attempt in range(self.retries + 1):
                if attempt:
                    self.stats.retries += 1
                started = time.perf_counter()
                retry_after = None
                try:
                    response = await self._client.request(method, path, json=payload)
                except httpx.TimeoutException:
                    last = f"no answer within {self.timeout:g} s"
                except httpx.TransportError as err:
                    last = f"cannot connect ({type(err).__name__}: {err})"
                else:
                    status = response.status_code
                    if status == 200:
                        try:
                            body = response.json()
                        except (json.JSONDecodeError, UnicodeDecodeError) as err:
                            reason = err.msg if hasattr(err, "msg") else err
                            last = f"the response is not valid JSON ({reason}; {len(response.content)} bytes, truncated?)"
                        else:
                            self._count(kind, started)
                            if not isinstance(body, dict):
                                raise RequestFailed(f"{url}: the response is JSON but not an object")
                            return body
                        if attempt == self.retries:
                            self.stats.failures += 1
                            raise RequestFailed(f"{url}: {last}")
                    elif status in FATAL_STATUS:
                        raise ServerUnavailable(f"{url} answered {status}: {_message(response)}")
                    elif status in RETRY_STATUS:
                        last = f"answered {status}: {_message(response)}"
                        retry_after = response.headers.get("retry-after")
                    else:
                        self._count(kind, started)
                        self.stats.failures += 1
                        raise RequestFailed(f"{url} answered {status}: {_message(response)}")
                if attempt < self.retries:
                    await asyncio.sleep(self._delay(attempt, retry_after))
            raise ServerUnavailable(f"{url}: {last} (gave up after {self.retries + 1} attempts)")

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
