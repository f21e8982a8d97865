"""QES population evaluation on Ray: one model copy per worker; only seeds, returns and sparse updates travel.

Evolution strategies parallelise by sharing seeds (Salimans et al. 2017): a member ``(pair, sign)`` of a
generation is fully described by four integers, since its noise is regenerated from (seed, generation,
pair, tensor) by :meth:`qes_trainer.qes.QESOptimizer.perturbation`. So each worker (a Ray actor,
:class:`QESWorker`) holds

* its own private, writable copy of the GGUF model (in ``/dev/shm`` when there is one), brought to the
  run's current codes at start (base model + the cumulative trained diff, so ``--resume`` works and a
  replacement worker joins a running run),
* its own llama.cpp model and context (``use_extra_bufts=False``, the run's thread count),
* a noise-only :class:`~qes_trainer.qes.QESOptimizer` (no residual: it only regenerates perturbations),

and evaluates whole members with :func:`qes_trainer.population.evaluate_member` (perturb, play the
generation's episodes, restore). The driver (:class:`RayPopulation`) hands out members one at a time to
idle workers (so faster workers take more), collects :class:`~qes_trainer.population.MemberOutcome`
objects (returns and timing), computes the update itself and sends every worker only the codes that
changed (:func:`pack_update`), never the model.

Failures: a worker that dies (process crash, node loss, ``ray.kill``) or exceeds ``member_timeout`` on a
member is replaced by a new worker built from the base model and the current diff, and the member goes
back to the queue; a member that fails on ``max_attempts`` workers stops the run with an error. The
update is computed only from a complete population, so which worker evaluated which member changes
nothing: for the same seeds the trained model is byte-identical to the single-process trainer's.
"""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from policies.llm.engine import default_thread_count
from qes_trainer.fitness import FitnessSettings
from qes_trainer.population import Member, MemberOutcome
from qes_trainer.qes import QESOptimizer, SparseDelta

__all__ = ["RayPopulation", "QESWorker", "RayMissingError", "require_ray", "pack_update", "unpack_update",
           "default_threads"]

INSTALL_HINT = 'pip install "society-env[distributed]"'


class RayMissingError(RuntimeError):
    """``--workers`` / ``--ray-address`` without Ray installed."""


def require_ray():
    """Import Ray, or fail with how to install it."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(f"--workers and --ray-address evaluate the population on Ray, which is not installed: "
                              f"{INSTALL_HINT}") from None
    return ray


def default_threads(threads: int | None, local_workers: int = 0) -> int:
    """The llama.cpp thread count, resolved once by the driver so every worker uses the same one
    (llama.cpp's results can depend on it): the engine's default, with ``local_workers`` on this machine
    sharing its cores."""
    return threads or default_thread_count(local_workers)


# ---- what travels: the sparse update ------------------------------------------------------------------

def pack_update(deltas: Mapping[str, SparseDelta]) -> dict[str, tuple]:
    """A compact picklable form of sparse code deltas (tensors without change are left out).

    Per tensor, the smaller of ``("sparse", uint32 indices, int8/int16 values)`` and ``("dense", int8/int16
    vector)``: 5 bytes per changed code while fewer than ~1/5 of the codes change (the usual case: QES
    updates change ~1e-4 of the codes), never more than 1-2 bytes per code.
    """
    packed: dict[str, tuple] = {}
    for name, delta in deltas.items():
        if delta.nnz == 0:
            continue
        small = delta.values.size == 0 or int(np.abs(delta.values).max()) <= 127
        value_type = np.int8 if small else np.int16
        value_bytes = np.dtype(value_type).itemsize
        index_type = np.uint32 if delta.size < 2**32 else np.int64
        if delta.nnz * (np.dtype(index_type).itemsize + value_bytes) < delta.size * value_bytes:
            packed[name] = ("sparse", delta.size, delta.indices.astype(index_type), delta.values.astype(value_type))
        else:
            packed[name] = ("dense", delta.size, delta.to_dense().astype(value_type))
    return packed


def unpack_update(packed: Mapping[str, tuple]) -> dict[str, SparseDelta]:
    """The inverse of :func:`pack_update`."""
    deltas = {}
    for name, entry in packed.items():
        if entry[0] == "sparse":
            _, size, indices, values = entry
            deltas[name] = SparseDelta(indices.astype(np.int64), values.astype(np.int16), int(size))
        else:
            _, size, dense = entry
            deltas[name] = SparseDelta.from_dense(dense.astype(np.int16))
    return deltas


def pickled_size(obj: Any) -> int:
    """Bytes of ``obj`` as pickled for the wire (what Ray serialises, up to its framing)."""
    return len(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


# ---- the worker ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker needs to build itself (sent once, when the worker starts)."""

    base_model: str
    base_size: int
    fitness: FitnessSettings
    batch_size: int
    threads: int
    seed: int
    noise_method: str
    scratch_dir: str | None  # where the private model copy goes (None: /dev/shm or the system temp dir)
    tensors: str | None = None  # glob patterns restricting the trainable tensors (qes-train --tensors)


class QESWorker:
    """One Ray actor's state: a private model copy, a llama.cpp engine, a fitness evaluator.

    Plain class (wrapped with ``ray.remote`` by :class:`RayPopulation`), so tests can subclass it.
    """

    def __init__(self, settings: WorkerSettings, diff_ref: list, model_ref: list | None = None):
        import ray

        from policies.llm.engine import LlamaEngine
        from qes_trainer.fitness import FitnessEvaluator
        from qes_trainer.live_model import LiveModel

        started = time.perf_counter()
        scratch = settings.scratch_dir
        if scratch is None and os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
            scratch = "/dev/shm"
        self.directory = Path(tempfile.mkdtemp(prefix=f"qes-worker-{os.getpid()}-", dir=scratch))
        base = Path(settings.base_model)
        if not (base.is_file() and base.stat().st_size == settings.base_size):
            if model_ref is None:
                raise FileNotFoundError(f"the base model {base} is not on this node (worker {os.getpid()})")
            base = self.directory / "base.gguf"  # a node without the file: take the driver's copy once
            base.write_bytes(ray.get(model_ref[0]))
        self.live = LiveModel.create(base, self.directory / "worker-model.gguf", settings.tensors)
        if base.parent == self.directory:
            base.unlink()
        _, gated = self.live.apply(unpack_update(ray.get(diff_ref[0])))
        if gated:
            raise RuntimeError(f"the trained diff does not fit the base model on worker {os.getpid()} ({gated} gated)")
        self.noise = QESOptimizer(self.live.specs(), sigma=1.0, alpha=1.0, residual="none", seed=settings.seed,
                                  noise_method=settings.noise_method)
        # Repacked CPU buffers would copy the weights at load and hide every later edit of the file.
        self.engine = LlamaEngine(self.live.path, n_ctx=settings.fitness.context_tokens(), max_batch=settings.batch_size,
                                  n_threads=settings.threads, use_extra_bufts=False)
        self.evaluator = FitnessEvaluator(settings.fitness, self.engine)
        self.seconds_setup = time.perf_counter() - started

    def info(self) -> dict[str, Any]:
        import socket

        return {"pid": os.getpid(), "host": socket.gethostname(), "seconds_setup": self.seconds_setup}

    def evaluate(self, generation: int, pair: int, sign: int, seeds: Sequence[int], sigma: float) -> MemberOutcome:
        from qes_trainer.population import evaluate_member

        self.noise.sigma = float(sigma)
        return evaluate_member(self.live, self.noise, self.evaluator, generation, (pair, sign), seeds)

    def apply_update(self, packed: Mapping[str, tuple]) -> int:
        """Add the driver's applied update to this worker's codes; returns how many codes changed."""
        _, gated = self.live.apply(unpack_update(packed))
        if gated:
            raise RuntimeError(f"worker {os.getpid()}: {gated} update steps left the code range (diverged codes)")
        return sum(entry[2].size if entry[0] == "sparse" else int(np.count_nonzero(entry[2])) for entry in packed.values())

    def close(self) -> None:
        self.engine.close()
        self.live.close()
        shutil.rmtree(self.directory, ignore_errors=True)


# ---- the driver --------------------------------------------------------------------------------------

class _Slot:
    """A worker position: its current actor (replaced when the actor is lost)."""

    def __init__(self, index: int, actor):
        self.index, self.actor = index, actor
        self.starting = None  # a replacement's readiness call: its members' timeout clock starts when it resolves


class RayPopulation:
    """Evaluates members on Ray actors (:class:`QESWorker`); the same interface as
    :class:`qes_trainer.population.LocalPopulation`.

    ``diff`` is the codes' current difference from ``base_model`` (the checkpoint's, or empty), kept up to
    date by :meth:`apply_update` so that replacement workers start from the current codes. ``noise`` is
    the driver's optimizer (its seed, noise method and current sigma are used). ``workers=0`` with an
    ``address`` means one worker per ``threads`` CPUs of the cluster. ``worker_class`` replaces
    :class:`QESWorker` (tests inject failures with a subclass).
    """

    def __init__(self, base_model: str | Path, diff: Mapping[str, SparseDelta], noise: QESOptimizer,
                 fitness: FitnessSettings, batch_size: int = 8, threads: int | None = None, workers: int = 0,
                 address: str | None = None, member_timeout: float | None = None, max_attempts: int = 3,
                 worker_class: type | None = None, tensors: str | None = None):
        ray = require_ray()
        self.ray = ray
        self.noise = noise
        self.threads = default_threads(threads, 0 if address else workers)
        self.member_timeout = member_timeout
        self.max_attempts = max_attempts
        self.diff = {name: delta for name, delta in diff.items()}
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                # address="local": a new Ray for this run, even if a `ray start` cluster runs on this machine
                ray.init(address="local", num_cpus=max(os.cpu_count() or 1, workers * self.threads),
                         include_dashboard=False, log_to_driver=False)
        if workers <= 0:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // self.threads)
        self.scratch_root = None if address else tempfile.mkdtemp(
            prefix="qes-workers-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
        if self.scratch_root is not None:  # the workers' model copies, also when the run stops on an error
            atexit.register(shutil.rmtree, self.scratch_root, True)
        base_model = Path(base_model).resolve()
        self.settings = WorkerSettings(str(base_model), base_model.stat().st_size, fitness, batch_size, self.threads,
                                       noise.seed, noise.noise_method, self.scratch_root, tensors)
        # A cluster's nodes may not have the file: they fetch this object (once per node) only if they lack it.
        self.model_ref = [ray.put(base_model.read_bytes())] if address else None
        worker_class = worker_class or QESWorker
        self.actor_class = ray.remote(num_cpus=self.threads, max_restarts=0, max_task_retries=0)(worker_class)
        self.totals = {"workers_replaced": 0, "members_requeued": 0, "bytes_setup": 0}
        self._stats: dict[str, Any] = {}
        self._reset_stats()
        self.slots = [_Slot(index, self._start_worker()) for index in range(workers)]
        try:  # fail here, clearly, if workers cannot start at all (bad model, missing package on a node)
            ray.get([slot.actor.info.remote() for slot in self.slots])
        except (ray.exceptions.RayError, OSError) as error:
            self.close()
            message = str(error).strip().splitlines()
            raise RuntimeError(f"Ray workers could not start: {message[-1] if message else type(error).__name__}") from None

    # -- workers --
    def _start_worker(self):
        packed = pack_update(self.diff)
        self.totals["bytes_setup"] += pickled_size(self.settings) + pickled_size(packed)
        return self.actor_class.remote(self.settings, [self.ray.put(packed)], self.model_ref)

    def _replace(self, slot: _Slot) -> None:
        try:
            self.ray.kill(slot.actor, no_restart=True)
        except Exception:  # already dead
            pass
        slot.actor = self._start_worker()
        slot.starting = slot.actor.info.remote()
        self.totals["workers_replaced"] += 1
        self._stats["workers_replaced"] += 1

    def _lost_errors(self) -> tuple[type, ...]:
        exceptions = self.ray.exceptions
        return tuple(getattr(exceptions, name) for name in ("RayActorError", "WorkerCrashedError", "ObjectLostError",
                                                             "NodeDiedError") if hasattr(exceptions, name))

    def _reset_stats(self) -> None:
        self._stats = {"bytes_sent": 0, "bytes_update": 0, "bytes_received": 0, "members_requeued": 0,
                       "workers_replaced": 0, "seconds_wall_evaluation": 0.0,
                       "members_per_worker": [0] * len(getattr(self, "slots", []))}

    # -- the population interface --
    def evaluate(self, generation: int, members: Iterable[Member], seeds: Sequence[int],
                 on_member: Callable[[MemberOutcome], None] | None = None) -> list[MemberOutcome]:
        """Evaluate every member (on whichever worker is free); returns the outcomes in ``members`` order."""
        self._reset_stats()
        started = time.perf_counter()
        members = list(members)
        seeds = [int(seed) for seed in seeds]
        sigma = self.noise.sigma
        queue = deque(members)
        idle = [slot for slot in self.slots if slot.starting is None]
        starting = {slot.starting: slot for slot in self.slots if slot.starting is not None}
        pending: dict[Any, tuple[_Slot, Member, float]] = {}
        attempts: dict[Member, int] = {}
        outcomes: dict[Member, MemberOutcome] = {}
        lost_errors = self._lost_errors()

        def lost(slot: _Slot, member: Member, why: str) -> None:
            attempts[member] = attempts.get(member, 0) + 1
            if attempts[member] >= self.max_attempts:
                raise RuntimeError(f"generation {generation}: member {'+' if member[1] > 0 else '-'}{member[0]} "
                                   f"failed on {attempts[member]} workers (last: {why})")
            queue.appendleft(member)
            self._stats["members_requeued"] += 1
            self.totals["members_requeued"] += 1
            replace(slot)

        def replace(slot: _Slot) -> None:
            if self._stats["workers_replaced"] >= self.max_attempts * len(self.slots):
                raise RuntimeError(f"generation {generation}: {self._stats['workers_replaced']} workers lost "
                                   f"or failed to start; giving up (is the cluster still there?)")
            self._replace(slot)
            starting[slot.starting] = slot

        while queue or pending:
            if not pending and not idle and not starting:
                raise RuntimeError(f"generation {generation}: no worker left")  # cannot happen: lost() replaces
            while queue and idle:
                slot, member = idle.pop(0), queue.popleft()
                arguments = (generation, member[0], member[1], seeds, sigma)
                self._stats["bytes_sent"] += pickled_size(arguments)
                pending[slot.actor.evaluate.remote(*arguments)] = (slot, member, time.monotonic())
            wait = None
            if self.member_timeout is not None and pending:
                oldest = min(start for _, _, start in pending.values())
                wait = max(0.0, oldest + self.member_timeout - time.monotonic())
            ready, _ = self.ray.wait(list(pending) + list(starting), num_returns=1, timeout=wait)
            for ref in ready:
                if ref in starting:  # a replacement worker is up (or failed to start: replace it again)
                    slot = starting.pop(ref)
                    slot.starting = None
                    try:
                        self.ray.get(ref)
                    except lost_errors + (self.ray.exceptions.RayTaskError,):
                        replace(slot)
                    else:
                        idle.append(slot)
                    continue
                slot, member, _ = pending.pop(ref)
                try:
                    outcome = self.ray.get(ref)
                except lost_errors as error:
                    lost(slot, member, f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
                    continue
                except self.ray.exceptions.RayTaskError as error:  # the evaluation itself failed: not a worker loss
                    raise error.as_instanceof_cause() from None
                self._stats["bytes_received"] += pickled_size(outcome)
                outcomes[member] = outcome
                self._stats["members_per_worker"][slot.index] += 1
                idle.append(slot)
                if on_member is not None:
                    on_member(outcome)
            if self.member_timeout is not None:
                now = time.monotonic()
                for ref, (slot, member, start) in list(pending.items()):
                    if now - start > self.member_timeout:
                        del pending[ref]
                        lost(slot, member, f"no result after {self.member_timeout:g} s")
        missing = [member for member in members if member not in outcomes]
        if missing:  # cannot happen: the loop ends only when every member has an outcome or raised
            raise RuntimeError(f"generation {generation}: {len(missing)} member(s) were not evaluated")
        self._stats["seconds_wall_evaluation"] = time.perf_counter() - started
        return [outcomes[member] for member in members]

    def apply_update(self, applied: Mapping[str, SparseDelta]) -> None:
        """Send the applied update (changed codes only) to every worker and wait until all applied it.

        A worker lost here is replaced by one built from the new codes, so it needs no update.
        """
        self.diff = {name: delta + applied[name] if name in applied and applied[name].nnz else delta
                     for name, delta in self.diff.items()}
        packed = pack_update(applied)
        size = pickled_size(packed)
        self._stats["bytes_update"] = size
        if not packed:
            return
        payload = self.ray.put(packed)  # one object: a cluster ships it once per node
        calls = [(slot, slot.actor.apply_update.remote(payload)) for slot in self.slots]
        for slot, ref in calls:
            self._stats["bytes_sent"] += size
            try:
                self.ray.get(ref, timeout=self.member_timeout)
            except self._lost_errors() + (self.ray.exceptions.GetTimeoutError,):
                self._replace(slot)

    def generation_stats(self) -> dict[str, Any]:
        """This generation's distribution figures (added to the metrics rows)."""
        return {"workers": len(self.slots), **{key: (round(value, 3) if isinstance(value, float) else value)
                                               for key, value in self._stats.items()}}

    def close(self) -> None:
        for slot in self.slots:
            try:
                self.ray.get(slot.actor.close.remote(), timeout=60)
            except Exception:  # a dead worker has nothing left to close
                pass
            try:
                self.ray.kill(slot.actor, no_restart=True)
            except Exception:
                pass
        self.slots = []
        if self.scratch_root is not None:
            shutil.rmtree(self.scratch_root, ignore_errors=True)
        if self.owns_ray:
            self.ray.shutdown()
