from pathlib import Path

import pytest

from pike_bench.tasks import BUILTIN_ROOT, TaskError, discover_tasks, find_task, sized_module, task_from_file

from conftest import DATA

GOOD = "import torch\nclass Model(torch.nn.Module):\n    pass\nn = 4\nSMALL = {'n': 2}\ndef get_inputs():\n    return [torch.randn(n)]\ndef get_init_inputs():\n    return []\n"


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_builtin_suite_has_ids_levels_and_marks():
    tasks, errors = discover_tasks()
    assert errors == []
    ids = [task.id for task in tasks]
    assert "level3/1_MLP" in ids
    mlp = find_task("level3/1_MLP")
    assert (mlp.level, mlp.name, mlp.marks) == ("level3", "1_MLP", ("pike",))
    assert mlp.path == BUILTIN_ROOT / "level3" / "1_MLP.py"
    numbers = [int(task.name.split("_")[0]) for task in tasks if task.level == "level3"]
    assert numbers == sorted(numbers), "tasks are ordered by KernelBench number, not as strings"


def test_broken_files_give_one_line_errors_and_the_rest_still_load(tmp_path):
    folder = tmp_path / "mylevel"
    write(folder, "1_Good.py", GOOD)
    write(folder, "2_Syntax.py", "def broken(:\n")
    write(folder, "3_NoInputs.py", GOOD.replace("def get_inputs", "def other_inputs"))
    write(folder, "4_ImportError.py", "import package_that_is_not_there\n")
    write(folder, "_helper.py", "raise RuntimeError('helpers are not tasks')\n")
    tasks, errors = discover_tasks([folder])
    assert [task.id for task in tasks] == ["mylevel/1_Good"]
    messages = sorted(str(error) for error in errors)
    assert len(messages) == 3
    assert all("\n" not in message for message in messages)
    assert "2_Syntax.py: does not import: SyntaxError at line 1" in messages[0]
    assert "3_NoInputs.py: missing get_inputs" in messages[1]
    assert "4_ImportError.py: does not import: ModuleNotFoundError" in messages[2]


def test_small_size_replaces_constants_and_unknown_names_are_errors(tmp_path):
    task = task_from_file(write(tmp_path / "lv", "1_T.py", GOOD))
    assert sized_module(task, "full").get_inputs()[0].shape == (4,)
    assert sized_module(task, "small").get_inputs()[0].shape == (2,)
    with pytest.raises(TaskError, match="SMALL names m, which the file does not define"):
        task_from_file(write(tmp_path / "lv", "2_T.py", GOOD.replace("{'n': 2}", "{'m': 2}")))


def test_find_task_by_path_and_helpful_error_for_unknown_id():
    assert find_task(str(DATA / "level0" / "1_TinyMLP.py")).id == "level0/1_TinyMLP"
    with pytest.raises(TaskError, match="did you mean level3/1_MLP"):
        find_task("1_MLP")


def test_same_id_in_two_roots_is_an_error(tmp_path):
    write(tmp_path / "a" / "lv", "1_T.py", GOOD)
    write(tmp_path / "b" / "lv", "1_T.py", GOOD)
    tasks, errors = discover_tasks([tmp_path / "a", tmp_path / "b"])
    assert len(tasks) == 1 and "already taken" in str(errors[0])


@pytest.mark.parametrize("flag, built_on", [("", "cpu"), ("BUILD_ON_DEVICE = True\n", "meta")])
def test_build_on_device_constructs_the_models_where_they_run(tmp_path, flag, built_on):
    # The meta device stands for a GPU: where a tensor made in __init__ lands shows where
    # the weights were drawn (all of them end on the run's device either way).
    from pike_bench.evaluate.job import construct
    from pike_bench.evaluate.messages import JobRequest

    (tmp_path / "level0").mkdir()
    path = tmp_path / "level0" / "1_Where.py"
    path.write_text(
        "import torch\n\n\nclass Model(torch.nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.linear = torch.nn.Linear(4, 4)\n        self.built_on = torch.empty(0).device.type\n\n"
        "    def forward(self, x):\n        return self.linear(x)\n\n\n"
        "def get_inputs():\n    return [torch.randn(2, 4)]\n\n\ndef get_init_inputs():\n    return []\n" + flag)
    task = task_from_file(path)
    assert task.build_on_device == bool(flag)
    model = construct(sized_module(task, "full").Model, [], JobRequest(task, [], device="meta"))
    assert model.built_on == built_on and model.linear.weight.device.type == "meta"
