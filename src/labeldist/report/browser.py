"""Open a report in headless Chromium, take a full-page screenshot, and check its figures.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON
messages ending in a NUL byte, commands on the child's fd 3, replies on its fd 4), so no port
is opened and nothing beyond the standard library and Pillow is needed. The page is loaded
from a ``file://`` URL; every request it makes is recorded, and one that leaves the file (not
``file:`` or ``data:``) is an error, since a report must open offline.

A figure counts as rendered when the browser decoded it (``complete`` with a natural width)
and its box in the screenshot is not blank: enough pixels differ from white, and not all
pixels are one colour.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from labeldist import atomic
from labeldist.errors import LabeldistError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--hide-scrollbars",
    "--disable-dev-shm-usage",
)

IMAGES_JS = """(() => {
  const heading = el => {  // the nearest heading before an element, to name it in an error
    for (let e = el; e; e = e.parentElement)
      for (let p = e.previousElementSibling; p; p = p.previousElementSibling)
        if (/^H[1-4]$/.test(p.tagName)) return p.textContent.trim();
    return "";
  };
  return JSON.stringify({
    height: Math.ceil(document.documentElement.scrollHeight),
    width: Math.ceil(document.documentElement.scrollWidth),
    viewport: window.innerWidth,
    images: Array.from(document.images).map(img => {
      const r = img.getBoundingClientRect();
      return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
              x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
              minFontPx: parseFloat(img.dataset.minFontPx || "NaN")};
    }),
    // boxes whose content is wider than they are: a table that scrolls sideways hides columns
    overflowing: Array.from(document.querySelectorAll("body *"))
      .filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== "visible")
      .map(e => ({tag: e.tagName.toLowerCase(), heading: heading(e), content: e.scrollWidth, box: e.clientWidth})),
  });
})()"""

# the smallest text a figure may show on screen, in CSS pixels, before the check calls it illegible
MIN_LEGIBLE_PX = 8.0


class BrowserError(LabeldistError, RuntimeError):
    """No browser, a browser that failed, or a report that did not render (the command line
    prints it as one line, like every labeldist error)."""


def find_browser() -> str | None:
    """Path of a Chromium-family browser, or None (``LABELDIST_CHROMIUM`` overrides)."""
    explicit = os.environ.get("LABELDIST_CHROMIUM")
    if explicit:
        return explicit if shutil.which(explicit) else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Pipe:
    """A DevTools session over Chromium's debugging pipe."""

    def __init__(self, browser: str, profile: str):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire():  # in the child, before exec: the protocol's fixed descriptors
            # move both ends above 4 first: either may itself be 3 or 4, and dup2 onto the same
            # number would keep its close-on-exec flag
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3, inheritable=True)
            os.dup2(high_w, 4, inheritable=True)

        self.process = subprocess.Popen(
            [browser, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=wire,
            close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read(timeout)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_child], [], [], left)[0]:
                raise BrowserError(f"the browser did not answer within {timeout:.0f} s")
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                err = self.process.stderr.read().decode(errors="replace").strip().splitlines()[-3:] if self.process.stderr else []
                raise BrowserError("the browser closed its pipe" + (": " + " | ".join(err) if err else ""))
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass


def screenshot(
    html_path: str | Path, png_path: str | Path, width: int = 1280, browser: str | None = None, timeout: float = 90
) -> dict:
    """Load ``html_path``, save a full-page PNG to ``png_path``; returns the page's size, its
    images' boxes and decode state, and the URLs it requested."""
    browser = browser or find_browser()
    if not browser:
        raise BrowserError("no Chromium found (install the Debian package chromium, or set LABELDIST_CHROMIUM)")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="labeldist-chromium-") as profile:
        pipe = _Pipe(browser, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            pipe.send("Page.enable", session=session)
            pipe.send("Network.enable", session=session)
            pipe.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                session,
            )
            pipe.send("Page.navigate", {"url": url}, session)
            pipe.wait_for("Page.loadEventFired", timeout)
            page = json.loads(
                pipe.send("Runtime.evaluate", {"expression": IMAGES_JS, "returnByValue": True}, session)["result"]["value"]
            )
            shot = pipe.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": max(width, page["width"]), "height": page["height"], "scale": 1},
                },
                session,
                timeout,
            )
            requests = [e["params"]["request"]["url"] for e in pipe.events if e.get("method") == "Network.requestWillBeSent"]
        finally:
            pipe.close()
    atomic.write_bytes(png_path, base64.b64decode(shot["data"]))
    page["requests"] = requests
    return page


def blank(pixels) -> bool:
    """True when an RGB image region shows nothing: almost all white, or one flat colour."""
    import numpy as np

    array = np.asarray(pixels, dtype=float)
    if array.size == 0:
        return True
    inked = (array < 235).any(axis=-1).mean()
    return bool(inked < 0.005 or array.std() < 2.0)


def check_report(html_path: str | Path, png_path: str | Path, browser: str | None = None) -> dict:
    """Screenshot the report and check that it made no network request, that nothing is wider
    than the window (the page, or a table scrolling sideways), and that every figure rendered
    (decoded, not blank in the screenshot) with its smallest text at least
    :data:`MIN_LEGIBLE_PX` high; raises :class:`BrowserError` if not."""
    from PIL import Image

    page = screenshot(html_path, png_path, browser=browser)
    outside = [u for u in page["requests"] if not u.startswith(("file:", "data:", "about:"))]
    if outside:
        raise BrowserError(f"{html_path}: the page requested {len(outside)} URL(s) outside the file: {outside[:3]}")
    if not page["images"]:
        raise BrowserError(f"{html_path}: no figures in the page")
    if page["width"] > page["viewport"]:
        raise BrowserError(f"{html_path}: the page is {page['width']} px wide, wider than the {page['viewport']} px window")
    for box in page["overflowing"]:
        raise BrowserError(
            f"{html_path}: a {box['tag']} under {box['heading']!r} is {box['content']} px wide in a {box['box']} px box "
            "(it scrolls sideways: part of it is hidden)"
        )
    for number, box in enumerate(page["images"], start=1):
        if box["naturalWidth"] and box.get("minFontPx") is not None:  # a figure of ours (others carry null)
            shown = box["minFontPx"] * box["width"] / box["naturalWidth"]
            box["min_font_px"] = shown
            if shown < MIN_LEGIBLE_PX:
                raise BrowserError(
                    f"{html_path}: figure {number} ({box['alt']}) is drawn at {box['width']:.0f} of its "
                    f"{box['naturalWidth']} px: its smallest text is {shown:.1f} px high, below {MIN_LEGIBLE_PX:g}"
                )
    with Image.open(png_path) as image:
        rgb = image.convert("RGB")
        for number, box in enumerate(page["images"], start=1):
            if not box["complete"] or not box["naturalWidth"]:
                raise BrowserError(f"{html_path}: figure {number} ({box['alt']}) was not decoded by the browser")
            region = rgb.crop((int(box["x"]), int(box["y"]), int(box["x"] + box["width"]), int(box["y"] + box["height"])))
            box["blank"] = blank(region)
            if box["blank"]:
                raise BrowserError(f"{html_path}: figure {number} ({box['alt']}) is blank in the screenshot {png_path}")
    return page
