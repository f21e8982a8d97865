"""The application layer: the ``society-env`` command (:mod:`~society_env.app.cli`), one run's
specification (:mod:`~society_env.app.spec`), recording and replaying runs (:mod:`~society_env.app.runs`,
through the episode loop :mod:`policies.rollout`) and experiments (:mod:`~society_env.app.experiment`).

It is the only code that imports everything (the world, the policies); nothing in the world or the
policies imports it back, importing ``society_env`` does not load it, and the QES trainer never imports
it. See docs/architecture.md. From a script::

    from society_env.app import RunSpec, run
    result = run(RunSpec(preset="small", policy="forager=2,raider=2", steps=50, out="runs/mine", quiet=True))
    print(result.run_dir, result.summary["births"])
"""

from society_env.app.runs import RunResult, run
from society_env.app.spec import RunSpec

__all__ = ["RunSpec", "RunResult", "run"]
