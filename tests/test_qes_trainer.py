"""The QES trainer on real GGUF files and a real llama.cpp model: live edits, checkpoints, kill + resume,
the ``qes-train`` / ``qes-eval`` commands, and one end-to-end generation on the default model."""

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from policies.llm.models import sha256_of
from qes_trainer.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from qes_trainer.fitness import FitnessEvaluator, FitnessSettings, episode_seeds, mean_and_standard_error
from qes_trainer.live_model import LiveModel
from qes_trainer.qes import QESOptimizer
from qes_trainer.train import TrainConfig, main as train_main, published_settings, train
from qes_trainer.evaluate import main as eval_main
from tests.tiny_gguf import write_tiny_model

REPO = Path(__file__).resolve().parents[1]

# Fitness episodes on the tiny random model: short, so a generation takes a few seconds.
TINY_FITNESS = FitnessSettings(preset="small", policy="llm=2,forager=4", episodes=1, max_steps=2, n_ctx=4096,
                               temperature=1.0, max_tokens=256)
# A large sigma/alpha so that a few generations really change codes (the published values move almost nothing).
TINY_TRAIN = TrainConfig(generations=3, pairs=2, sigma=0.5, alpha=0.5, threads=1, batch_size=4, fitness=TINY_FITNESS)


@pytest.fixture(scope="module")
def tiny_q8(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("qes-models") / "tiny-q8.gguf", "Q8_0")


@pytest.fixture(scope="module")
def tiny_q4(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("qes-models") / "tiny-q4_0.gguf", "Q4_0")


def _config(model, **changes):
    import dataclasses

    return dataclasses.replace(TINY_TRAIN, model=str(model), **changes)


# ---- live model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixture", ["tiny_q8", "tiny_q4"])
def test_working_copy_perturb_restore_is_byte_identical_and_never_touches_the_original(fixture, request, tmp_path):
    original = request.getfixturevalue(fixture)
    original_sha = sha256_of(original)
    live = LiveModel.create(original, tmp_path / "work.gguf")
    optimizer = QESOptimizer(live.specs(), sigma=0.5, alpha=0.1, seed=3)
    applied, gated = live.perturb(optimizer, generation=0, pair=1, sign=-1)
    live.flush()
    assert sum(delta.nnz for delta in applied.values()) > 100
    assert sha256_of(tmp_path / "work.gguf") != original_sha
    live.restore(applied)
    live.flush()
    assert sha256_of(tmp_path / "work.gguf") == original_sha
    assert sha256_of(original) == original_sha
    live.close()


def test_live_llama_model_sees_the_perturbation_and_the_restore(tiny_q4, tmp_path):
    """Q4_0 is repacked by llama.cpp's CPU backend unless use_extra_bufts=False, which the trainer sets."""
    from policies.llm.engine import LlamaEngine

    live = LiveModel.create(tiny_q4, tmp_path / "work.gguf")
    engine = LlamaEngine(live.path, n_ctx=256, max_batch=1, n_threads=1, use_extra_bufts=False)
    tokens = engine.tokenize("hello world, this is a test")

    def logits():
        engine.reset()
        engine._decode([(token, position, 0, position == len(tokens) - 1) for position, token in enumerate(tokens)])
        return np.ctypeslib.as_array(engine.llama_cpp.llama_get_logits_ith(engine.ctx, -1), shape=(engine.n_vocab,)).copy()

    before = logits()
    optimizer = QESOptimizer(live.specs(), sigma=0.5, alpha=0.1, seed=0)
    applied, _ = live.perturb(optimizer, 0, 0, 1)
    perturbed = logits()
    live.restore(applied)
    restored = logits()
    engine.close()
    assert not np.array_equal(before, perturbed)
    np.testing.assert_array_equal(before, restored)


def test_lazy_update_writes_exactly_the_applied_steps(tiny_q8, tmp_path):
    live = LiveModel.create(tiny_q8, tmp_path / "work.gguf")
    optimizer = QESOptimizer(live.specs(), sigma=0.5, alpha=2.0, seed=1)
    before = {name: codes.copy() for name, codes in live.codes().items()}
    stats = optimizer.update(live.codes(), 0, [(1.0, 0.0), (0.0, 2.0), (0.5, 0.5)])
    assert live.codes()[next(iter(before))].dtype == np.int16
    assert {name: np.array_equal(before[name], codes) for name, codes in live.codes().items()} == dict.fromkeys(before, True)
    _, gated = live.apply(stats.applied)
    assert gated == 0 and stats.changed > 0
    for name, codes in live.codes().items():
        np.testing.assert_array_equal(codes - before[name], stats.applied[name].to_dense())


def test_published_settings_follow_the_code_width():
    assert published_settings(["Q4_1"]) == (0.01, 5e-4)
    assert published_settings(["Q8_0"]) == (0.001, 1e-4)
    assert published_settings(["Q8_0", "Q6_K"]) == (0.01, 5e-4)


# ---- checkpoints ------------------------------------------------------------------------------------

@pytest.mark.parametrize("residual", ["full", "replay"])
def test_checkpoint_round_trip_restores_codes_and_optimizer_state(residual, tiny_q8, tmp_path):
    from policies.llm.gguf_codes import open_gguf_tensors

    live = LiveModel.create(tiny_q8, tmp_path / "work.gguf")
    optimizer = QESOptimizer(live.specs(), sigma=0.5, alpha=1.0, residual=residual, seed=2)
    diff = {}
    for generation in range(2):
        stats = optimizer.update(live.codes(), generation, [(1.0, 0.0), (0.0, 3.0), (2.0, 2.5)])
        live.apply(stats.applied)
        diff = {name: diff[name] + delta if name in diff else delta for name, delta in stats.applied.items()}
    base = open_gguf_tensors(tiny_q8)
    for name, delta in diff.items():  # the summed updates are exactly the codes' change from the base
        codec = live.trainable[name].codec
        change = codec.read_codes(live.trainable[name].raw) - codec.read_codes(base[name].raw)
        np.testing.assert_array_equal(change, delta.to_dense())
    save_checkpoint(tmp_path, {"generation": 2, "note": "x"}, diff, optimizer.state_dict())
    meta, loaded_diff, state = load_checkpoint(tmp_path)
    assert meta["note"] == "x" and meta["generation"] == 2
    fresh = LiveModel.create(tiny_q8, tmp_path / "fresh.gguf")
    fresh.apply(loaded_diff)
    fresh.flush(), live.flush()
    assert sha256_of(tmp_path / "fresh.gguf") == sha256_of(tmp_path / "work.gguf")
    resumed = QESOptimizer(fresh.specs(), sigma=0.5, alpha=1.0, residual=residual, seed=2)
    resumed.load_state_dict(state)
    for name in live.trainable:
        np.testing.assert_array_equal(resumed.residual(name), optimizer.residual(name))


def test_damaged_or_foreign_checkpoints_fail_clearly(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoint.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path)


# ---- fitness -----------------------------------------------------------------------------------------

def test_episode_seeds_are_common_within_a_generation_and_new_across_generations():
    assert episode_seeds(0, 3, 4) == episode_seeds(0, 3, 4)
    assert episode_seeds(0, 3, 4) != episode_seeds(0, 4, 4)
    assert episode_seeds(0, 3, 4) != episode_seeds(1, 3, 4)
    assert len(set(episode_seeds(0, 0, 16))) == 16


def test_mean_and_standard_error():
    mean, error = mean_and_standard_error([1.0, 2.0, 3.0, 6.0])
    assert mean == 3.0
    assert error == pytest.approx(np.std([1, 2, 3, 6], ddof=1) / 2)


def test_same_weights_same_seeds_same_fitness(tiny_q8):
    from policies.llm.engine import LlamaEngine

    engine = LlamaEngine(tiny_q8, n_ctx=4096, max_batch=4, n_threads=1)
    evaluator = FitnessEvaluator(TINY_FITNESS, engine)
    first = [r.fitness for r in evaluator.evaluate([11, 12])]
    second = [r.fitness for r in evaluator.evaluate([11, 12])]
    engine.close()
    assert first == second


def test_fitness_needs_llm_agents(tiny_q8):
    with pytest.raises(ValueError, match="no 'llm' agents"):
        FitnessEvaluator(FitnessSettings(policy="forager"), engine=None)


# ---- training runs -----------------------------------------------------------------------------------

def test_training_writes_metrics_checkpoint_plot_and_a_loadable_model(tiny_q8, tmp_path):
    import society_env
    from policies.llm.policy import LlamaCppPolicy

    trained = train(_config(tiny_q8, generations=2), tmp_path / "run")
    run = tmp_path / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["generation"] for row in rows] == [0, 1]
    assert all(row["fitness_min"] <= row["fitness_mean"] <= row["fitness_max"] for row in rows)
    assert sum(row["codes_changed"] for row in rows) > 0
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("generation,fitness_mean")
    assert (run / "fitness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert load_checkpoint(run)[0]["generation"] == 2
    assert not (run / "working-model.gguf").exists()
    assert sha256_of(trained) != sha256_of(tiny_q8)
    # The exported GGUF is a model the LLM policy loads and plays.
    env = society_env.parallel_env("small", language=True)
    observations, infos = env.reset(seed=0)
    policy = LlamaCppPolicy(env.config, model=trained, n_ctx=4096, n_threads=1, max_tokens=256,
                            prompt="small")
    policy.reset(0)
    actions = policy.act(observations, infos)
    assert set(actions) == set(env.agents)
    policy.engine.close()


KILL_SCRIPT = textwrap.dedent("""
    import dataclasses, json, os, signal, sys
    from qes_trainer import fitness
    from qes_trainer.train import TrainConfig, train

    config = TrainConfig.from_dict(json.loads(sys.argv[1]))
    kill_at = int(sys.argv[3])
    original_play = fitness.FitnessEvaluator.play
    calls = []

    def play(self, seed):
        calls.append(seed)
        if len(calls) == kill_at:  # the model file is perturbed right now: die without any clean-up
            os.kill(os.getpid(), signal.SIGKILL)
        return original_play(self, seed)

    fitness.FitnessEvaluator.play = play
    train(config, sys.argv[2])
""")


def test_killed_mid_generation_then_resumed_gives_the_same_bytes_as_an_uninterrupted_run(tiny_q8, tmp_path):
    config = _config(tiny_q8)
    reference = train(config, tmp_path / "uninterrupted")

    killed = tmp_path / "killed"
    members_per_generation = 2 * config.pairs * config.fitness.episodes
    process = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(config.to_dict()), str(killed),
                              str(members_per_generation + 3)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert load_checkpoint(killed)[0]["generation"] == 1  # generation 0 was saved, generation 1 was cut
    assert not (killed / "model.gguf").exists()
    # what a kill in the middle of an atomic write would have left (temporary files of atomic_file)
    orphans = [killed / ".checkpoint.npz.k1ll3d.tmp", killed / ".working-model.gguf.k1ll3d.tmp"]
    for orphan in orphans:
        orphan.write_bytes(b"half a file")

    assert train_main(["--resume", str(killed), "--quiet"]) == 0
    assert not any(orphan.exists() for orphan in orphans)
    assert sha256_of(killed / "model.gguf") == sha256_of(reference)
    assert sha256_of(reference) != sha256_of(tiny_q8)
    assert (killed / "metrics.jsonl").read_text() != ""
    resumed_rows = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    reference_rows = [json.loads(line) for line in (tmp_path / "uninterrupted" / "metrics.jsonl").read_text().splitlines()]
    timing = [key for key in reference_rows[0] if key.startswith("seconds_")]
    strip = lambda rows: [{k: v for k, v in row.items() if k not in timing} for row in rows]  # noqa: E731
    assert strip(resumed_rows) == strip(reference_rows)


def test_qes_train_command_line_errors_are_one_line(tiny_q8, tmp_path, capsys):
    assert train_main(["--model", str(tiny_q8), "--pairs", "1", "--out", str(tmp_path / "a")]) == 2
    assert "one pair learns nothing" in capsys.readouterr().err
    for option in ("--threads", "--llm-batch", "--n-ctx"):  # 0 used to mean the default, or crash later
        assert train_main(["--model", str(tiny_q8), option, "0", "--out", str(tmp_path / "a")]) == 2
        assert f"{option} must be at least 1 (got 0)" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()  # refused before anything was written
    assert train_main(["--resume", str(tmp_path / "nothing-here")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    not_gguf = tmp_path / "model.gguf"
    not_gguf.write_bytes(b"this is not a model")
    assert train_main(["--model", str(not_gguf), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "GGUF" in error
    assert train_main(["--resume", str(tmp_path), "--sigma", "0.1"]) == 2
    assert "only --generations" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--help"])
    assert exit_info.value.code == 0
    assert "--resume" in capsys.readouterr().out


def test_qes_eval_compares_base_and_trained_on_the_same_seeds(tiny_q8, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert eval_main(["--base", str(tiny_q8), "--trained", str(tiny_q8), "--episodes", "2", "--max-steps", "2",
                      "--n-ctx", "4096", "--threads", "1", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    base, trained = report["models"]["base"], report["models"]["trained"]
    assert report["seeds"] == [10_000, 10_001]
    assert base["per_episode"] == trained["per_episode"]  # same model, same seeds: identical episodes
    assert trained["difference_vs_base"]["mean"] == 0.0
    assert "held-out fitness" in capsys.readouterr().out
    assert eval_main(["--trained", str(tiny_q8), "--threads", "0"]) == 2
    assert "--threads must be at least 1 (got 0)" in capsys.readouterr().err


@pytest.mark.slow
def test_one_generation_end_to_end_on_the_default_model(tmp_path):
    """qes-train on the embedded SmolLM2-135M (Q4_1) and the small preset, through the console script."""
    run = tmp_path / "run"
    process = subprocess.run(
        [str(Path(sys.executable).with_name("qes-train")), "--generations", "1", "--pairs", "2", "--episodes", "1",
         "--max-steps", "2", "--out", str(run), "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stderr
    summary = json.loads(process.stdout)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["members"] == 4
    assert rows[0]["sigma"] == 0.01 and rows[0]["alpha"] == 5e-4  # the paper's INT4 settings for Q4_1 codes
    assert rows[0]["llm_failures"] == 0
    assert Path(summary["trained_model"]).stat().st_size == Path(load_checkpoint(run)[0]["base_model"]).stat().st_size


def test_ctrl_c_leaves_a_resumable_run_and_says_how_to_continue(tiny_q8, tmp_path, monkeypatch, capsys):
    from qes_trainer import population

    played = []
    original_play = population.FitnessEvaluator.play

    def play(self, seed):
        played.append(seed)
        if len(played) == 6:  # in generation 1 (4 members per generation, one episode each)
            raise KeyboardInterrupt
        return original_play(self, seed)

    monkeypatch.setattr(population.FitnessEvaluator, "play", play)
    run = tmp_path / "run"
    arguments = ["--model", str(tiny_q8), "--out", str(run), "--generations", "2", "--pairs", "2", "--episodes", "1",
                 "--max-steps", "2", "--n-ctx", "4096", "--threads", "1", "--llm-batch", "4", "--quiet"]
    assert train_main(arguments) == 130
    error = capsys.readouterr().err
    assert "checkpoint holds 1 generation" in error and f"qes-train --resume {run}" in error
    assert load_checkpoint(run)[0]["generation"] == 1


def test_every_option_is_declared_once_and_its_help_shows_the_dataclass_default(capsys):
    """qes-train's options come from the TrainConfig / FitnessSettings fields: no option given is the
    dataclass default, each field's flag is in the help with its default, and a resume refuses every
    option that would change the run (and only those)."""
    import dataclasses

    from society_env.app.options import flag_of
    from qes_trainer.train import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args([])) == TrainConfig()
    help_text = " ".join(build_parser().format_help().split())
    for cls in (TrainConfig, FitnessSettings):
        for field in dataclasses.fields(cls):
            if "group" not in field.metadata:
                continue
            assert flag_of(field) in help_text
            if field.metadata["default_text"] is None:
                assert f"(default {field.default})" in help_text, field.name
    assert config_from_args(build_parser().parse_args(["--llm-batch", "3", "--set", "width=12"])).batch_size == 3
    with pytest.raises(ValueError, match="--llm-batch must be at least 1 .got 0."):
        config_from_args(build_parser().parse_args(["--llm-batch", "0"]))
    assert train_main(["--resume", "x", "--tensors", "blk.1.*", "--estimator", "expected"]) == 2
    assert "(got --tensors, --estimator)" in capsys.readouterr().err


@pytest.mark.parametrize("entry, program, missing, argv", [
    ("train", "qes-train", "gguf", ["--help"]),  # imported by the trainer's modules
    ("evaluate", "qes-eval", "llama_cpp", ["--trained", "model.gguf", "--episodes", "2"]),  # imported when used
])
def test_a_missing_extra_is_a_one_line_error_naming_the_install(entry, program, missing, argv):
    # As in a base install: the entry point names the extra instead of ending in a traceback.
    code = f"import sys; sys.modules[{missing!r}] = None; from qes_trainer import cli; sys.exit(cli.{entry}({argv!r}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f'{program}: error: it needs the {missing} package: pip install "society-env[train]"'


def test_a_bad_world_option_is_refused_before_anything_is_written(tmp_path, capsys):
    from qes_trainer.train import main

    assert main(["--set", "width=abc", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "width must be an integer, got 'abc'" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
