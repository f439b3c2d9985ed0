"""Exact probabilities of continuation strings, many at once over one cached context.

Every continuation of an item (each label and the close, at each slot) shares the item's
context up to its slot. Instead of one forward pass per continuation, they go through the model
as a "tree" in a few batched passes: the item's key/value cache holds the context once, and a
4-D attention mask lets each continuation token see the context up to its own slot and the
earlier tokens of its own continuation, nothing else. Positions restart at each slot, so each
token gets exactly the logits it would get in a separate pass (checked against full forward
passes in the tests).

The probability of a continuation string ``s`` at a token boundary is the model's probability
of writing ``s`` there, in any tokenisation: the sum over every token sequence whose text is
``s`` (SmolLM2 writes ``anger`` as ``ang`` + ``er`` more often than as its canonical tokens;
``["`` is one token but also ``[`` then ``"``), each path's probability the product of its
tokens' probabilities in context. With terminators (``"`` after a json label; ``,``, `` and``
or the end of the answer after a list label), ``s`` must then be followed by one of them (the
next token starts with a terminator, or the last token already holds one after ``s``), so
"anger" and "angered" are disjoint events and a slot's label and stop probabilities sum to at
most 1. Without (a close such as ``]``), ``s`` only has to start what follows: a token running
past its end counts whatever it adds (``]`` also counts ``]\n``). Tokenisation prefixes less
likely than a tolerance are not extended, and their probability is returned as a bound on what
the sum leaves out.

Why one file: the tree's mask, positions and cache layout, the tokenisation lattice and the
sums over it are one algorithm; split, each half would only make sense read with the other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from labeldist.slots.lattice import FOLLOW, completes, next_reads, request_text
from labeldist.slots.requests import PRUNE_TOLERANCE, ScoreRequest
from labeldist.slots.tokens import ContextTokenizer, TokenTexts, follow_mask


class ContinuationScorer:
    """Exact probabilities of continuation strings over every tokenisation, in batched tree passes over a cached context."""

    def __init__(
        self,
        model,
        tokenizer,
        token_texts: TokenTexts,
        eos_ids: Sequence[int],
        forward_kwarg: str,
        tolerance: float = PRUNE_TOLERANCE,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.texts = token_texts
        self.eos_ids = list(eos_ids)
        self.forward_kwarg = forward_kwarg  # "cache" (transformers >= 5.x) or "past_key_values"
        self.tolerance = tolerance
        self._end_masks: dict[tuple, tuple[torch.Tensor, bool]] = {}
        self.context_tokenizer = ContextTokenizer(tokenizer, token_texts)
        # what the tree passes cost, since creation: passes, tree tokens, and positions fed
        # (tree tokens plus the padding of rows narrower than the widest)
        self.stats = {"passes": 0, "tree_tokens": 0, "fed": 0}

    # -- tokenisation ------------------------------------------------------------------------

    def tokenize_in_context(self, prefix_ids: Sequence[int], text: str) -> list[int]:
        """Canonical tokens of ``text`` after ``prefix_ids`` (:class:`ContextTokenizer`)."""
        return self.context_tokenizer.tokenize(prefix_ids, text)

    def follow_mask(self, terminators: tuple[str, ...], end: bool) -> tuple[torch.Tensor, bool]:
        """The ids of the tokens that may follow a continuation (on the model's device), and whether any may."""
        key = (terminators, end)
        if key not in self._end_masks:
            self._end_masks[key] = self._device_mask(follow_mask(self.texts, self.eos_ids, terminators, end))
        return self._end_masks[key]

    def _device_mask(self, mask: np.ndarray) -> tuple[torch.Tensor, bool]:
        # as token ids: the allowed tokens are few, and gathering them reads only those logits
        return torch.from_numpy(np.flatnonzero(mask)).to(self.model.device), bool(mask.any())

    # -- scoring -----------------------------------------------------------------------------

    @torch.no_grad()
    def score(
        self,
        context_ids: Sequence[int],
        prompt_length: int,
        cache,
        step_logprobs: torch.Tensor,
        requests: Sequence[ScoreRequest],
    ) -> np.ndarray:
        """Log-probabilities of ``requests`` after one item's context.

        ``cache`` holds the key/values of ``context_ids`` (unpadded; at least up to the largest
        boundary); ``step_logprobs[j]`` is the next-token log-distribution after
        ``context_ids[:prompt_length + j]``. The cache is returned to its length.
        """
        item = ItemContext(context_ids, prompt_length, step_logprobs, requests)
        positions = torch.arange(cache.get_seq_length())[None]
        return self.score_batch([item], cache, positions)[0]

    @torch.no_grad()
    def score_batch(self, items: Sequence[ItemContext], cache, key_positions: torch.Tensor) -> list[np.ndarray]:
        """:meth:`score` for a batch of items whose contexts sit in the rows of one cache
        (log-probabilities only; :meth:`score_batch_bounded` also returns what pruning left out)."""
        return [logprobs for logprobs, _ in self.score_batch_bounded(items, cache, key_positions)]

    @torch.no_grad()
    def score_batch_bounded(
        self, items: Sequence[ItemContext], cache, key_positions: torch.Tensor
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per item: the log-probability of each request, summed over every tokenisation of its
        text, and the probability mass pruned (an upper bound on what the sum is missing).

        ``key_positions[b, s]`` is the position of cache slot ``s`` in row ``b``'s own sequence,
        -1 for padding. The tokenisations of a text form a lattice over its bytes: from byte
        offset i, every vocabulary token whose text is a prefix of the rest leads to offset
        i + len(token), and a token that runs past the end counts when what it adds begins with
        a terminator (any token, for a text with no terminators: the text is then only the
        start of what follows). The lattice is walked level by level, one batched tree pass per
        level for the whole batch: each level's new prefixes (tokens) attend to the context
        before their cut, to their ancestors from earlier levels and to themselves, so each gets
        exactly the distribution a separate pass would give. A prefix whose probability is
        below ``self.tolerance`` is not extended; its probability is added to the pruned mass.
        Reads are gathered where the logits are, one transfer to the host per level.
        """
        layers = _Layers(self, cache, key_positions)
        try:
            return self._walk(items, list(range(len(items))), [_Tree() for _ in items], layers, None)
        finally:
            layers.close()

    @torch.no_grad()
    def score_given_answers(
        self,
        prompts: Sequence[Sequence[int]],
        cache,
        key_positions: torch.Tensor,
        first_steps: torch.Tensor,
        rows: Sequence[int],
        answers: Sequence[Sequence[int]],
        requests,
        log_weights: Sequence[float] | None = None,
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[ItemContext]]:
        """:meth:`score_batch_bounded` for given answers, several to a prompt (the marginal's
        nodes), over one copy of each prompt: prompt r sits in row r of ``cache``
        (``key_positions`` as for :meth:`score_batch_bounded`), ``first_steps[r]`` is the
        log-distribution after it, and answer a belongs to prompt ``rows[a]``. A prompt's answers
        go in as one trie (answers sharing their first tokens share those nodes) in one tree
        pass for all rows, and each answer's slots hang off its own path: no row repeats a prompt
        or pads to a longer answer, and the nodes of every prompt share each pass.
        Returns, per answer, what :meth:`score_batch_bounded` returns, and its context (prompt
        and answer, with the step log-distributions after the prompt and each answer token)."""
        trees = [_Tree() for _ in prompts]
        paths = [trees[r].add(list(tokens), len(prompts[r])) for r, tokens in zip(rows, answers)]
        layers = _Layers(self, cache, key_positions)
        try:
            normalised = None
            if any(tree.tokens for tree in trees):
                logits = layers.forward(trees, [range(len(tree.tokens)) for tree in trees])
                normalised = at_least_float32(logits.logits) - logits.lse[:, None]
            steps = []
            for r, path in zip(rows, paths):
                if not path:
                    steps.append(first_steps[r][None])
                    continue
                at = torch.tensor([logits.index(r, node) for node in path], dtype=torch.long, device=normalised.device)
                steps.append(torch.cat([first_steps[r][None], normalised[at]]))
            weights = log_weights if log_weights is not None else [0.0] * len(answers)
            items = [
                ItemContext([*prompts[r], *tokens], len(prompts[r]), item_steps, item_requests, log_weight)
                for r, tokens, item_steps, item_requests, log_weight in zip(rows, answers, steps, requests, weights)
            ]
            return self._walk(items, list(rows), trees, layers, paths), items
        finally:
            layers.close()

    def _walk(self, items, rows: list[int], trees: list[_Tree], layers: _Layers, anchors) -> list[tuple[np.ndarray, np.ndarray]]:
        """The lattice walk of :meth:`score_batch_bounded`: item ``b`` lives in batch row
        ``rows[b]`` of ``layers``' cache, its nodes in ``trees[rows[b]]``; ``anchors[b][j]``
        (when given) is the tree node of the item's answer token j, already fed: a request at
        boundary j hangs off it (seeing the prompt and that path) instead of off the context."""
        log_tolerance = math.log(self.tolerance) if self.tolerance > 0 else float("-inf")
        totals = [[[] for _ in item.requests] for item in items]
        pruned = [np.zeros(len(item.requests)) for item in items]
        specs = [[self._spec(item, request) for request in item.requests] for item in items]
        frontier = [_Path(b, r, -1, 0, 0.0) for b, item in enumerate(items) for r in range(len(item.requests))]
        # a path may walk onto an answer's own node (its canonical tokens are the answer's): that
        # node's distribution is a step of the answer whose node it is
        answer_steps = {(rows[k], node): (k, j + 1) for k, path in enumerate(anchors or []) for j, node in enumerate(path)}
        nodes = None
        while frontier:
            reads = _Reads(items, nodes, rows)
            pending = []  # (path, read id, token, bytes consumed or -1 when the read completes the text)
            for path in frontier:
                spec = specs[path.item][path.request]
                reader = path.item  # the item whose steps (or row's nodes) the read comes from
                if path.node < 0:
                    where = (-1, items[reader].requests[path.request].boundary)
                elif (rows[reader], path.node) in answer_steps:
                    reader, step = answer_steps[(rows[reader], path.node)]
                    where = (-1, step)
                else:
                    where = (0, path.node)
                if spec.exact is not None and path.offset == len(spec.exact):
                    totals[path.item][path.request].append(path.logprob)
                    continue
                terminated = spec.follow is not None
                can_follow = terminated and spec.follow[1]
                for token, length in next_reads(
                    self.texts, spec.data, path.offset, spec.exact, terminated, can_follow, spec.starts
                ):
                    if token == FOLLOW:
                        pending.append((path, reads.follow(reader, *where, spec.follow[0]), -1, -1))
                    else:
                        pending.append((path, reads.token(reader, *where, token), token, length))
            values = reads.resolve()
            frontier = []
            new_nodes: list[list[int]] = [[] for _ in trees]
            for path, read, token, length in pending:
                spec, item = specs[path.item][path.request], items[path.item]
                logprob = path.logprob + values[read]
                offset = path.offset + length
                if completes(spec.data, spec.exact, spec.follow is not None, offset, length):
                    totals[path.item][path.request].append(logprob)
                    continue
                if spec.exact is None and logprob + item.log_weight < log_tolerance:
                    pruned[path.item][path.request] += math.exp(logprob)
                    continue
                boundary = item.requests[path.request].boundary
                parent, cut = path.node, item.prompt_length + boundary
                if anchors is not None:
                    cut = item.prompt_length
                    if parent < 0 and boundary > 0:
                        parent = anchors[path.item][boundary - 1]
                row = rows[path.item]
                node, new = trees[row].add_child(parent, token, cut)
                if new:
                    new_nodes[row].append(node)
                frontier.append(_Path(path.item, path.request, node, offset, logprob))
            if frontier:
                nodes = layers.forward(trees, new_nodes)
        out = []
        for item_totals, item_pruned in zip(totals, pruned):
            logprobs = np.array([float(np.logaddexp.reduce(t)) if t else float("-inf") for t in item_totals])
            out.append((logprobs, item_pruned))
        return out

    def _spec(self, item: ItemContext, request: ScoreRequest) -> _Spec:
        if request.exact_tokens:
            prefix = list(item.context_ids[: item.prompt_length + request.boundary])
            return _Spec(b"", None, (), self.tokenize_in_context(prefix, request.text))
        data, terminated, starts = request_text(request)
        follow = self.follow_mask(request.terminators, request.end) if terminated else None
        return _Spec(data, follow, starts, None)

    @torch.no_grad()
    def answer_logprobs(self, items: Sequence[AnswerContext], cache, key_positions: torch.Tensor) -> list[np.ndarray]:
        """For each item, log P(answer | context + fill) for every fill x answer (tokens given).

        One batched tree pass: every fill's tokens and its answers' tokens hang off the item's
        context; only the distributions that answer tokens are read from are projected onto the
        vocabulary (a fill's tokens are context here, their own probabilities are not needed)."""
        trees, reads, keeps = [], [], []
        for item in items:
            tree = _Tree()
            cut = len(item.context_ids)
            read: list[list[list[int]]] = []  # per fill, per answer: the node before each token (-1: context)
            for fill, answers in zip(item.fills, item.answers):
                fill_nodes = tree.add(list(fill), cut)
                per_answer = []
                for answer in answers:
                    nodes = tree.add(list(fill) + list(answer[:-1]), cut)
                    before = [fill_nodes[-1] if fill_nodes else -1] + nodes[len(fill) :]
                    per_answer.append(before[: len(answer)])
                read.append(per_answer)
            trees.append(tree)
            reads.append(read)
            keeps.append(sorted({n for per_answer in read for nodes in per_answer for n in nodes if n >= 0}))
        nodes = None
        if any(t.tokens for t in trees):
            layers = _Layers(self, cache, key_positions)
            try:
                nodes = layers.forward(trees, [range(len(t.tokens)) for t in trees], keep=keeps)
            finally:
                layers.close()
        gather = _Reads(items, nodes)
        read_ids = [
            [
                [
                    [
                        gather.token(b, -1 if node < 0 else 0, 0 if node < 0 else node, token)
                        for token, node in zip(answer, before)
                    ]
                    for answer, before in zip(answers, per_answer)
                ]
                for answers, per_answer in zip(item.answers, read)
            ]
            for b, (item, read) in enumerate(zip(items, reads))
        ]
        values = gather.resolve()
        out = []
        for item, per_fill in zip(items, read_ids):
            table = np.zeros((len(item.fills), max((len(a) for a in item.answers), default=0)))
            for f, per_answer in enumerate(per_fill):
                for a, ids in enumerate(per_answer):
                    table[f, a] = float(values[ids].sum()) if ids else 0.0
            out.append(table)
        return out


def sliding_window(config) -> tuple[int | None, list[str] | None]:
    """The model's sliding attention window, and its per-layer attention kinds when only some
    layers slide (Gemma 2/3); (None, None) when attention is global."""
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", True) is False:
        return None, None
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        return (int(window), list(layer_types)) if "sliding_attention" in layer_types else (None, None)
    return int(window), None


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32, or as it is when wider (a float64 model's numbers stay float64)."""
    return tensor if tensor.dtype == torch.float64 else tensor.float()


def _additive(allowed: torch.Tensor, dtype) -> torch.Tensor:
    """(batch, queries, keys) booleans -> the (batch, 1, queries, keys) additive mask, on their device."""
    mask = torch.zeros(allowed.shape[0], 1, *allowed.shape[1:], dtype=dtype, device=allowed.device)
    return mask.masked_fill_(~allowed[:, None], torch.finfo(dtype).min)


class _NodeLogits:
    """The tree pass's logits (needed nodes, vocabulary) where the model left them, with each
    node's log-normaliser computed in float32 at least (in row chunks: a float32 copy of every node's
    logits at once would be nodes x vocabulary floats)."""

    CHUNK_ROWS = 1024

    def __init__(self, logits: torch.Tensor, where: dict[tuple[int, int], int]):
        self.logits = logits
        self.where = where  # (row, node) -> row of ``logits``
        lse = [torch.logsumexp(at_least_float32(chunk), dim=-1) for chunk in logits.split(self.CHUNK_ROWS)]
        self.lse = torch.cat(lse) if lse else torch.zeros(0, device=logits.device)

    def index(self, row: int, node: int) -> int:
        return self.where[(row, node)]


class _Reads:
    """Log-probabilities to read from the step distributions of a batch's items (already
    log-normalised) and from the tree pass's node logits: collected first, then gathered in a
    few device operations with one transfer to the host at the end. On a GPU, reading them one
    ``float()`` at a time would synchronise host and device at every read."""

    def __init__(self, items: Sequence, nodes: _NodeLogits | None, rows: Sequence[int] | None = None):
        self.items = items
        self.nodes = nodes
        self.rows = list(range(len(items))) if rows is None else rows  # item -> batch row of its tree nodes
        self.step_tokens: list[list[tuple[int, int, int]]] = [[] for _ in items]  # per item: (read, step, token)
        self.node_tokens: list[tuple[int, int, int]] = []  # (read, logits row, token)
        self.follows: dict[int, tuple[torch.Tensor, list[tuple[int, int, int, int]]]] = {}  # per allowed set: (ids, reads)
        self.count = 0

    def _next(self) -> int:
        self.count += 1
        return self.count - 1

    def token(self, item: int, kind: int, where: int, token: int) -> int:
        """Read id of log p(token) at ``where``: a step of the item (kind -1) or a tree node of its row (kind 0)."""
        read = self._next()
        if kind < 0:
            self.step_tokens[item].append((read, where, token))
        else:
            self.node_tokens.append((read, self.nodes.index(self.rows[item], where), token))
        return read

    def follow(self, item: int, kind: int, where: int, allowed: torch.Tensor) -> int:
        """Read id of log P(the next token is one of the ids ``allowed``) at a step or a node."""
        read = self._next()
        where = where if kind < 0 else self.nodes.index(self.rows[item], where)
        self.follows.setdefault(id(allowed), (allowed, []))[1].append((read, kind, item, where))
        return read

    def resolve(self) -> np.ndarray:
        """Every read's value, by read id (float64)."""
        ids: list[torch.Tensor] = []
        parts: list[torch.Tensor] = []
        for b, reads in enumerate(self.step_tokens):
            if reads:
                read, step, token = zip(*reads)
                parts.append(_gather_steps_tensor(self.items[b].step_logprobs, step, token))
                ids.append(torch.tensor(read))
        if self.node_tokens:
            read, at, token = (torch.tensor(c) for c in zip(*self.node_tokens))
            device = self.nodes.logits.device
            at, token = at.to(device), token.to(device)
            parts.append(at_least_float32(self.nodes.logits[at, token]) - self.nodes.lse[at])
            ids.append(read)
        for allowed, reads in self.follows.values():
            by_item: dict[int, list[tuple[int, int]]] = {}
            on_nodes: list[tuple[int, int, int]] = []
            for read, kind, row, where in reads:
                if kind < 0:
                    by_item.setdefault(row, []).append((read, where))
                else:
                    on_nodes.append((read, row, where))
            for row, pairs in by_item.items():
                steps = self.items[row].step_logprobs
                where = torch.tensor([w for _, w in pairs], device=steps.device)
                parts.append(torch.logsumexp(steps[where[:, None], allowed[None, :]], dim=-1))
                ids.append(torch.tensor([r for r, _ in pairs]))
            if on_nodes:
                read, _, at = (torch.tensor(c) for c in zip(*on_nodes))
                at = at.to(self.nodes.logits.device)
                picked = at_least_float32(self.nodes.logits[at[:, None], allowed[None, :]])
                parts.append(torch.logsumexp(picked, dim=-1) - self.nodes.lse[at])
                ids.append(read)
        values = np.full(self.count, float("-inf"))
        if parts:
            values[torch.cat(ids).numpy()] = torch.cat([at_least_float32(p) for p in parts]).cpu().double().numpy()
        return values


def _gather_steps_tensor(steps: torch.Tensor, rows: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
    device = steps.device
    return steps[torch.tensor(rows, device=device), torch.tensor(tokens, device=device)]


@dataclass
class ItemContext:
    """One item for :meth:`ContinuationScorer.score_batch`: its tokens, per-step log-distributions and requests."""

    context_ids: Sequence[int]  # prompt + generated tokens, unpadded
    prompt_length: int
    step_logprobs: torch.Tensor  # [j] = next-token log-distribution after prompt + generated[:j]
    requests: Sequence[ScoreRequest]
    # log-probability of reaching this context (a trie node's mass): tokenisations are pruned
    # when their probability times that is below the tolerance, not their probability alone
    log_weight: float = 0.0


@dataclass
class AnswerContext:
    """One item for :meth:`ContinuationScorer.answer_logprobs`."""

    context_ids: Sequence[int]  # the shared prompt part, unpadded
    step_logprobs: torch.Tensor  # (1, vocabulary): the next-token log-distribution after the context
    fills: Sequence[Sequence[int]]  # each question's tokens after the context
    answers: Sequence[Sequence[Sequence[int]]]  # per fill, each answer's tokens after it


@dataclass
class _Path:
    """A tokenisation prefix of one request's text: its tree node (-1: none yet, the context's
    own distribution comes next), bytes (or exact tokens) consumed, and log-probability."""

    item: int
    request: int
    node: int
    offset: int
    logprob: float


@dataclass
class _Spec:
    data: bytes  # the text to write
    follow: tuple[torch.Tensor, bool] | None  # the tokens that may follow it (None: it only has to start what follows)
    starts: tuple[bytes, ...]  # what a token running past the text must continue with (the terminators)
    exact: list[int] | None  # exact-token requests: these tokens and no other tokenisation


class _Layers:
    """The tree passes of one lattice walk over one batch cache: each level's new nodes are fed
    after the context and the earlier levels, seeing the context before their cut, their
    ancestors and themselves; the cache goes back to the context's length at the end."""

    def __init__(self, scorer: ContinuationScorer, cache, key_positions: torch.Tensor):
        self.scorer = scorer
        self.cache = cache
        self.device = scorer.model.device
        self.batch, self.context_length = key_positions.shape
        # every cache slot's position in its row's own sequence (-1: padding), context first
        self.key_positions = key_positions.to(self.device)
        self.slot: list[dict[int, int]] = [{} for _ in range(self.batch)]  # row -> node -> cache slot

    def forward(
        self, trees: Sequence[_Tree], new_nodes: Sequence[Sequence[int]], keep: Sequence[Sequence[int]] | None = None
    ) -> _NodeLogits:
        """Feed each row's ``new_nodes`` (parents before children); returns the logits of the
        ``keep`` nodes (default: all new ones). The vocabulary projection, most of a pass's cost
        for small models with large vocabularies, is done for those nodes alone, not for the
        padding of shorter rows: the output head's input is cut down to them by a forward
        pre-hook, which works the same in every transformers release (a 2-D ``logits_to_keep``
        is read per row only by releases after 5.17) and keeps whatever the model does after its
        head (Gemma's soft-capping) as it is."""
        scorer, device = self.scorer, self.device
        batch = self.batch
        width = max(1, max(len(nodes) for nodes in new_nodes))
        filled = self.key_positions.shape[1]
        scorer.stats["passes"] += 1
        scorer.stats["tree_tokens"] += sum(len(nodes) for nodes in new_nodes)
        scorer.stats["fed"] += batch * width
        tokens = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.full((batch, width), -1, dtype=torch.long)
        cuts = torch.zeros((batch, width), dtype=torch.long)  # padding sees no context
        # which earlier tree slots (and which of this level's) each new node sees
        earlier = torch.zeros((batch, width, filled - self.context_length), dtype=torch.bool)
        own = torch.zeros((batch, width, width), dtype=torch.bool)
        for b, (tree, nodes) in enumerate(zip(trees, new_nodes)):
            for k, node in enumerate(nodes):
                self.slot[b][node] = filled + k
            for k, node in enumerate(nodes):
                tokens[b, k] = tree.tokens[node]
                positions[b, k] = tree.positions[node]
                cuts[b, k] = tree.cuts[node]
                parent = tree.parents[node]
                while parent >= 0:  # ancestors from earlier passes, or fed before it in this one
                    slot = self.slot[b][parent]
                    if slot >= filled:
                        own[b, k, slot - filled] = True
                    else:
                        earlier[b, k, slot - self.context_length] = True
                    parent = tree.parents[parent]
            own[b, range(width), range(width)] = True  # padding attends to itself only
        keys = self.key_positions
        context = (keys[:, None, : self.context_length] >= 0) & (
            keys[:, None, : self.context_length] < cuts.to(device)[:, :, None]
        )
        allowed = torch.cat([context, earlier.to(device), own.to(device)], dim=2)
        positions = positions.to(device)
        dtype = scorer.model.dtype if scorer.model.dtype.is_floating_point else torch.float32
        mask: torch.Tensor | dict[str, torch.Tensor] = _additive(allowed, dtype)
        window, layer_types = sliding_window(scorer.model.config)
        all_keys = torch.cat([keys, positions], dim=1)
        if window is not None:
            # a 4-D mask is used as given, so sliding-window layers need their window drawn in
            near = (positions.clamp(min=0)[:, :, None] - all_keys[:, None, :]) < window
            sliding = _additive(allowed & near, dtype)
            if layer_types:
                mask = {kind: sliding if kind == "sliding_attention" else mask for kind in set(layer_types)}
            else:
                mask = sliding
        needed = new_nodes if keep is None else keep
        where = {(b, node): k for k, (b, node) in enumerate((b, node) for b, nodes in enumerate(needed) for node in nodes)}
        rows = torch.tensor([b for b, _ in where], dtype=torch.long, device=device)
        columns = torch.tensor([self.slot[b][node] - filled for b, node in where], dtype=torch.long, device=device)
        head = scorer.model.get_output_embeddings()
        handle = None
        if head is not None and where:

            def needed_only(module, args):
                return (args[0][rows, columns][None], *args[1:])

            handle = head.register_forward_pre_hook(needed_only)
        try:
            out = scorer.model(
                input_ids=tokens.to(device),
                position_ids=positions.clamp(min=0),
                attention_mask=mask,
                use_cache=True,
                **{scorer.forward_kwarg: self.cache},
            )
        finally:
            if handle is not None:
                handle.remove()
        self.key_positions = all_keys
        logits = out.logits[0] if handle is not None else out.logits[rows, columns]
        return _NodeLogits(logits, where)

    def close(self) -> None:
        # a negative count removes that many tokens in both the 4.x and 5.x cache APIs
        extra = self.cache.get_seq_length() - self.context_length
        if extra > 0:
            self.cache.crop(-extra)


class _Tree:
    """Continuations as a trie laid out in one sequence: continuations from the same cut that
    share leading tokens (every label of a slot shares its opening, ``", "``) share those
    nodes. Each node attends to the context before its cut, to its ancestors and to itself;
    its position is its cut plus its depth, as if it were a separate pass."""

    def __init__(self):
        self.tokens: list[int] = []
        self.positions: list[int] = []
        self.parents: list[int] = []
        self.cuts: list[int] = []
        self._nodes: dict[tuple, int] = {}

    def add(self, feed: list[int], cut: int) -> list[int]:
        """Node index of each token of ``feed`` after ``cut``."""
        nodes = []
        parent = -1
        for token in feed:
            parent, _ = self.add_child(parent, token, cut)
            nodes.append(parent)
        return nodes

    def add_child(self, parent: int, token: int, cut: int) -> tuple[int, bool]:
        """The node of ``token`` under ``parent`` (-1: at the cut), and whether it is new."""
        key = (cut, parent, token)
        node = self._nodes.get(key)
        if node is not None:
            return node, False
        node = len(self.tokens)
        self._nodes[key] = node
        self.tokens.append(token)
        self.positions.append(cut if parent < 0 else self.positions[parent] + 1)
        self.parents.append(parent)
        self.cuts.append(cut)
        return node, True
