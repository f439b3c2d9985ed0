import os
from pathlib import Path

import pytest

# Never let a test reach for the Hugging Face hub: a missing model must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def die_with_pytest() -> None:
    """``preexec_fn`` of a server a test starts: the kernel sends it SIGTERM when the process that
    started it ends, however it ends (Linux's PR_SET_PDEATHSIG), so a pytest killed with SIGKILL
    leaves no server behind. The servers start their own process group (``start_new_session``)
    so that a test can kill them whole; this is what ties them to pytest all the same."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def shared(*parts: str) -> Path:
    """A path under ../shared/data; tests using it are skipped (with the reason) when absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/data is only beside the project on dev/CI machines)")
    return path


class TinyRuns:
    """The trained tiny Llama, its generated data tables and its `labeldist run` folders, each
    built once per test session and shared by every module that asks for the same one."""

    def __init__(self, factory: pytest.TempPathFactory):
        self._factory = factory
        self._built: dict[tuple, Path] = {}
        self._trained = None

    @property
    def trained(self):
        """The trained tiny model (trained once, cached under the session's base temp folder)."""
        from tiny_models import get_trained_tiny_llama

        if self._trained is None:
            self._trained = get_trained_tiny_llama(self._factory.getbasetemp() / "tiny-model-cache")
        return self._trained

    def tables(self, splits: tuple[tuple[str, int, int], ...], *, votes: bool = True) -> Path:
        """A folder of generated tables, one per (split, n, seed): three annotators per item
        (``votes``) or one label list per item."""
        from tiny_models import write_label_tables, write_vote_tables

        key = ("tables", splits, votes)
        if key not in self._built:
            folder = self._factory.mktemp("tiny-data")
            if votes:
                write_vote_tables(folder, self.trained.labels, splits)
            else:
                write_label_tables(folder, [(split, seed, n) for split, n, seed in splits])
            self._built[key] = folder
        return self._built[key]

    def argv(self, data: Path, split: str) -> list[str]:
        """`labeldist run` arguments for the tiny model over ``data``'s ``split`` (no --out)."""
        from tiny_models import tiny_run_argv

        votes = any(key[0] == "tables" and key[2] and path == data for key, path in self._built.items())
        templates = self._factory.getbasetemp() / "tiny-templates"
        templates.mkdir(exist_ok=True)
        argv = tiny_run_argv(self.trained, data, split, templates)
        return [*argv, "--option", "annotator_column=annotator"] if votes else argv

    def run(self, data: Path, split: str, *extra: str) -> Path:
        """The run folder of ``labeldist run`` over ``data``'s ``split`` with ``extra`` arguments."""
        from labeldist.cli import main

        key = ("run", data, split, extra)
        if key not in self._built:
            out = self._factory.mktemp(f"tiny-run-{split}") / "run"
            assert main([*self.argv(data, split), *extra, "--out", str(out)]) == 0
            self._built[key] = out
        return self._built[key]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyRuns:
    """Shared tiny-model runs (see :class:`TinyRuns`)."""
    return TinyRuns(tmp_path_factory)


# The slow tier, run by `make test` (CI) but not by `make test-fast`: real pretrained models end
# to end, servers, Ray clusters, the README tour, the benchmarks' smoke runs, and the
# SentencePiece variants of the brute-force checks whose byte-level/BPE variants stay fast.
# Everything else is the fast tier: every package's behaviour on tiny models and fixtures.
SLOW = (
    "tests/test_benchmarks.py",  # each benchmark script in its smoke mode (3-4 minutes)
    "tests/test_marginal_smollm2.py",  # the marginal against sampling on SmolLM2 (2.5 minutes)
    "tests/test_docs.py::test_the_readme_tour_runs_in_order",  # every README command, in order (2 minutes)
    "tests/test_ray.py",  # local Ray clusters, workers killed mid-run
    "tests/test_slots_smollm2.py",  # the exact slots on the real SmolLM2
    "tests/test_openai_llamacpp.py",  # the real llama.cpp server on loopback
    "tests/test_context.py",  # SmolLM2 and a 12,000-token item
    "tests/test_exact_backend.py::test_forced_answers_in_every_format[llama-sp]",
    "tests/test_exact_backend.py::test_forced_answers_in_every_format[gemma3-sp]",
    "tests/test_slots_tokenizers.py::test_slot_properties[llama-sp]",
    "tests/test_slots_tokenizers.py::test_slot_properties[gemma3-sp]",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)
