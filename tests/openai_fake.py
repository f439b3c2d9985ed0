"""A small real OpenAI-compatible HTTP server on loopback, over a toy language model whose full
next-token distribution is known, so the HTTP backend's numbers can be checked exactly.

The toy model: a vocabulary of a few dozen token texts (with several ways to spell the labels:
``fear`` and ``f`` + ``ear``), and, for any context text, logits drawn from a generator seeded
by the text's hash, plus a push toward an intended answer (a JSON list of labels chosen by the
prompt's hash). Everything is deterministic, so exact label probabilities follow by brute force
from :meth:`ToyLM.distribution`.

The server speaks ``/v1/models``, ``/v1/completions`` (``logprobs``, ``echo``) and
``/v1/chat/completions`` (``logprobs``, ``top_logprobs``) in the formats of llama-cpp-python's
server (an end-of-generation token ends a response without a logprobs entry), and can be told
to fail: a queue of faults (status codes, truncated bodies, missing logprobs, a misaligned echo)
served to the next requests, or a fault for every request whose prompt contains some text.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

LABELS = ("joy", "fear", "anger", "sadness")
PIECES = [
    '["',
    '"',
    '", "',
    '"]',
    "[",
    "]",
    ",",
    ", ",
    '", ',
    ' "',
    "joy",
    "jo",
    "fear",
    "f",
    "ear",
    "fe",
    "anger",
    "an",
    "ger",
    "sad",
    "ness",
    "sadness",
    '"joy',
    "\n",
    "none",
    "yes",
    " yes",
    "no",
    " no",
]
EOS = ""  # llama.cpp reports end-of-generation tokens as empty text
MARKS = ("Labels:", "<assistant>")  # where answers start


def _vocabulary() -> list[str]:
    vocab = [EOS]
    for piece in PIECES:
        if piece not in vocab:
            vocab.append(piece)
    for code in range(32, 127):  # every printable character, so any prompt can be tokenised
        if chr(code) not in vocab:
            vocab.append(chr(code))
    return vocab


class ToyLM:
    def __init__(self, push: float = 8.0, spread: float = 1.2):
        self.vocab = _vocabulary()
        self.push = push
        self.spread = spread
        self._cache: dict[str, np.ndarray] = {}

    @staticmethod
    def intended(prompt: str) -> str:
        digest = hashlib.md5(prompt.encode()).digest()
        chosen = [label for i, label in enumerate(LABELS) if digest[i] % 3 == 0] or [LABELS[digest[5] % 4]]
        return '["' + '", "'.join(chosen) + '"]'

    @staticmethod
    def split(text: str) -> tuple[str, str]:
        """(prompt, generated): the text up to the last answer marker, and what follows it.
        The model is a function of the whole text, however it reached the server (generated,
        sent for expansion, or echoed)."""
        cut = max(text.rfind(mark) + len(mark) if mark in text else -1 for mark in MARKS)
        return (text, "") if cut < 0 else (text[:cut], text[cut:])

    def distribution(self, text: str) -> np.ndarray:
        """log P(next token | text) over the vocabulary."""
        if text not in self._cache:
            prompt, generated = self.split(text)
            seed = int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "little")
            logits = np.random.default_rng(seed).normal(0.0, self.spread, len(self.vocab))
            target = self.intended(prompt)
            if target.startswith(generated):
                rest = target[len(generated) :]
                if not rest:
                    logits[0] += self.push  # the answer is written: end
                else:
                    best = max((t for t in self.vocab if t and rest.startswith(t)), key=len)
                    logits[self.vocab.index(best)] += self.push
            self._cache[text] = logits - np.logaddexp.reduce(logits)
        return self._cache[text]

    def tokenize(self, text: str) -> list[str]:
        """Greedy longest match (the canonical segmentation)."""
        out, i = [], 0
        while i < len(text):
            best = max((t for t in self.vocab if t and text.startswith(t, i)), key=len)
            out.append(best)
            i += len(best)
        return out

    def exact(self, context: str, text: str, terminators=(), end=False, exact_end=False) -> float:
        """P(``text``, then a terminator) after ``context``, over every segmentation, by brute
        force over the full distributions (the definition the backend approximates)."""
        logp = self.distribution(context)
        total = 0.0
        for i, token in enumerate(self.vocab):
            p = math.exp(logp[i])
            if token == EOS:
                if not text and end:
                    total += p
                continue
            if not text:
                if any(token.startswith(t) for t in terminators) or (end and token.startswith("\n")):
                    total += p
                continue
            if text.startswith(token) and len(token) < len(text):
                total += p * self.exact(context + token, text[len(token) :], terminators, end, exact_end)
            elif token.startswith(text):
                extra = token[len(text) :]
                if not extra:
                    total += p * self.exact(context + token, "", terminators, end) if (terminators or end) else p
                elif terminators or end:
                    if any(extra.startswith(t) for t in terminators) or (end and extra.startswith("\n")):
                        total += p
                elif not exact_end:
                    total += p
        return total


class FakeServer:
    """``with FakeServer() as server:`` serves on ``server.url`` (``http://127.0.0.1:PORT/v1``)."""

    def __init__(self, lm: ToyLM | None = None, model: str = "toy", eos_entry: bool = False):
        self.lm = lm or ToyLM()
        self.model = model
        self.eos_entry = eos_entry  # report the end token as a logprobs entry (vLLM) or not (llama.cpp)
        self.faults: list[tuple] = []  # served to the next requests, one each
        self.fault_when: dict[str, tuple] = {}  # prompt substring -> fault for every such request
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the model side ----------------------------------------------------------------------

    def _top(self, logp: np.ndarray, k: int, taken: int | None) -> dict[str, float]:
        order = np.argsort(-logp, kind="stable")[:k]
        top = {}
        for i in order:
            # llama.cpp keys by text: same-text tokens collapse (none share text here)
            top[self.lm.vocab[i]] = float(logp[i])
        if taken is not None:
            top[self.lm.vocab[taken]] = float(logp[taken])
        return top

    def complete(
        self,
        prompt: str,
        max_tokens: int,
        k: int | None,
        echo: bool,
        shift_echo: bool = False,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> dict:
        """Greedy at temperature 0, else tokens drawn from the tempered distribution with a
        generator seeded by ``seed`` (as vLLM and llama.cpp honour a request's seed)."""
        generated, tokens, values, tops = "", [], [], []
        finish = "length"
        rng = np.random.default_rng(seed)
        for _ in range(max_tokens):
            logp = self.lm.distribution(prompt + generated)
            if temperature > 0:
                tempered = np.exp((logp - logp.max()) / temperature)
                taken = int(rng.choice(len(logp), p=tempered / tempered.sum()))
            else:
                taken = int(np.argmax(logp))
            if taken == 0 and not self.eos_entry:
                finish = "stop"
                break
            tokens.append(self.lm.vocab[taken])
            values.append(float(logp[taken]))
            tops.append(self._top(logp, k or 1, taken))
            if taken == 0:
                finish = "stop"
                break
            generated += self.lm.vocab[taken]
        text = generated
        if echo:
            pieces = self.lm.tokenize(prompt)
            echo_values, echo_tops, context = [None], [None], pieces[0]
            for piece in pieces[1:]:
                logp = self.lm.distribution(context)
                index = self.lm.vocab.index(piece)
                echo_values.append(float(logp[index]))
                echo_tops.append(self._top(logp, k or 1, index))
                context += piece
            if shift_echo:  # llama-cpp-python's misalignment for prompts without a BOS token
                echo_values = [None] + echo_values[2:] + [echo_values[-1]]
                echo_tops = [None] + echo_tops[2:] + [echo_tops[-1]]
            tokens, values, tops = pieces + tokens, echo_values + values, echo_tops + tops
            text = prompt + generated
        offsets, position = [], 0 if echo else len(prompt)
        for token in tokens:
            offsets.append(position)
            position += len(token)
        logprobs = None
        if k is not None:
            logprobs = {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
        return {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish}

    @staticmethod
    def chat_prompt(messages: list[dict]) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"

    # -- HTTP ----------------------------------------------------------------------------------

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, json.dumps({"object": "list", "data": [{"id": server.model}]}).encode())
                else:
                    self._send(404, b'{"detail": "Not Found"}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests.append(request)
                    prompt = request.get("prompt") or json.dumps(request.get("messages"))
                    fault = server.faults.pop(0) if server.faults else None
                    if fault is None:
                        fault = next((f for text, f in server.fault_when.items() if text in prompt), None)
                if fault is not None:
                    kind = fault[0]
                    if kind == "status":
                        headers = {"Retry-After": "0"} if fault[1] in (429, 503) else {}
                        self._send(fault[1], json.dumps({"error": {"message": f"injected {fault[1]}"}}).encode(), headers)
                        return
                    if kind == "hang":
                        import time

                        time.sleep(fault[1])
                if self.path == "/v1/completions":
                    k = request.get("logprobs")
                    choice = server.complete(
                        request["prompt"],
                        int(request.get("max_tokens", 16)),
                        k,
                        bool(request.get("echo")),
                        shift_echo=fault is not None and fault[0] == "shift_echo",
                        temperature=float(request.get("temperature") or 0.0),
                        seed=request.get("seed"),
                    )
                    body = {"id": "cmpl-1", "object": "text_completion", "model": server.model, "choices": [choice]}
                elif self.path == "/v1/chat/completions":
                    k = request.get("top_logprobs") if request.get("logprobs") else None
                    prompt = server.chat_prompt(request["messages"])
                    choice = server.complete(
                        prompt,
                        int(request.get("max_tokens", 16)),
                        k,
                        False,
                        temperature=float(request.get("temperature") or 0.0),
                        seed=request.get("seed"),
                    )
                    content = None
                    if choice["logprobs"] is not None:
                        lp = choice["logprobs"]
                        content = [
                            {
                                "token": t,
                                "logprob": v,
                                "bytes": list(t.encode()),
                                "top_logprobs": [{"token": a, "logprob": b, "bytes": list(a.encode())} for a, b in top.items()],
                            }
                            for t, v, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"])
                        ]
                    body = {
                        "id": "chat-1",
                        "object": "chat.completion",
                        "model": server.model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": choice["text"]},
                                "logprobs": {"content": content} if content is not None else None,
                                "finish_reason": choice["finish_reason"],
                            }
                        ],
                    }
                else:
                    self._send(404, b'{"detail": "Not Found"}')
                    return
                if fault is not None and fault[0] == "no_logprobs":
                    body["choices"][0]["logprobs"] = None
                if fault is not None and fault[0] == "bad_logprob":
                    lp = body["choices"][0]["logprobs"]
                    lp["top_logprobs"][0] = {t: math.log(0.6) for t in lp["top_logprobs"][0]}  # together above 1
                data = json.dumps(body).encode()
                if fault is not None and fault[0] == "truncate":
                    data = data[: len(data) // 2]
                self._send(200, data)

        return Handler
