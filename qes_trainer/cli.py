"""Entry points of ``qes-train`` and ``qes-eval``: a missing extra is a one-line error naming the
install command, not a traceback (the trainer's modules import gguf, llama-cpp-python and matplotlib
at the top)."""

from __future__ import annotations

import sys
from typing import Sequence

EXTRA_OF = {"gguf": "train", "llama_cpp": "train", "matplotlib": "train", "ray": "distributed"}


def _run(module: str, program: str, argv: Sequence[str] | None) -> int:
    """Run ``module.main(argv)``; a missing optional package, at import or later, is a one-line error."""
    from policies.llm.engine import limit_openmp_spinning

    limit_openmp_spinning()  # before llama.cpp loads
    try:
        return __import__(module, fromlist=["main"]).main(argv)
    except ModuleNotFoundError as error:
        missing = (error.name or "").split(".")[0]
        if missing not in EXTRA_OF:
            raise
        print(f'{program}: error: it needs the {missing} package: pip install "society-env[{EXTRA_OF[missing]}]"',
              file=sys.stderr)
        return 2


def train(argv: Sequence[str] | None = None) -> int:
    return _run("qes_trainer.train", "qes-train", argv)


def evaluate(argv: Sequence[str] | None = None) -> int:
    return _run("qes_trainer.evaluate", "qes-eval", argv)
