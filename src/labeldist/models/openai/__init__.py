"""A backend that talks to an OpenAI-compatible HTTP server: vLLM, llama.cpp's server
(``llama-cpp-python[server]``), TGI, SGLang, or a hosted API.

Such a server reports, per generated position, only the top-k next tokens (k <= 20 on most),
so per-slot label probabilities are bounded from them (:mod:`labeldist.models.topk`) and made
exact where the server lets us look further:

1. the answer is generated greedily with ``logprobs``; each generated token gives the top-k at
   one node of the text tree;
2. on the completions endpoint, every node a label still needs (the text after a label's first
   token, or after a whole label, where its terminator is decided) is *expanded*: one request
   for that exact text with ``max_tokens=1`` returns the top-k there. With a prefix cache
   (vLLM ``--enable-prefix-caching``, llama.cpp's prompt reuse) each such request costs a
   handful of tokens. Rounds repeat until every label's bounds are within ``tolerance`` or
   nothing more can be learnt;
3. a label whose first token is outside the top-k can only be bounded by the unreported mass;
   with ``exact_tails`` such labels are scored by echoing the prompt with ``logprobs``
   (``echo``), which returns the log-probability of every prompt token whatever its rank.
   Echo is costly on llama-cpp-python (it ranks the whole vocabulary at every prompt token, ~30
   ms a token on 2 cores), cheap on vLLM, and absent on chat-only APIs; each echo is checked
   against the probabilities already known before it is trusted.

The chat endpoint (no client-side chat template) allows step 1 only: bounds from the
generated path, the rest recorded as upper bounds (``coverage`` < 1 in the run).

Text, not token ids, crosses the wire: the server tokenises ``prompt + text`` itself, which may
segment a context differently from the tokens it generated. The numbers are then those of the
same text in another segmentation, a difference documented in docs/scale.md.

The package: ``settings`` (ServerSettings, request state), ``backend`` (OpenAIBackend: client, probe,
generation), ``expansion`` (top-k expansion and echo), ``scoring`` (continuation scoring)."""

from labeldist.models.openai.backend import OpenAIBackend
from labeldist.models.openai.settings import ServerSettings

__all__ = ["OpenAIBackend", "ServerSettings"]
