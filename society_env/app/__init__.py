"""The application layer: the ``society-env`` command (:mod:`~society_env.app.cli`), recording and
replaying runs (:mod:`~society_env.app.runs`, through the episode loop :mod:`policies.rollout`) and
experiments (:mod:`~society_env.app.experiment`).

It is the only code that imports everything (the world, the policies); nothing in the world or the
policies imports it back, importing ``society_env`` does not load it, and the QES trainer never imports
it. See docs/architecture.md.
"""
