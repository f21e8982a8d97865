"""QES population evaluation on Ray (``qes-train --workers``): same bytes as one process, survives a lost
worker, sends only the sparse update; and a clear error without Ray."""

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from policies.llm.models import sha256_of
from qes_trainer.checkpoint import load_checkpoint
from qes_trainer.distributed import QESWorker, default_threads, pack_update, pickled_size, unpack_update
from qes_trainer.qes import SparseDelta
from qes_trainer.train import main as train_main, train
from tests.test_qes_trainer import TINY_TRAIN
from tests.tiny_gguf import write_tiny_model

# Large enough sigma/alpha that generations 1 and 2 change thousands of the tiny model's codes.
CONFIG = dataclasses.replace(TINY_TRAIN, generations=3, sigma=0.5, alpha=0.15)
DISTRIBUTION_KEYS = {"workers", "bytes_sent", "bytes_update", "bytes_received", "members_requeued",
                     "workers_replaced", "seconds_wall_evaluation", "members_per_worker"}


def _rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _strip(rows):
    """Rows without timing and distribution figures: what must not depend on where members ran."""
    return [{k: v for k, v in row.items() if not k.startswith("seconds_") and k not in DISTRIBUTION_KEYS}
            for row in rows]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("qes-dist-models") / "tiny-q8.gguf", "Q8_0")


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory):
    """The single-process run every distributed run must reproduce byte for byte."""
    run = tmp_path_factory.mktemp("qes-dist-reference") / "run"
    trained = train(dataclasses.replace(CONFIG, model=str(tiny_model)), run)
    return trained, _rows(run)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")  # CI installs it (the test extra includes the distributed one)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# ---- without Ray / no workers ---------------------------------------------------------------------

def test_workers_without_ray_says_how_to_install_it(tiny_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert train_main(["--model", str(tiny_model), "--workers", "2", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert 'pip install "society-env[distributed]"' in error and error.count("\n") == 1
    assert not (tmp_path / "run").exists()  # failed before writing anything


def test_distribution_options_are_checked_and_old_checkpoint_configs_still_load(tmp_path, capsys):
    from qes_trainer.train import TrainConfig

    assert train_main(["--workers", "-1", "--out", str(tmp_path / "a")]) == 2
    assert "--workers must be at least 0" in capsys.readouterr().err
    old = TrainConfig().to_dict()
    for key in ("workers", "ray_address", "member_timeout"):  # a checkpoint written before issue 9
        del old[key]
    assert TrainConfig.from_dict(old).workers == 0


def test_packed_update_is_a_few_bytes_per_changed_code_and_round_trips():
    rng = np.random.default_rng(0)
    size = 1_000_000
    indices = np.sort(rng.choice(size, 1000, replace=False)).astype(np.int64)  # a 1e-3 update ratio
    sparse = SparseDelta(indices, rng.choice([-1, 1], 1000).astype(np.int16), size)
    dense = SparseDelta.from_dense(rng.integers(-2, 3, size).astype(np.int16))
    wide = SparseDelta(indices[:3], np.array([300, -200, 5], np.int16), size)
    packed = pack_update({"a": sparse, "b": dense, "c": wide, "empty": SparseDelta.from_dense(np.zeros(9, np.int16))})
    assert set(packed) == {"a", "b", "c"}
    assert packed["a"][0] == "sparse" and packed["b"][0] == "dense"
    assert pickled_size({"a": packed["a"]}) < 5 * 1000 + 400  # uint32 index + int8 value per changed code
    assert pickled_size({"b": packed["b"]}) < size + 400  # never more than one byte per code
    for name, delta in unpack_update(packed).items():
        original = {"a": sparse, "b": dense, "c": wide}[name]
        np.testing.assert_array_equal(delta.indices, original.indices)
        np.testing.assert_array_equal(delta.values, original.values)
        assert delta.size == original.size


# ---- on a local Ray ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_workers_reproduce_the_single_process_run_bit_for_bit(local_ray, tiny_model, reference, tmp_path):
    reference_model, reference_rows = reference
    run = tmp_path / "run"
    trained = train(dataclasses.replace(CONFIG, model=str(tiny_model), workers=2), run)
    assert sha256_of(trained) == sha256_of(reference_model)
    assert sha256_of(trained) != sha256_of(tiny_model)
    rows = _rows(run)
    assert _strip(rows) == _strip(reference_rows)
    assert sum(row["codes_changed"] for row in rows) > 1000
    assert all(row["workers"] == 2 and sum(row["members_per_worker"]) == 2 * CONFIG.pairs for row in rows)
    assert any(min(row["members_per_worker"]) > 0 for row in rows)  # both workers evaluated members
    assert all(row["workers_replaced"] == 0 and row["members_requeued"] == 0 for row in rows)

    # What travels per generation: member requests (a few integers each) and the packed update, once per
    # worker; never the model. The update is ~5 bytes per changed code.
    model_size = Path(tiny_model).stat().st_size
    for row in rows:
        requests = row["bytes_sent"] - 2 * row["bytes_update"] * (row["codes_changed"] > 0)
        assert 0 < requests < 2 * CONFIG.pairs * 200
        assert row["bytes_update"] <= 5 * row["codes_changed"] + 400 * 16  # + numpy framing per tensor
        assert row["bytes_received"] < 2 * CONFIG.pairs * 1000
    # A generation without an update sends only the member requests (whether one occurs depends on the run).
    assert all(row["bytes_sent"] < model_size / 100 for row in rows if row["codes_changed"] == 0)
    assert all(row["bytes_sent"] < model_size for row in rows)


class DyingWorker(QESWorker):
    """Dies (os._exit, no clean-up) in the middle of the first member of generation 2 that any worker of
    the run starts, with that member's noise in its model copy."""

    def __init__(self, settings, *args, **kwargs):
        super().__init__(settings, *args, **kwargs)
        self.marker = Path(settings.scratch_dir) / "a-worker-died"

    def evaluate(self, generation, pair, sign, seeds, sigma):
        if generation == 2:
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                def die(seeds, on_episode=None):
                    os._exit(1)
                self.evaluator.evaluate = die
        return super().evaluate(generation, pair, sign, seeds, sigma)


@pytest.mark.slow
def test_resumed_on_other_workers_and_a_worker_lost_mid_generation_the_result_is_unchanged(
        local_ray, tiny_model, reference, tmp_path, monkeypatch):
    """Two generations on one worker, then ``--resume --workers 2``: the new workers start from the
    checkpoint's diff (thousands of changed codes); in generation 2 one of them dies mid-member and is
    replaced by a fresh worker built from base + diff, its member re-queued. Same bytes as one process."""
    import qes_trainer.distributed as distributed

    reference_model, reference_rows = reference
    run = tmp_path / "run"
    train(dataclasses.replace(CONFIG, model=str(tiny_model), workers=1, generations=2), run)
    assert sum(row["codes_changed"] for row in _rows(run)) > 1000  # the resumed workers need the diff

    monkeypatch.setattr(distributed, "QESWorker", DyingWorker)
    assert train_main(["--resume", str(run), "--generations", "3", "--workers", "2", "--quiet"]) == 0
    rows = _rows(run)
    assert load_checkpoint(run)[0]["config"]["workers"] == 2
    assert [row["workers"] for row in rows] == [1, 1, 2]
    assert rows[2]["workers_replaced"] == 1 and rows[2]["members_requeued"] == 1
    assert sum(rows[2]["members_per_worker"]) == 2 * CONFIG.pairs  # every member counted once
    assert sha256_of(run / "model.gguf") == sha256_of(reference_model)
    assert _strip(rows) == _strip(reference_rows)


# ---- the driver's failure handling, on workers without a model (fast, no timing margins) ----------------

class InstantWorker(QESWorker):
    """No model: a member's fitness is a function of (pair, sign); ``evaluate`` answers at once unless
    ``misbehave`` says otherwise. The first call of each actor process to ``misbehave`` for a member that
    ``should_fail`` (checked through a marker file shared by the run's workers) hangs or dies."""

    mode = "hang"

    def __init__(self, settings, *args, **kwargs):
        self.scratch, self.seconds_setup = Path(settings.scratch_dir), 0.0

    def should_fail(self, generation, pair, sign):
        return (pair, sign) == (1, -1)

    def evaluate(self, generation, pair, sign, seeds, sigma):
        from qes_trainer.population import MemberOutcome

        if self.should_fail(generation, pair, sign):
            if self.mode == "hang":
                time.sleep(3600)
            os._exit(1)
        return MemberOutcome(generation, pair, sign, float(10 * pair + sign), 0, 0, 0, 0.0, 0.0)

    def apply_update(self, packed):
        return 0

    def close(self):
        pass


class HangOnceWorker(InstantWorker):
    def should_fail(self, generation, pair, sign):
        if (pair, sign) != (1, -1):
            return False
        try:
            os.close(os.open(self.scratch / "hung-once", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            return False


class AlwaysDiesWorker(InstantWorker):
    mode = "die"


def _population(model, worker_class, **options):
    from qes_trainer.distributed import RayPopulation
    from qes_trainer.live_model import LiveModel
    from qes_trainer.qes import QESOptimizer

    live = LiveModel(model)
    noise = QESOptimizer(live.specs(), sigma=0.5, alpha=0.1, residual="none")
    live.close()
    return RayPopulation(model, {}, noise, CONFIG.fitness, threads=1, workers=2, worker_class=worker_class, **options)


@pytest.mark.slow
def test_a_member_that_times_out_is_requeued_on_a_fresh_worker(local_ray, tiny_model):
    from qes_trainer.population import generation_members

    population = _population(tiny_model, HangOnceWorker, member_timeout=10.0)
    try:
        members = generation_members(3)
        seen = []
        outcomes = population.evaluate(0, members, [1, 2], on_member=seen.append)
        assert [(o.pair, o.sign) for o in outcomes] == members  # complete, in member order
        assert [o.fitness for o in outcomes] == [1.0, -1.0, 11.0, 9.0, 21.0, 19.0]
        assert len(seen) == len(members)
        stats = population.generation_stats()
        assert stats["workers_replaced"] == 1 and stats["members_requeued"] == 1
        assert sum(stats["members_per_worker"]) == len(members)
        assert [(o.pair, o.sign) for o in population.evaluate(1, members, [3])] == members  # the replacement works
    finally:
        population.close()


@pytest.mark.slow
def test_a_member_that_kills_every_worker_stops_the_run_instead_of_being_left_out(local_ray, tiny_model):
    from qes_trainer.population import generation_members

    population = _population(tiny_model, AlwaysDiesWorker)
    try:
        with pytest.raises(RuntimeError, match=r"member -1 failed on 3 workers"):
            population.evaluate(0, generation_members(2), [1])
    finally:
        population.close()


class BrokenWorker(InstantWorker):
    def __init__(self, settings, *args, **kwargs):
        raise ValueError("this node cannot load the model")


@pytest.mark.slow
def test_workers_that_cannot_start_fail_with_one_clear_error(local_ray, tiny_model):
    with pytest.raises(RuntimeError, match="Ray workers could not start: .*cannot load the model"):
        _population(tiny_model, BrokenWorker)


def test_local_workers_share_the_cores_instead_of_oversubscribing_them(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert default_threads(None) == 4  # one process: up to 4 cores, as the LLM engine's default
    assert default_threads(None, local_workers=4) == 2
    assert default_threads(None, local_workers=16) == 1
    assert default_threads(3, local_workers=16) == 3  # an explicit count always wins
