"""Code that the offline moves paste into candidates, kept as real modules so that the
linter and the tests see it: each module works on its own (``import torch as
_pike_torch`` at its top, as in a candidate) and is split into sections by
``# --- name ---`` headings; :func:`pike_bench.llm.moves.render.paste` copies the
sections a candidate needs. Nothing here knows a task's names.

- :mod:`.wrappers`: wrappers of the built model (whole-forward capture, channels-last,
  bf16 autocast, fresh outputs);
- :mod:`.sdpa`: minGPT attention as scaled_dot_product_attention;
- :mod:`.triton_kernels`: activations and LayerNorm as Triton kernels;
- :mod:`.frontier`: host-sync probe, piecewise capture, checked rewrites, MoE routing,
  chunked linear scan.
"""
