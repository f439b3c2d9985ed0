"""``labeldist run --engine ray``: the batches of a run spread over Ray workers, one run folder.

Each worker is a Ray actor that loads the model once (the run's backend: hf or vllm, on the GPU
or GPUs Ray gives it, or on CPU threads) and labels whole batches with the same function as a plain run
(:func:`labeldist.runs.labelling.label_and_store`), writing each batch as one part of the run
folder: atomically, under a name no other worker or attempt uses (``part-NNNNN-<attempt>``). The
driver (the ``labeldist run`` process) holds the folder's lock, owns run.json, hands out the
batches and keeps the bar. So the run folder must be one every worker sees: on one machine
always; over several nodes, a shared file system.

Faults: a worker that dies (killed, out of memory, its node lost) fails its batch with an actor
error; the driver gives the batch to another worker, unless the dead one's part was already
written (parts appear whole or not at all), and Ray restarts the dead worker (up to
``max_restarts`` times, reloading the model). An error in labelling itself (bad data, a prompt
too long) is not retried: it stops the run with its own message. A killed driver takes its
workers with it; the parts written stay, and rerunning the command resumes from the recorded
ids like any run. Should a batch still be recorded twice (a worker cut off from the driver that
finishes after all), the run keeps each id's first record (:meth:`RunStore.drop_duplicates`).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from labeldist.errors import ConfigError, ModelError
from labeldist.runs.labelling import BatchOutcome, Labeller, label_and_store

# environment a worker needs to find the same models offline as the driver
FORWARDED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "LABELDIST_CACHE", "XDG_CACHE_HOME")


@dataclass(frozen=True)
class RayChoice:
    """``--engine ray``: ``workers`` actors (default: one per GPU of the cluster, else one), on
    the cluster at ``address`` (default: a local one started for the run and stopped after it);
    each dead worker is restarted up to ``max_restarts`` times."""

    workers: int | None = None
    address: str | None = None
    max_restarts: int = 3
    gpus_per_worker: int = 1  # on a cluster with GPUs: those one worker's model spans (vLLM's tensor_parallel_size)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--engine ray", None, "needs Ray, an optional extra: pip install 'labeldist[ray]' (or pip install ray)"
        ) from None
    return ray


class LabelWorker:
    """One Ray actor's state: the backend, loaded once."""

    def __init__(self, backend_factory: Callable, config, threads: int | None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.backend = backend_factory(config)
        self.where = f"pid {os.getpid()} on {socket.gethostname()}"

    def describe(self) -> tuple[dict, str]:
        """The model as loaded here, and where this worker runs."""
        return self.backend.describe(), self.where

    def label(self, labeller: Labeller, out: str, part: str, items, prompts) -> BatchOutcome:
        """Label one batch and write it as the part ``part`` of the run folder ``out``."""
        if not (Path(out) / "run.json").is_file():
            # the driver wrote run.json before handing out batches: this node does not see the folder
            raise ConfigError(
                "--out",
                None,
                f"the Ray worker ({self.where}) does not see the run folder {out}: with --engine ray over "
                "several nodes, --out must be on a file system every node shares",
            )
        outcome = label_and_store(labeller, self.backend, out, items, prompts, part=part)
        outcome.worker = self.where
        return outcome

    def precision_check(self, prompts, labels, fmt, answers) -> dict:
        """The backend's float32 check (Backend.precision_check)."""
        return self.backend.precision_check(prompts, labels, fmt, answers)

    def too_long(self, prompts, reserve: int) -> str | None:
        """The backend's context check (Backend.too_long)."""
        return self.backend.too_long(prompts, reserve)

    def pid(self) -> int:
        """This worker's process id (the fault tests kill it)."""
        return os.getpid()


class RayEngine:
    """Labels a run's batches on Ray actors; see the module docstring for faults and resume."""

    name = "ray"

    def __init__(self, choice: RayChoice, backend_factory: Callable, config):
        ray = self.ray = _import_ray()
        self.choice = choice
        self.connected_here = not ray.is_initialized()  # else the caller's connection (a test's cluster)
        if not ray.is_initialized():
            if choice.address:
                _check_reachable(choice.address)
            env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
            try:
                ray.init(
                    address=choice.address,
                    include_dashboard=False,
                    logging_level="WARNING",
                    log_to_driver=False,
                    runtime_env={"env_vars": env} if env else None,
                )
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = choice.address or "a local cluster"
                hint = ""
                if choice.address and os.environ.get("RAY_AUTH_MODE") is None:
                    # Ray turns token authentication on for clusters started where a token
                    # exists, but a driver given an address only uses it when told
                    hint = "; if the cluster uses token authentication, set RAY_AUTH_MODE=token here too"
                raise ModelError(f"--engine ray: cannot start or reach {where}: {_first_line(err)}{hint}") from err
        try:  # from here on, a failure stops the workers and leaves the cluster as it was
            self._start_workers(choice, backend_factory, config)
        except BaseException:
            self.close()
            raise

    def _start_workers(self, choice: RayChoice, backend_factory: Callable, config) -> None:
        """Start the actors, each loading the model, and wait until every one has loaded it."""
        ray = self.ray
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        cpus = int(resources.get("CPU", 1))
        per_worker = choice.gpus_per_worker
        workers = choice.workers or max(gpus // per_worker, 1)
        if gpus:
            if workers * per_worker > gpus:
                raise ConfigError(
                    "--workers", None, f"{workers} workers of {per_worker} GPUs each, but the Ray cluster has {gpus} GPUs"
                )
            options, threads = {"num_gpus": per_worker, "num_cpus": 1}, None
        else:
            threads = max(1, cpus // workers)  # each worker's torch threads: the cluster's CPUs shared out
            if workers > cpus:
                raise ConfigError("--workers", None, f"{workers} workers, but the Ray cluster has {cpus} CPUs")
            options = {"num_cpus": threads}
        remote = ray.remote(LabelWorker).options(max_restarts=choice.max_restarts, max_task_retries=0, **options)
        if Path(config.model).exists():  # a model folder: the workers' working directory is not the driver's
            config = dataclasses.replace(config, model=str(Path(config.model).resolve()))
        self.actors = [remote.remote(backend_factory, config, threads) for _ in range(workers)]
        self.resources = {"workers": workers, "gpus_per_worker": per_worker if gpus else 0, "threads_per_worker": threads}
        self.attempt = secrets.token_hex(3)
        self.lost_batches = 0
        self.dead: set[int] = set()  # actors whose restarts are used up
        try:
            loaded = ray.get([actor.describe.remote() for actor in self.actors])
        except ray.exceptions.RayTaskError as err:
            raise _cause(err) from None
        except ray.exceptions.RayActorError as err:
            raise ModelError(f"--engine ray: a worker died while loading the model: {_first_line(err)}") from None
        self.model = loaded[0][0]
        self.where = [where for _, where in loaded]  # by actor: its process now, to see restarts
        self.hosts = sorted({where.split(" on ", 1)[1] for where in self.where})
        self.worker_deaths = 0

    def too_long(self, prompts, reserve: int) -> str | None:
        """The context check, asked of the first worker (they all load the same model)."""
        return self.ray.get(self.actors[self._alive()[0]].too_long.remote(prompts, reserve))

    def describe(self) -> dict:
        """The model as the first worker loaded it (run.json's ``model``)."""
        return self.model

    def summary(self) -> dict:
        """What run.json's attempt records of the engine: workers, hosts, batches redone."""
        return {
            "name": self.name,
            "address": self.choice.address or "local",
            **self.resources,
            "hosts": self.hosts,
            "lost_batches": self.lost_batches,
            "worker_deaths": self.worker_deaths,
        }

    def precision_check(self, prompts, labels, fmt, answers) -> dict:
        """The float32 check, on the first worker alive (waiting for one that is restarting)."""
        for actor in self._alive():
            try:
                call = self.actors[actor].precision_check.options(max_task_retries=-1)
                return self.ray.get(call.remote(prompts, labels, fmt, answers))
            except self.ray.exceptions.RayActorError:
                self.dead.add(actor)
        raise ModelError("--engine ray: no worker left for the precision check")

    def _alive(self) -> list[int]:
        return [i for i in range(len(self.actors)) if i not in self.dead]

    def run(self, batches: Sequence[tuple], labeller: Labeller, out: str | Path) -> Iterator[BatchOutcome]:
        """Hand out ``batches`` to free workers, one each at a time; yield each batch's outcome as
        it is stored (not in order). A batch whose worker died is handed out again."""
        ray = self.ray
        from labeldist.runs.store import RunStore

        out = Path(out).resolve()  # the workers' working directory is not the driver's
        store = RunStore(out)
        first = store.next_part_number()
        names = [f"part-{first + index:05d}-{self.attempt}" for index in range(len(batches))]
        shared = ray.put(labeller)  # sent to each worker once, not with every batch
        pending = deque(range(len(batches)))
        free = deque(self._alive())
        in_flight: dict = {}  # ref -> (actor, batch index; None for a worker's return after a restart)
        while pending or any(index is not None for _, index in in_flight.values()):
            while pending and free:
                actor, index = free.popleft(), pending.popleft()
                items, prompts = batches[index]
                ref = self.actors[actor].label.remote(shared, str(out), names[index], items, prompts)
                in_flight[ref] = (actor, index)
            if not in_flight:
                raise ModelError(
                    f"--engine ray: every worker died (each restarted {self.choice.max_restarts} times); "
                    f"{len(pending)} batches not labelled; rerun the same command to resume"
                )
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor, index = in_flight.pop(ref)
            if index is None:  # a dead worker restarted (model reloaded), or its restarts ran out
                try:
                    self.where[actor] = ray.get(ref)[1]
                    free.append(actor)
                except ray.exceptions.RayActorError:
                    self.dead.add(actor)
                continue
            try:
                outcome = ray.get(ref)
            except ray.exceptions.RayTaskError as err:
                raise _cause(err) from None
            except ray.exceptions.RayActorError:
                self.worker_deaths += 1
                # Ray restarts it (up to max_restarts); a call with retries waits until it is back,
                # where a batch sent now would fail at once
                back = self.actors[actor].describe.options(max_task_retries=-1).remote()
                in_flight[back] = (actor, None)
                written = store.records_dir / f"{names[index]}.parquet"
                if written.is_file():  # it died after writing its part: the batch is done
                    yield _outcome_of(written)
                else:
                    self.lost_batches += 1
                    pending.append(index)
                continue
            if outcome.worker != self.where[actor]:
                self.worker_deaths += 1  # it died between batches and Ray restarted it
                self.where[actor] = outcome.worker
            free.append(actor)
            yield outcome

    def close(self) -> None:
        """Stop the workers; disconnect from the cluster (stopping it when the run started it)."""
        ray = self.ray
        for actor in getattr(self, "actors", []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.connected_here and ray.is_initialized():
            ray.shutdown()


def _check_reachable(address: str, seconds: float = 10.0) -> None:
    """Fail in one line, at once, when nothing answers at a cluster's HOST:PORT (Ray itself
    retries its connection for minutes). "auto" and ray:// (Ray Client) addresses are Ray's to
    resolve."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as err:
        raise ModelError(
            f"--engine ray: nothing answers at --address {address} ({err.strerror or err}); "
            "start the cluster there first (ray start --head prints its address)"
        ) from None


def _outcome_of(part: Path) -> BatchOutcome:
    import pyarrow.parquet as pq

    return BatchOutcome(ids=pq.read_table(part, columns=["id"]).column("id").to_pylist())


def _cause(err) -> BaseException:
    """The exception raised inside a worker (a DataError, a ModelError), as the run's own error."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else ModelError(_first_line(err))


def _first_line(err) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
