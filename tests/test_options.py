"""One declaration per option: pytest's --pike-NAME and the `pike` command's --NAME make
the same settings, and what is built from them carries the values given."""

from dataclasses import fields

import pytest

from conftest import CANDIDATES, DATA
from pike_bench.cli import build_parser, main
from pike_bench.options import OPTIONS, Settings, SettingsError

pytest_plugins = ["pytester"]

GIVEN = {"trials": "3", "budget": "7", "device": "cpu", "max-time": "0.5", "strategy": "pike-o",
         "mode": "train", "compile-mode": "max-autotune", "baselines": "eager"}


def test_pytest_and_pike_optimize_make_the_same_settings(pytester):
    config = pytester.parseconfig(*[a for name, value in GIVEN.items() for a in (f"--pike-{name}", value)])
    from_pytest = Settings.from_pytest(config)
    args = build_parser().parse_args(["optimize", "level3/1_MLP",
                                      *[a for name, value in GIVEN.items() for a in (f"--{name}", value)]])
    from_pike = Settings.from_args(args)
    # pike optimize takes every option a pytest run of the optimizer does, and reads it alike.
    pytest_only = {"prefix", "optimize", "gate_tolerance"}
    for field in fields(Settings):
        if field.name not in pytest_only:
            assert getattr(from_pytest, field.name) == getattr(from_pike, field.name), field.name
    assert (from_pike.trials, from_pike.budget, from_pike.max_time) == (3, 7, 0.5)


def test_the_evaluator_and_optimizer_are_built_from_the_settings():
    settings = Settings.from_args(build_parser().parse_args(
        ["optimize", "t", "--trials", "2", "--max-time", "0.5", "--no-l2-flush", "--baselines", "compile",
         "--budget", "4", "--store", "x/runs.sqlite", "--solutions", "kept"]))
    options = settings.evaluator_options()
    assert (options["trials"], options["timing"].max_seconds, options["timing"].l2_flush) == (2, 0.5, False)
    assert options["baselines"] == ("eager", "compile") and str(options["compile_cache"]) == "x/inductor-cache"
    optimize = settings.optimize_options()
    assert (optimize.budget_queries, str(optimize.store_path), str(optimize.solutions_dir)) == (4, "x/runs.sqlite", "kept")
    with settings.evaluator("cpu") as evaluator:
        assert (evaluator.trials, evaluator.baselines, evaluator.timing.max_seconds) == (2, ["eager", "compile"], 0.5)


def test_each_option_is_in_the_pike_commands_it_names():
    commands = {name: parser for name, parser in build_parser()._subparsers._group_actions[0].choices.items()}
    for option in OPTIONS:
        for command in option.commands:
            flags = {flag for action in commands[command]._actions for flag in action.option_strings}
            assert f"--{option.name}" in flags, (option.name, command)


def test_a_bad_value_is_one_line_naming_the_option_as_given(pytester, capsys):
    with pytest.raises(SettingsError, match="^--trials must be at least 1$"):
        Settings.from_args(build_parser().parse_args(["optimize", "t", "--trials", "0"]))
    with pytest.raises(SettingsError, match="^--pike-trials must be at least 1$"):
        Settings.from_pytest(pytester.parseconfig("--pike-trials", "0"))
    with pytest.raises(SettingsError, match="^--in-flight must be at least 1, and 1 with --ray "):
        Settings.from_args(build_parser().parse_args(["optimize", "t", "--in-flight", "0"]))
    with pytest.raises(SystemExit) as exited:  # eval takes no budget: argparse's own error
        main(["eval", str(DATA / "level0" / "1_TinyMLP.py"), str(CANDIDATES / "good.py"), "--budget", "0"])
    assert exited.value.code == 2 and "unrecognized arguments: --budget 0" in capsys.readouterr().err
    code = main(["eval", str(DATA / "level0" / "1_TinyMLP.py"), str(CANDIDATES / "good.py"), "--baselines", "fast"])
    assert (code, capsys.readouterr().err) == (2, "pike: --baselines fast: not a baseline; choose from eager, "
                                                  "compile, graph\n")
