"""``python -m policies.llm.server_main ARGS``: llama-cpp-python's OpenAI-compatible server
(``python -m llama_cpp.server ARGS``, same arguments), with OpenMP's idle spinning cut short unless the
user chose (:func:`policies.llm.engine.limit_openmp_spinning`) and the AMX workaround of
:func:`policies.llm.engine.disable_amx_weight_buffers` applied first, so that it runs on the Xeons where
llama.cpp's AMX kernels crash. :func:`policies.llm.server.launch_local_server` starts the server this way.
"""

from __future__ import annotations

import runpy

from policies.llm.engine import disable_amx_weight_buffers, limit_openmp_spinning

if __name__ == "__main__":
    limit_openmp_spinning()  # before llama.cpp loads: its idle threads sleep soon instead of spinning
    disable_amx_weight_buffers()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
