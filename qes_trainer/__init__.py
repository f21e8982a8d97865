"""Quantized Evolution Strategies on the integer codes of GGUF models (to come)."""
