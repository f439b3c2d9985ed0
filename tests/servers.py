"""A real server a test starts on loopback (the llama.cpp and vLLM OpenAI-compatible servers): in
its own process group so that a test can SIGKILL it whole, tied to pytest so that it never
outlives the test run (conftest.die_with_pytest), and startable again on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import die_with_pytest

SUBSET = Path(__file__).resolve().parents[1] / "src" / "labeldist" / "resources" / "goemotions_subset"


def run_argv(out: Path, *, limit: int) -> list[str]:
    """`labeldist run` over the bundled GoEmotions subset's first ``limit`` dev items (paper-7, 10 shots), into ``out``."""
    return [
        "run",
        "--dataset",
        "goemotions",
        "--data-dir",
        str(SUBSET),
        "--split",
        "dev",
        "--grouping",
        "paper-7",
        "--shots",
        "10",
        "--seed",
        "0",
        "--limit",
        str(limit),
        "--quiet",
        "--out",
        str(out),
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackServer:
    """A server process on 127.0.0.1 at ``url`` (``.../v1``); ``argv(port)`` is its command line,
    ``name`` how messages and log files call it. Ready once ``/v1/models`` answers 200."""

    def __init__(self, name: str, argv, log_dir: Path, *, env: dict | None = None, stop_seconds: float = 15.0):
        self.name = name
        self.argv = argv
        self.env = env
        self.stop_seconds = stop_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_dir = log_dir
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, timeout: float = 180.0) -> None:
        self.starts += 1
        log = self.log_dir / f"{self.name.replace(' ', '-')}-{self.starts}.log"
        with open(log, "wb") as handle:
            self.process = subprocess.Popen(
                self.argv(self.port),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_pytest,
                env=self.env,
            )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the {self.name} exited ({self.process.returncode}): {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the {self.name} did not answer within {timeout:g} s: {log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crashed or preempted server."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_seconds)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill_during(self, argv: list[str], out: Path, *, timeout: float, restart_timeout: float = 180.0) -> tuple[int, str]:
        """Run ``labeldist argv`` (writing the run folder ``out``) in a process of its own, SIGKILL
        this server once the run has written its first part and gone on into the next item's
        requests, and start the server again; the run's exit status and standard error."""
        command = [sys.executable, "-m", "labeldist", *argv]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline and process.poll() is None:
                if any((out / "records").glob("part-*.parquet")):
                    time.sleep(1.0)  # into the next item's requests
                    self.kill()
                    break
                time.sleep(0.05)
            _, err = process.communicate(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
            if self.process is None or self.process.poll() is not None:
                self.start(timeout=restart_timeout)
        return process.returncode, err
