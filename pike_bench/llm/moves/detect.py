"""What a task's source contains, as the offline moves decide whether they apply.

Plain text tests: cheap, and a miss only costs a move. The method rewrites
(:mod:`pike_bench.llm.moves.rewrites`) are looked for here too, since a move applies
where its rewrite is found.
"""

from __future__ import annotations

import importlib.util
import re

from pike_bench.llm.moves.rewrites import rewrite_attention, rewrite_classes, rewrite_scan

_CONV2D = re.compile(r"\b(?:nn\.)?(?:Conv2d|ConvTranspose2d)\b|\bconv2d\(")
_CONV3D = re.compile(r"\b(?:nn\.)?(?:Conv3d|ConvTranspose3d)\b|\bconv3d\(")
_CONV_OR_RNN = re.compile(r"\b(?:nn\.)?(?:Conv[123]d|ConvTranspose[123]d|LSTM|GRU|RNN)\b|\bconv[123]d\(")
# A binary @ (an operand right before it: not a decorator), or a matrix product by name.
_MATMUL = re.compile(
    r"[\w)\]]\s*@\s*[\w(]|\b(?:matmul|mm|bmm|baddbmm|addmm|einsum|linear|conv[123]d)\(|"
    r"\bnn\.(?:Linear|Bilinear|Conv\w*|LSTM|GRU|RNN|MultiheadAttention|TransformerEncoderLayer)\b"
)
_SOFTMAX = re.compile(r"softmax\(|Softmax\(")  # a call, not the word in a docstring
# The scores q @ k^T: a product whose right operand is transposed on its last two dimensions, e.g.
# q @ k.transpose(-2, -1), torch.matmul(q, k.transpose(2, 3)), F.normalize(q) @ F.normalize(k).transpose(-2, -1)
_SCORES = re.compile(
    r"(?:@|\bmatmul\(|\bbmm\()[^\n]{0,80}\.(?:transpose\(\s*(?:-2\s*,\s*-1|-1\s*,\s*-2|2\s*,\s*3|3\s*,\s*2)\s*\)|mT\b)"
)
_ACTIVATION = re.compile(r"\bnn\.(?:ReLU|GELU)\(|^class\s+\w*gelu\w*\s*\(", re.IGNORECASE | re.MULTILINE)
_LAYER_NORM = re.compile(r"\bnn\.LayerNorm\(")
# What a CUDA graph cannot hold: a wait for the device, or a shape made of tensor values
# (one-argument torch.where is nonzero). Boolean-mask indexing has no textual mark: the
# runtime probe of the capture moves finds it.
_HOST_SYNC = re.compile(
    r"\.(?:item|tolist|cpu|numpy|nonzero)\(\s*\)|\b(?:nonzero|unique|masked_select|bincount|argwhere)\(|"
    r"\btorch\.where\(\s*[^,()]*(?:\([^()]*\))?[^,()]*\)"
)
_MOE = (re.compile(r"\bself\.experts\b"), re.compile(r"\bself\.gate\b"))
_KV_CACHE = re.compile(r"\bcache\w*\s*\[[^\]\n]*\]\s*=[^=]")  # a write into a slice of a cache


def on_cuda(device: str) -> bool:
    return device.startswith("cuda")


def has_triton() -> bool:
    return importlib.util.find_spec("triton") is not None


def has_attention(source: str) -> bool:
    return bool(_SOFTMAX.search(source) and _SCORES.search(source))


def channels_last_fits(source: str) -> bool:
    # nn.Module.to(memory_format=channels_last) refuses a model with 5-d (Conv3d) weights.
    return bool(_CONV2D.search(source)) and not _CONV3D.search(source)


def has_activations(source: str) -> bool:
    return bool(_ACTIVATION.search(source)) and has_triton()


def has_layer_norms(source: str) -> bool:
    return bool(_LAYER_NORM.search(source)) and has_triton()


def has_host_syncs(source: str) -> bool:
    return bool(_HOST_SYNC.search(source))


def has_experts(source: str) -> bool:
    return all(pattern.search(source) for pattern in _MOE)


def has_kv_cache(source: str) -> bool:
    return bool(_KV_CACHE.search(source))


def has_conv3d(source: str) -> bool:
    return bool(_CONV3D.search(source))


# Method rewrites found in the source: {class name: subclass source}, per kind.
_REWRITERS = {"sdpa": (rewrite_attention, "_PikeSDPA"), "scan": (rewrite_scan, "_PikeScan")}


def rewrites_in(source: str, kind: str) -> dict[str, str]:
    rewrite, prefix = _REWRITERS[kind]
    return rewrite_classes(source, rewrite, prefix)


def has_matmul(source: str) -> bool:
    return bool(_MATMUL.search(source))


def has_conv_or_rnn(source: str) -> bool:
    return bool(_CONV_OR_RNN.search(source))


def has_scan(source: str) -> bool:
    return bool(rewrites_in(source, "scan"))

