"""The study's named strategy variants as presets (`--pike-strategy NAME`).

PIKE-B and PIKE-B without the IBA; PIKE-O as configured by default, and the steps of
the ablation that turn it from explore-heavy into exploit-heavy: mutation only (no
crossover), one island instead of three, exploit only (no explore or elite sampling).
The study's labels (mut, 1isl, EO) name the same knobs; its other labels (npar, SL)
are not reproduced here until their exact meaning is confirmed against the paper.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from pike_bench.search.pike_b import PikeBConfig
from pike_bench.search.pike_o import PikeOConfig

_O = PikeOConfig()
PRESETS = {
    "pike-b": PikeBConfig(),
    "pike-b-no-iba": PikeBConfig(iba=False),
    "pike-o": _O,
    "pike-o-mut": replace(_O, crossover=0.0),
    "pike-o-mut-1isl": replace(_O, crossover=0.0, islands=1),
    "pike-o-mut-1isl-eo": replace(_O, crossover=0.0, islands=1, explore=0.0, exploit=1.0, elite=0.0),
    "pike-o-no-efa": replace(_O, efa=False),
}


def preset(name: str) -> PikeBConfig | PikeOConfig:
    """A named preset, or a JSON preset file: {"base": "pike-o", "islands": 2, ...}."""
    if name.endswith(".json"):
        return _preset_file(Path(name))
    if name not in PRESETS:
        raise ValueError(f"unknown strategy {name!r}; one of {', '.join(PRESETS)}, or a .json preset file")
    return PRESETS[name]


def _preset_file(path: Path) -> PikeBConfig | PikeOConfig:
    try:
        values = json.loads(path.read_text())
        base = preset(values.pop("base"))
        return replace(base, **values)
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a preset file ({type(exc).__name__}: {exc}); "
                         'write {"base": "pike-b", "per_round": 8, ...}') from None
