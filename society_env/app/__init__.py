"""The application layer: the ``society-env`` command (:mod:`~society_env.app.cli`), the episode runner
(:mod:`~society_env.app.runner`), recording and replaying runs (:mod:`~society_env.app.runs`) and
experiments (:mod:`~society_env.app.experiment`).

It is the only code that imports everything (the world, the policies); nothing in the world or the
policies imports it back, and importing ``society_env`` does not load it. The QES trainer uses the
runner, never the command line. See docs/architecture.md.
"""
