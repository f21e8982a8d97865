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

from society_env.files import write_bytes_atomic

__all__ = ["write_metrics", "plot_fitness", "METRIC_FIELDS"]

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
    """Fitness mean with the members' min-max band per generation; False (and a warning) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('no fitness plot: matplotlib is not installed (pip install "society-env[train]")', file=sys.stderr)
        return False
    generations = [row["generation"] for row in rows]
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    axis.fill_between(generations, [row["fitness_min"] for row in rows], [row["fitness_max"] for row in rows],
                      alpha=0.25, label="members (min-max)")
    axis.plot(generations, [row["fitness_mean"] for row in rows], marker="o", label="mean")
    axis.set_xlabel("generation")
    axis.set_ylabel("fitness (mean return of LLM agents)")
    axis.set_title("QES fitness")
    axis.grid(alpha=0.3)
    axis.legend(loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    write_bytes_atomic(path, buffer.getvalue())
    return True


if __name__ == "__main__":  # python -m qes_trainer.metrics RUN_DIR: (re)draw RUN_DIR/fitness.png
    directory = Path(sys.argv[1])
    lines = (directory / "metrics.jsonl").read_text().splitlines()
    sys.exit(0 if plot_fitness([json.loads(line) for line in lines], directory / "fitness.png") else 1)
