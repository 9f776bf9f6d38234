"""The static screen: what it rejects, what it lets through, which languages it names."""

import pytest

from pike_bench.screen import screen

MODEL = "import torch\nclass ModelNew(torch.nn.Module):\n    pass\n"


@pytest.mark.parametrize(
    "code, problem",
    [
        ("import subprocess", "line 1: imports subprocess (spawns processes)"),
        ("from socket import socket", "line 1: imports socket (opens network sockets)"),
        ("import os\nos.system('ls')", "line 2: calls os.system (spawns processes)"),
        ("from os import execv", "line 1: imports os.execv (spawns processes)"),
        ("open('/tmp/x', 'w')", "line 1: opens a file for writing"),
        ("import pathlib\npathlib.Path('x').write_text('y')", "line 2: calls write_text (writes a file)"),
        ("import gc", "line 1: imports gc (can reach the reference's tensors"),
        ("import sys\nsys._getframe(1)", "line 2: uses sys._getframe"),
        ("eval('1')", "line 1: calls eval (runs code the screen cannot see)"),
        ("x = __builtins__", "line 1: uses __builtins__"),
        ("import time\ntime.perf_counter = lambda: 0", "line 2: replaces time.perf_counter"),
        ("import torch\ntorch.cuda.Event.elapsed_time = None", "line 2: replaces torch.cuda.Event.elapsed_time"),
        ("import time\nsetattr(time, 'time', None)", "line 2: calls setattr on time"),
    ],
)
def test_rejects_with_the_line_and_the_reason(code, problem):
    result = screen(code + "\n" + MODEL)
    assert not result.passed
    assert result.problems[0].startswith(problem)


@pytest.mark.parametrize(
    "code",
    [
        "import re\nPATTERN = re.compile('x')",
        "import torch\nf = torch.compile(torch.relu)",
        "class A:\n    def __init__(self):\n        setattr(self, 'w', 1)",
        "open('weights.bin').read()",
        "import time\nstarted = time.perf_counter()",
        "import os\nN = os.cpu_count()",
    ],
)
def test_lets_ordinary_code_through(code):
    assert screen(code + "\n" + MODEL).passed


def test_names_the_kernel_languages():
    assert screen(MODEL).languages == ["pytorch"]
    assert screen("import triton\nimport triton.language as tl\n" + MODEL).languages == ["triton"]
    cuda = "from torch.utils.cpp_extension import load_inline\nm = load_inline('m', cpp_sources='', cuda_sources='')\n"
    assert screen(cuda + MODEL).languages == ["cuda"]
    cpp = "import torch.utils.cpp_extension as ext\nm = ext.load_inline('m', cpp_sources='int f();')\n"
    assert screen(cpp + MODEL).languages == ["c++"]
    assert not screen(MODEL).custom_kernel and screen(cuda + MODEL).custom_kernel
