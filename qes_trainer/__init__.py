"""Quantized Evolution Strategies on the integer codes of GGUF models: codecs for the quantized block
layouts (``codecs``), the QES noise, fitness shaping and error-feedback update (``qes``), a live working
copy of the model (``live_model``), fitness from episodes in the world (``fitness``), the population on
this process or on Ray (``population``, ``distributed``), and the ``qes-train`` / ``qes-eval`` commands
(``train``, ``evaluate``). See docs/training.md.
"""
