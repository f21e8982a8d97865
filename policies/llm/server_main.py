"""``python -m policies.llm.server_main ARGS``: llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``, same arguments), with ``OMP_WAIT_POLICY=PASSIVE`` unless set
(:func:`policies.llm.engine.prefer_passive_openmp`) and the AMX workaround of
:func:`policies.llm.engine.disable_amx_weight_buffers` applied first, so that it runs on the Xeons where
llama.cpp's AMX kernels crash. :func:`policies.llm.server.launch_local_server` starts the server this way.
"""

from __future__ import annotations

import runpy

from policies.llm.engine import disable_amx_weight_buffers, prefer_passive_openmp

if __name__ == "__main__":
    prefer_passive_openmp()  # before llama.cpp loads: its threads sleep, not spin, between requests
    disable_amx_weight_buffers()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
