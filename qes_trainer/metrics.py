"""Per-generation training metrics as JSON Lines, CSV and a fitness-curve plot.

The three files are rewritten (atomically) from the full list of rows after every checkpoint, so after a
kill they agree with the checkpoint a resumed run starts from. Rows are small (a few hundred bytes per
generation), so rewriting is cheap.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

from society_env.recording.files import write_bytes_atomic

__all__ = ["write_metrics", "plot_fitness", "plot_runs", "METRIC_FIELDS"]

METRIC_FIELDS = {
    "generation": "generation index (0-based)",
    "fitness_mean": "mean fitness over the generation's members",
    "fitness_max": "best member's fitness",
    "fitness_min": "worst member's fitness",
    "fitness_std": "standard deviation of the members' fitness",
    "update_ratio": "fraction of all trainable codes the update changed",
    "codes_changed": "number of codes the update changed",
    "perturbation_boundary_ratio": "fraction of nonzero noise entries gated at the code range",
    "update_boundary_hits": "rounded update steps not applied because the code would leave its range",
    "llm_failures": "LLM answers that fell back to 'stay' during the generation's episodes",
    "seconds_evaluation": "time spent playing episodes",
    "seconds_perturbation": "time spent perturbing and restoring the model codes",
    "seconds_update": "time spent computing and applying the update",
    "seconds_checkpoint": "time spent writing the checkpoint (previous generation's; 0 for the first)",
    "sigma": "noise scale used",
    "alpha": "learning rate used",
    "members": "members evaluated (2 x pairs)",
    # only with --workers / --ray-address (qes_trainer.distributed):
    "workers": "Ray workers",
    "bytes_sent": "bytes the driver sent to workers (member requests + the packed update to every worker)",
    "bytes_update": "bytes of the packed update (changed codes only), sent once to each worker",
    "bytes_received": "bytes of member outcomes (returns and timing) received from workers",
    "members_requeued": "members re-queued because their worker died or timed out",
    "workers_replaced": "workers replaced (died, timed out, or lost while applying the update)",
    "seconds_wall_evaluation": "wall time of the generation's population evaluation on the workers",
    "members_per_worker": "members each worker slot evaluated",
    # only with --eval-every (held-out evaluation of the current model, seeds 10000...):
    "heldout_base_fitness": "held-out fitness of the base model (first row only)",
    "heldout_fitness": "held-out fitness of the model after this generation's update",
    "heldout_standard_error": "its standard error over the held-out episodes",
    "heldout_gain": "held-out fitness minus the base model's, paired by episode",
    "heldout_gain_standard_error": "the paired standard error of that gain (tells progress from episode variance)",
}


def write_metrics(run_dir: str | Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl``, ``metrics.csv`` and ``fitness.png`` in ``run_dir`` from ``rows``."""
    run_dir = Path(run_dir)
    write_bytes_atomic(run_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in rows).encode())
    buffer = io.StringIO()
    fields = list(dict.fromkeys(key for row in rows for key in row)) if rows else list(METRIC_FIELDS)  # a resume may add columns
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(run_dir / "metrics.csv", buffer.getvalue().encode())
    # matplotlib costs the trainer ~40 MB of resident memory for good once imported: plot in a child.
    process = subprocess.run([sys.executable, "-m", "qes_trainer.metrics", str(run_dir)], capture_output=True, text=True)
    if process.returncode != 0 or process.stderr.strip():
        warnings.warn(f"fitness plot: {process.stderr.strip().splitlines()[-1] if process.stderr.strip() else 'failed'}",
                      stacklevel=2)


def plot_fitness(rows: Sequence[dict[str, Any]], path: str | Path) -> bool:
    """Fitness mean with the members' min-max band per generation, and the held-out evaluations (if any);
    False (and a warning) without matplotlib."""
    return plot_runs({"": rows}, path)


def _heldout_points(rows: Sequence[dict[str, Any]]) -> tuple[list[float], list[float], list[float]]:
    """(generations completed, held-out mean, error bar); the base model at 0. The error bar is the paired
    standard error of the gain over the base where logged (the base's own bar is its episodes' spread)."""
    points = []
    if rows and "heldout_base_fitness" in rows[0]:
        points.append((0, rows[0]["heldout_base_fitness"], rows[0]["heldout_base_standard_error"]))
    points += [(row["generation"] + 1, row["heldout_fitness"], row.get("heldout_gain_standard_error", row["heldout_standard_error"]))
               for row in rows if "heldout_fitness" in row]
    return tuple(map(list, zip(*points))) if points else ([], [], [])


def plot_runs(runs: dict[str, Sequence[dict[str, Any]]], path: str | Path) -> bool:
    """One figure for several runs (label -> metrics rows): members' fitness per generation (mean and
    min-max band) and, where logged, the held-out fitness after every few generations (mean +- SE)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('no fitness plot: matplotlib is not installed (pip install "society-env[train]")', file=sys.stderr)
        return False
    figure, axis = plt.subplots(figsize=(7, 4), dpi=100)
    for index, (label, rows) in enumerate(runs.items()):
        color = f"C{index}"
        prefix = f"{label}: " if label else ""
        generations = [row["generation"] for row in rows]
        axis.fill_between(generations, [row["fitness_min"] for row in rows], [row["fitness_max"] for row in rows],
                          alpha=0.15, color=color, label=f"{prefix}members (min-max)")
        axis.plot(generations, [row["fitness_mean"] for row in rows], marker=".", color=color,
                  label=f"{prefix}members' mean (training episodes)")
        x, mean, error = _heldout_points(rows)
        if x:
            axis.errorbar(x, mean, yerr=error, color=color, marker="s", linestyle="--", capsize=3,
                          label=f"{prefix}held-out (after x generations)")
    axis.set_xlabel("generation")
    axis.set_ylabel("fitness (mean return of LLM agents)")
    axis.set_title("QES fitness")
    axis.grid(alpha=0.3)
    axis.legend(loc="best", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return True


def _read_rows(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]


if __name__ == "__main__":
    # python -m qes_trainer.metrics RUN_DIR: (re)draw RUN_DIR/fitness.png
    # python -m qes_trainer.metrics OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]: several runs in one figure
    if len(sys.argv) == 2:
        directory = Path(sys.argv[1])
        sys.exit(0 if plot_fitness(_read_rows(directory), directory / "fitness.png") else 1)
    runs = {label: _read_rows(Path(directory)) for label, directory in (arg.split("=", 1) for arg in sys.argv[2:])}
    sys.exit(0 if plot_runs(runs, sys.argv[1]) else 1)
