"""What a Claude call costs: list prices in US dollars per million tokens.

This is the one place prices live, so budgets and leaderboards agree. Prices change;
to correct one or add a model without editing code, name a JSON file by the
``PIKE_PRICES`` environment variable (or pass its path to :func:`load_prices`)::

    {"claude-sonnet-5-5": {"input": 2.0, "output": 10.0}}

Entries in the file replace the built-in ones of the same name.

Source of the built-in table: Anthropic's pricing page and model pages
(https://platform.claude.com/docs/en/about-claude/pricing, .../docs/en/models/*/overview),
read 2026-11. Only base input and output rates are kept: pike-bench sends no prompt
caching and no batches, so cache and batch rates would never apply. The models are
those the installed anthropic SDK (2.14) names in ``anthropic.types.ModelParam``,
deprecated ones included, so replays of older runs still price correctly.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass

PRICES_ENV = "PIKE_PRICES"


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens.

    A few models bill every token of a request at a higher rate once its prompt is
    long; ``long_prompt_over`` is that threshold in prompt tokens (0: no such tier).
    """

    input: float
    output: float
    long_prompt_over: int = 0
    long_input: float = 0.0
    long_output: float = 0.0

    def rates(self, prompt_tokens: int) -> tuple[float, float]:
        if self.long_prompt_over and prompt_tokens > self.long_prompt_over:
            return self.long_input, self.long_output
        return self.input, self.output


def _same(price: Price, *names: str) -> dict[str, Price]:
    return {name: price for name in names}


DEFAULT_PRICES: dict[str, Price] = {
    # Fable 5.2: $8 / $40. Not read on Anthropic's own page here: taken from resellers
    # that state they charge Anthropic's list price (LaoZhang API, Vercel AI Gateway).
    **_same(Price(8.0, 40.0), "claude-fable-5-2"),
    # Mythos 5.2: unsure. Mythos 5 and 5.1 share their Fable's price, so we assume 5.2 does too.
    **_same(Price(8.0, 40.0), "claude-mythos-5-2"),
    **_same(Price(10.0, 50.0), "claude-fable-5-1", "claude-mythos-5-1", "claude-fable-5", "claude-mythos-5"),
    **_same(Price(4.0, 20.0), "claude-opus-5-5"),
    **_same(
        Price(5.0, 25.0),
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-opus-4-5-20251101",
    ),
    # Sonnet 5's introductory $2 / $10 became its standard price (the rise to $3 / $15 was called off).
    **_same(Price(2.0, 10.0), "claude-sonnet-5-5", "claude-sonnet-5"),
    **_same(Price(3.0, 15.0), "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"),
    # Haiku 5.5 is priced by prompt length: prompts over 100,000 tokens pay 5x on every token.
    "claude-haiku-5-5": Price(0.10, 0.50, long_prompt_over=100_000, long_input=0.50, long_output=2.50),
    **_same(Price(1.0, 5.0), "claude-haiku-4-5", "claude-haiku-4-5-20251001"),
    # Mythos Preview (deprecated, invitation only): unsure. $25 / $125 is the rate given to
    # Project Glasswing participants when it was announced; it is not on the pricing page.
    "claude-mythos-preview": Price(25.0, 125.0),
}

_warned: set[str] = set()  # models already warned about: one warning each, not one per call


def _price_from(model: str, entry: object) -> Price:
    if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
        raise ValueError(f'price of {model!r} must look like {{"input": 3.0, "output": 15.0}} (dollars per million tokens)')
    try:
        return Price(**{key: float(value) if key != "long_prompt_over" else int(value) for key, value in entry.items()})
    except (TypeError, ValueError) as error:
        raise ValueError(f"price of {model!r} is not understood ({error})") from None


def read_prices(path: str) -> dict[str, Price]:
    """The prices of one override file (a JSON object: model -> {"input": ..., "output": ...})."""
    try:
        with open(path, encoding="utf-8") as file:
            table = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read prices from {path}: {error}") from None
    if not isinstance(table, dict):
        raise ValueError(f"{path} must hold a JSON object of model -> price")
    return {model: _price_from(model, entry) for model, entry in table.items()}


def load_prices(path: str | None = None) -> dict[str, Price]:
    """The built-in table, with the file at ``path`` (else ``$PIKE_PRICES``, if set) laid over it."""
    prices = dict(DEFAULT_PRICES)
    path = path or os.environ.get(PRICES_ENV) or None
    if path:
        prices.update(read_prices(path))
    return prices


def cost(model: str, input_tokens: int, output_tokens: int, prices: dict[str, Price]) -> float:
    """Dollars for one call; an unpriced model costs 0.0 and is warned about once."""
    price = prices.get(model)
    if price is None:
        _warn_unpriced(model)
        return 0.0
    input_rate, output_rate = price.rates(input_tokens)
    return (input_tokens * input_rate + output_tokens * output_rate) / 1_000_000


def _warn_unpriced(model: str) -> None:
    if model in _warned:
        return
    _warned.add(model)
    warnings.warn(
        f"no price for model {model!r}: its calls are counted as $0. Add it to a JSON file "
        f'such as {{"{model}": {{"input": 3.0, "output": 15.0}}}} (dollars per million tokens) '
        f"and name that file in ${PRICES_ENV}",
        stacklevel=3,
    )
