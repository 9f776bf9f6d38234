"""Every option of a run, declared once for both front ends, and the settings built from them.

pytest takes each option as ``--pike-NAME`` (the plugin), the ``pike`` command as
``--NAME`` in the sub-commands the option lists; both parsers are filled from
:data:`OPTIONS`, so a name, default, choice or help text is written once. Either
front end then makes one :class:`Settings`, and the evaluator, the optimizer, the
gate and the publisher are built from it alone.

Importing this module imports no torch: the plugin is loaded into every pytest run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from pike_bench.baselines import BASELINES, COMPILE_MODES, compile_cache_beside, parse_baselines
from pike_bench.llm.base import LLMS
from pike_bench.policy import CHECKS
from pike_bench.search.presets import PRESETS, preset
from pike_bench.tasks import SIZES

PYTEST_PREFIX, CLI_PREFIX = "--pike-", "--"

# The `pike` sub-commands that evaluate candidates, and so take the evaluator's options.
EVALUATING = ("eval", "optimize", "accept", "audit")


@dataclass(frozen=True)
class Option:
    name: str  # "max-time": --pike-max-time for pytest, --max-time for `pike`
    help: str
    default: Any = None
    type: Callable[[str], Any] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    flag: bool = False  # on when given
    repeat: bool = False  # may be given again: a list
    commands: tuple[str, ...] = ()  # the `pike` sub-commands that take it
    pytest: bool = True  # also a pytest option

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    @property
    def initial(self) -> Any:
        """Its value when not given."""
        return False if self.flag else [] if self.repeat else self.default

    def parser_arguments(self, default: Any = None) -> dict[str, Any]:
        """Keyword arguments of add_argument (argparse) and addoption (pytest, which wraps argparse)."""
        if self.flag:
            return dict(action="store_true", default=False, help=self.help)
        arguments = dict(default=self.initial if default is None else default, help=self.help)
        if self.repeat:
            arguments["action"] = "append"
        for key in ("type", "choices", "metavar"):
            if getattr(self, key) is not None:
                arguments[key] = getattr(self, key)
        return arguments


OPTIONS: tuple[Option, ...] = (
    Option("tasks", "folder or file of KernelBench-form tasks, instead of the built-in suites (repeatable)",
           metavar="PATH", repeat=True, commands=("tasks", *EVALUATING, "leaderboard")),
    # The evaluator.
    Option("device", "cpu, cuda or cuda:N (default: cuda if available, else cpu)", metavar="DEVICE",
           commands=EVALUATING),
    Option("size", "task size: full, or the task's SMALL size (default: full on a GPU, small on the CPU)",
           choices=SIZES, commands=EVALUATING),
    Option("mode", "eval (PIKE: .eval(), BatchNorm uses running statistics) or train (KernelBench's original)",
           default="eval", choices=("eval", "train"), commands=EVALUATING),
    Option("check", "check policy: strict (ours), pike or kernelbench (the peers' evaluators, which fix their "
                    "mode and input sets)", default="strict", choices=CHECKS, commands=("eval", "optimize", "accept")),
    Option("trials", "Hypothesis input sets checked per candidate (default 5)", default=5, type=int, metavar="N",
           commands=EVALUATING),
    Option("seed", "Hypothesis seed of the input sets (default: a fresh one each run, printed on failure)",
           type=int, metavar="SEED", commands=EVALUATING),
    Option("timeout", "longest a worker may stay silent in one step (build, one input set, timing; default 300)",
           default=300.0, type=float, metavar="SECONDS", commands=EVALUATING),
    Option("sandbox", "run candidates without network, secrets or write access (bubblewrap, else unshare): auto uses "
                      "it where it works, on refuses to run without it (default auto)",
           default="auto", choices=("auto", "on", "off"), commands=EVALUATING),
    Option("max-time", "time cap of the interleaved timing rounds of one task or candidate (default 20)",
           default=20.0, type=float, metavar="SECONDS", commands=EVALUATING),
    Option("no-l2-flush", "do not flush the GPU's L2 cache before each timed call", flag=True, commands=EVALUATING),
    Option("baselines", "baselines timed beside each task or candidate (eager, the reference, always is)",
           default=",".join(BASELINES), metavar="eager,compile,graph", commands=EVALUATING),
    Option("no-baselines", "check the candidate only; time no baseline", flag=True, commands=("eval",),
           pytest=False),
    Option("compile-mode", "torch.compile mode of the compile baseline", default="default", choices=COMPILE_MODES,
           commands=EVALUATING),
    Option("suspicious-over", "a speedup over the fastest baseline timed above X is flagged suspicious, "
                              "not correct (default 10)", default=10.0, type=float, metavar="X", commands=EVALUATING),
    Option("require-custom-kernel", "policy: reject candidates without a Triton, CUDA or C++ kernel", flag=True,
           commands=EVALUATING),
    # The optimizer.
    Option("optimize", "let LLM agents optimize the selected tasks (instead of timing their baselines)",
           flag=True),  # `pike optimize` is a sub-command
    Option("strategy", f"search strategy: {', '.join(PRESETS)}, or a JSON preset file (default pike-b)",
           default="pike-b", metavar="NAME|FILE.json", commands=("optimize",)),
    Option("budget", "LLM queries per task, EFA and IBA queries included (default 20)", default=20, type=int,
           metavar="QUERIES", commands=("optimize",)),
    Option("dollars", "dollars per task at most", type=float, metavar="USD", commands=("optimize",)),
    Option("llm", "auto (anthropic if ANTHROPIC_API_KEY is set, else offline), anthropic, offline, replay",
           default="auto", choices=LLMS, commands=("optimize",)),
    Option("replay", "recorded replies for the replay LLM", metavar="FILE", commands=("optimize",)),
    Option("model", "model of the optimizing and brainstorming agents", commands=("optimize",)),
    Option("efa-model", "model of the error fixing agent (a cheaper one)", commands=("optimize",)),
    Option("concurrency", "LLM requests in flight (default 16)", default=16, type=int, metavar="N",
           commands=("optimize",)),
    Option("devices", "one worker per listed GPU, candidates to the next free one (default: the one device)",
           metavar="all|0,1,...", commands=("optimize",)),
    Option("ray", "evaluate candidates on Ray actors, one per GPU of the cluster (local: start one here)",
           metavar="auto|ADDRESS|local", commands=("optimize",)),
    Option("ray-cpus", "with ray: N CPU actors, for a cluster without GPUs (default 0: one actor per GPU)",
           default=0, type=int, metavar="N", commands=("optimize",)),
    Option("in-flight", "optimize N tasks at once, each with a worker of its own per GPU, so one is checked and "
                        "timed while another builds (default 1)", default=1, type=int, metavar="N",
           commands=("optimize",)),
    # The record, the kept solutions and their gate.
    Option("store", "the record of runs (a rerun of the same command resumes from it)",
           default=".pike/runs.sqlite", metavar="PATH", commands=("optimize", "accept", "leaderboard", "report", "forget")),
    Option("solutions", "kept solutions: written by the optimizer, gated on every pytest run without it",
           default="solutions", metavar="DIR", commands=("optimize", "accept", "remove")),
    Option("gate-tolerance", "a solution fails when its speedup over eager drops more than this below the "
                             "recorded one", default=0.10, type=float, metavar="FRACTION"),
)

BY_NAME = {option.name: option for option in OPTIONS}


def add_pytest_options(group) -> None:
    """Fill pytest's option group (``parser.getgroup``) from the table."""
    for option in OPTIONS:
        if option.pytest:
            group.addoption(PYTEST_PREFIX + option.name, dest="pike_" + option.dest, **option.parser_arguments())


def add_cli_options(parser: argparse.ArgumentParser, command: str, **defaults: Any) -> None:
    """Fill a `pike` sub-command's parser with the options it takes; ``defaults`` where the
    command's own differ (dest names)."""
    for option in OPTIONS:
        if command in option.commands:
            parser.add_argument(CLI_PREFIX + option.name, **option.parser_arguments(defaults.get(option.dest)))


class SettingsError(ValueError):
    """A bad option value; the message is the one line to show, naming the option as given."""


class _Built:
    """What is built from the settings. The fields come from :data:`OPTIONS` (see Settings)."""

    prefix: str

    @classmethod
    def from_pytest(cls, config) -> "Settings":
        values = {o.dest: config.getoption("pike_" + o.dest) for o in OPTIONS if o.pytest}
        return cls(prefix=PYTEST_PREFIX, **values).checked()

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Settings":
        values = {o.dest: getattr(args, o.dest) for o in OPTIONS if hasattr(args, o.dest)}
        return cls(prefix=CLI_PREFIX, **values).checked()

    def flag(self, name: str) -> str:
        """The option as this front end spells it: --pike-trials or --trials."""
        return self.prefix + name

    def checked(self) -> "Settings":
        """Itself, once every value that can be judged without torch is; else SettingsError."""
        try:
            preset(self.strategy)
        except ValueError as exc:
            raise SettingsError(f"{self.flag('strategy')}: {exc}") from None
        if self.llm == "replay" and not self.replay:
            raise SettingsError(f"{self.flag('llm')} replay needs {self.flag('replay')} FILE "
                                "(a file of recorded replies)")
        if self.budget < 1 and self.dollars is None:
            raise SettingsError(f"{self.flag('budget')} must be at least 1 (or give {self.flag('dollars')})")
        if self.trials < 1:
            raise SettingsError(f"{self.flag('trials')} must be at least 1")
        if self.in_flight < 1 or (self.in_flight > 1 and self.ray):
            raise SettingsError(f"{self.flag('in-flight')} must be at least 1, and 1 with {self.flag('ray')} "
                                "(Ray spreads one task's candidates over the cluster instead)")
        self.baseline_names()
        if self.ray or self.ray_cpus or self.devices:
            from pike_bench.evaluate.ray_pool import check_options  # imports torch: only when asked for

            try:
                check_options(self.ray, self.ray_cpus, self.devices, self.flag("ray"))
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        return self

    @property
    def task_roots(self) -> list[Path] | None:
        """The task folders given, or None for the built-in suites."""
        return [Path(p) for p in self.tasks] or None

    def baseline_names(self) -> tuple[str, ...]:
        if self.no_baselines:
            return ()
        try:
            return parse_baselines(self.baselines)
        except ValueError as exc:
            raise SettingsError(f"{self.flag('baselines')} {exc}") from None

    def resolve_device(self) -> str:
        from pike_bench.evaluate import resolve_device  # imports torch

        try:
            return resolve_device(self.device)
        except ValueError as exc:
            raise SettingsError(f"{self.flag('device')} {exc}") from None

    def choose_sandbox(self):
        """The sandbox the workers will use; `on` where there is none is a SettingsError."""
        from pike_bench.evaluate.sandbox import Sandbox, SandboxUnavailable

        try:
            return Sandbox.choose(self.sandbox)
        except SandboxUnavailable as exc:
            raise SettingsError(f"{self.flag('sandbox')} on: {exc}") from None

    def no_sandbox_note(self, why_not: str) -> str:
        return (f"no sandbox: {why_not}; candidates run with your network and files "
                f"({self.flag('sandbox')} off silences this)")

    @property
    def store_path(self) -> Path:
        return Path(self.store)

    @property
    def solutions_dir(self) -> Path:
        return Path(self.solutions)

    def evaluator_options(self, **overrides: Any) -> dict[str, Any]:
        """The Evaluator's keyword arguments, as given: each evaluator fills in what depends
        on its own device (size, the graph baseline)."""
        from pike_bench.evaluate.timing import TimingOptions

        options = dict(
            size=self.size, mode=self.mode, trials=self.trials, timeout=self.timeout,
            timing=TimingOptions(max_seconds=self.max_time, l2_flush=not self.no_l2_flush),
            baselines=self.baseline_names(), compile_mode=self.compile_mode, suspicious_over=self.suspicious_over,
            require_custom_kernel=self.require_custom_kernel, sandbox=self.sandbox, check=self.check,
            compile_cache=compile_cache_beside(self.store_path),
        )
        return {**options, **overrides}

    def evaluator(self, device: str, **overrides: Any):
        from pike_bench.evaluate import Evaluator

        return Evaluator(device, **self.evaluator_options(**overrides))

    def optimize_options(self):
        from pike_bench.optimize import OptimizeOptions

        return OptimizeOptions(
            strategy=self.strategy, budget_queries=self.budget, budget_dollars=self.dollars, llm=self.llm,
            replay_file=self.replay, model=self.model, efa_model=self.efa_model, concurrency=self.concurrency,
            store_path=self.store_path, solutions_dir=self.solutions_dir,
        )

    def optimizing_evaluator(self, device: str, say: Callable[[str], None], local=None):
        """Where the optimizer's candidates go: Ray actors, one worker per listed device, or
        the one evaluator of ``device`` (``local``, when the caller already has it)."""
        if self.ray:
            from pike_bench.evaluate.ray_pool import open_pool

            # Not this machine's evaluator: the driver may have no GPU where the actors have one.
            try:
                return open_pool(self.ray, self.ray_cpus, self.flag("ray"), say, **self.evaluator_options())
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
        if self.devices:
            from pike_bench.evaluate.pool import EvaluatorPool, parse_devices

            try:
                return EvaluatorPool.on_devices(parse_devices(self.devices), **self.evaluator_options())
            except ValueError as exc:
                raise SettingsError(f"{self.flag('devices')} {exc}") from None
        return local if local is not None else self.evaluator(device)

    def optimizer(self, evaluator, progress):
        from pike_bench.optimize import Optimizer

        return Optimizer(evaluator, self.optimize_options(), progress=progress)

    def gate(self, evaluator, task, solution):
        """A kept solution re-verified and re-timed; a first run on a new device records its baseline."""
        from pike_bench import solutions

        verdict = solutions.gate(evaluator, task, solution, self.gate_tolerance)
        if verdict.rebaselined:
            solutions.rebaseline(self.solutions_dir, solution, verdict)
        return verdict

    def publish(self, marks: dict[str, Iterable[str]] | None = None) -> Path:
        """The leaderboard of the record, written beside it; returns its HTML page."""
        from pike_bench.publish import publish

        return publish(self.store_path, self.store_path.parent / "leaderboard", marks)


# The fields are made from the table, so that each default is written there alone.
Settings = make_dataclass(
    "Settings",
    [(o.dest, Any, field(default_factory=list) if o.repeat else field(default=o.initial)) for o in OPTIONS]
    + [("prefix", str, field(default=CLI_PREFIX))],
    bases=(_Built,),
    frozen=True,
)
Settings.__doc__ = "The settings of one run, from pytest's options or the `pike` command's (see OPTIONS)."
Settings.__module__ = __name__

__all__ = ["OPTIONS", "Option", "Settings", "SettingsError", "add_cli_options", "add_pytest_options"]
