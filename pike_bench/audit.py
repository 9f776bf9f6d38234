"""The audit: a folder of candidates judged under several check policies, side by side.

    pike audit level3 published/ --policies strict,pike,kernelbench --out audit/

shows, for each candidate, the verdict and speedup under each policy and the rule that
made the difference, so a reader can see which of a published set of kernels survive
the stricter check, and why.

Which task a candidate file is for. Under the candidates folder a file ``X.py`` is
matched, in this order, by

1. its path without ``.py`` being the task's id (``level3/1_MLP.py``);
2. its name being the task's name (``1_MLP.py``);
3. its name being the task's number (``1.py``: the task whose name is ``1_...``).

A name that fits two tasks (``1.py`` with two levels selected) is refused: put the file
under its level's folder. Files that fit no task are listed, not judged.

Each policy evaluates and times every candidate on its own. Sharing one timing among
policies would be honest only for policies that run the same program, and they do not:
kernelbench runs the models in training mode (BatchNorm on batch statistics), pike and
strict in inference mode. All policies use the same seed, so a rerun with ``--seed``
draws the same input sets.

An audit of large models takes minutes per candidate, so it is written out after every
verdict and resumed: run again with the same ``--out`` and it keeps the verdicts there
whose candidate file is unchanged (same seed, read from the earlier audit unless
``--seed`` names another), and judges only the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tabulate import tabulate

from pike_bench.policy import CheckPolicy
from pike_bench.evaluate.result import CORRECT, SUSPICIOUS, EvalResult
from pike_bench.tasks import Task

SCHEMA_VERSION = 1
PASSING = (CORRECT, SUSPICIOUS)  # suspicious passed every check; only its speedup waits for a person


@dataclass
class AuditRow:
    task: str
    candidate: str  # the file, relative to the candidates folder
    results: dict[str, EvalResult]  # policy name -> its verdict (absent: not judged yet)
    source_sha256: str = ""  # of the candidate file, so a resumed audit knows it is the same

    def passed(self, policy: str) -> bool:
        return policy in self.results and self.results[policy].status in PASSING

    def difference(self) -> str:
        """The rules that made the verdicts differ ("" when every policy agrees)."""
        verdicts = {name: (result.status in PASSING, result.rule or result.status)
                    for name, result in self.results.items()}
        if all(ok for ok, _ in verdicts.values()) or len(set(verdicts.values())) == 1:
            return ""
        failed = [f"{name} fails on {why}" for name, (ok, why) in verdicts.items() if not ok]
        passed = [name for name, (ok, _) in verdicts.items() if ok]
        return "; ".join(failed + ([f"{', '.join(passed)} pass{'es' if len(passed) == 1 else ''}"] if passed else []))


@dataclass
class Audit:
    policies: list[CheckPolicy]
    seed: int
    rows: list[AuditRow] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # candidate files that fit no task
    without_candidate: list[str] = field(default_factory=list)  # task ids

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def passed(self, policy: str) -> int:
        return sum(row.passed(policy) for row in self.rows)

    def to_dict(self) -> dict:
        first = next((r for row in self.rows for r in row.results.values()), None)
        return {
            "schema_version": SCHEMA_VERSION,
            "seed": self.seed,
            "device": first.device if first else "",
            "device_name": first.device_name if first else "",
            "torch_version": first.torch_version if first else "",
            "policies": [{"name": p.name, "summary": p.summary, "rules": list(p.rules), "mode": p.mode,
                          "input_sets": p.input_sets} for p in self.policies],
            "passed": {name: self.passed(name) for name in self.names},
            "rows": [{"task": row.task, "candidate": row.candidate, "source_sha256": row.source_sha256,
                      "difference": row.difference(),
                      "results": {name: result.to_dict() for name, result in row.results.items()}}
                     for row in self.rows],
            "unmatched": self.unmatched,
            "without_candidate": self.without_candidate,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def table(self) -> str:
        """Task, candidate, verdict and speedup per policy, and the rule that made the difference."""
        rows = [[row.task, row.candidate, *(_verdict(row.results.get(name)) for name in self.names), row.difference()]
                for row in self.rows]
        totals = ["passed", f"{len(self.rows)} candidates", *(f"{self.passed(n)}/{len(self.rows)}" for n in self.names), ""]
        return tabulate(rows + [totals], headers=["task", "candidate", *self.names, "difference"], tablefmt="github")

    def to_markdown(self) -> str:
        first = next((r for row in self.rows for r in row.results.values()), None)
        where = f"{first.device} ({first.device_name}), torch {first.torch_version}, " if first else ""
        lines = [f"# Audit: {len(self.rows)} candidates under {', '.join(self.names)}", "",
                 f"{where}seed {self.seed}; speedups over eager, each policy timed on its own.", ""]
        lines += [f"- **{p.name}**: {p.summary}" for p in self.policies]
        lines += ["", self.table(), ""]
        failures = [[row.task, name, result.status, result.rule or "-", result.reason]
                    for row in self.rows for name, result in row.results.items() if result.status not in PASSING]
        if failures:
            lines += ["## Reasons", "", tabulate(failures, headers=["task", "policy", "status", "rule", "reason"],
                                                 tablefmt="github"), ""]
        return "\n".join(lines + self.notes()).rstrip() + "\n"

    def notes(self) -> list[str]:
        """What was not judged: files that fit no task, tasks without a file."""
        notes = []
        if self.unmatched:
            notes.append(f"Candidate files that fit no task (not judged): {', '.join(self.unmatched)}")
        if self.without_candidate:
            notes.append(f"Tasks without a candidate: {', '.join(self.without_candidate)}")
        return notes

    def write(self, out: Path) -> list[Path]:
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / "audit.md", out / "audit.json"
        md.write_text(self.to_markdown())
        js.write_text(self.to_json() + "\n")
        return [md, js]


def _verdict(result: EvalResult | None) -> str:
    if result is None:
        return "not judged yet"
    if result.status in PASSING:
        eager = result.speedups.get("eager")
        return f"{result.status} {eager.value:.2f}x" if eager else result.status
    return f"{result.status}: {result.rule}" if result.rule else result.status


def match_candidates(tasks: list[Task], folder: Path) -> tuple[list[tuple[Task, Path]], list[str]]:
    """(task, candidate file) pairs in task order, and the files that fit no task.

    ValueError names a file that fits more than one task."""
    by_id = {t.id: t for t in tasks}
    pairs, unmatched = [], []
    for path in sorted(Path(folder).rglob("*.py")):
        relative = path.relative_to(folder).with_suffix("").as_posix()
        fits = ([by_id[relative]] if relative in by_id else
                [t for t in tasks if t.name == path.stem] or
                [t for t in tasks if t.name.split("_", 1)[0] == path.stem and path.stem.isdigit()])
        if len(fits) > 1:
            raise ValueError(f"{path}: fits {', '.join(t.id for t in fits)}; put it under its level's folder "
                             f"({fits[0].level}/{path.name})")
        if fits:
            pairs.append((fits[0], path))
        else:
            unmatched.append(relative + ".py")
    order = {t.id: i for i, t in enumerate(tasks)}
    pairs.sort(key=lambda pair: (order[pair[0].id], str(pair[1])))
    return pairs, unmatched


def earlier_verdicts(path: Path) -> tuple[int | None, dict]:
    """The seed of an earlier audit.json and its verdicts, keyed (task, candidate file,
    source sha256, policy); (None, {}) where there is none or it cannot be read."""
    try:
        data = json.loads(path.read_text())
        verdicts = {(row["task"], row["candidate"], row.get("source_sha256", ""), name): EvalResult.from_dict(r)
                    for row in data["rows"] for name, r in row["results"].items()}
        return data["seed"], verdicts
    except (OSError, ValueError, KeyError, TypeError):
        return None, {}


def audit_folder(tasks: list[Task], folder: Path, policies: Iterable[CheckPolicy], evaluator_for: Callable,
                 seed: int, progress: Callable[[str], None] = print, earlier: dict | None = None,
                 after_each: Callable[[Audit], None] = lambda audit: None) -> Audit:
    """Judge every matched candidate under each policy; ``evaluator_for(policy)`` opens an
    Evaluator for it (one at a time, so one worker holds the device). ``earlier``: verdicts
    of an earlier run of this audit (earlier_verdicts), kept instead of judged again;
    ``after_each(audit)`` runs after every new verdict (to write it out). OSError or
    UnicodeDecodeError: a candidate file that cannot be read (before anything runs)."""
    pairs, unmatched = match_candidates(tasks, folder)
    sources = [path.read_text() for _, path in pairs]
    matched = {task.id for task, _ in pairs}
    result = Audit(list(policies), seed, unmatched=unmatched,
                   without_candidate=[t.id for t in tasks if t.id not in matched])
    result.rows = [AuditRow(task.id, path.relative_to(folder).as_posix(), {},
                            hashlib.sha256(source.encode()).hexdigest())
                   for (task, path), source in zip(pairs, sources)]
    for row in result.rows:
        for name in result.names:
            kept = earlier.get((row.task, row.candidate, row.source_sha256, name)) if earlier else None
            if kept is not None:
                row.results[name] = kept
    for policy in result.policies:
        waiting = [(row, task, source) for row, (task, _), source in zip(result.rows, pairs, sources)
                   if policy.name not in row.results]
        if not waiting:
            continue
        with evaluator_for(policy) as evaluator:
            for row, task, source in waiting:
                progress(f"{policy.name}: {task.id} <- {row.candidate}")
                row.results[policy.name] = evaluator.evaluate(task, source, hypothesis_seed=seed)
                after_each(result)
    return result
