"""Resource limits of the processes that run candidates: a candidate that goes over one
fails with a verdict that names it, and honest candidates do not notice them."""

import os
import subprocess
import sys

import pytest

from pike_bench.evaluate import Evaluator, limits
from pike_bench.tasks import task_from_file

from conftest import DATA, FAST_TIMING

TASK = task_from_file(DATA / "level0" / "1_TinyMLP.py")
MODEL = """
class ModelNew(nn.Module):
    def __init__(self, in_features, hidden, out_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden)
        self.fc2 = nn.Linear(hidden, out_features)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""
HEAD = "import pathlib\nimport tempfile\n\nimport torch\nimport torch.nn as nn\n\n"
WRITES_2_MIB = HEAD + (  # through Path.open, which the static screen does not flag
    "with pathlib.Path(tempfile.gettempdir(), 'big').open('wb') as out:\n"
    "    out.write(bytes(2 << 20))\n"
) + MODEL
RESERVES_4_GIB = HEAD + "HOARD = torch.empty(4 << 30, dtype=torch.uint8)  # reserved, never touched\n" + MODEL
# Raises with the lines of /proc/self/limits that name core files and data, joined into one.
SAYS_ITS_LIMITS = HEAD + (
    "lines = pathlib.Path('/proc/self/limits').read_text().splitlines()\n"
    "raise RuntimeError(' | '.join(' '.join(line.split()) for line in lines if 'core' in line or 'data' in line))\n"
) + MODEL


@pytest.fixture(scope="module")
def small_limits():
    """A worker whose file size limit is 1 MiB and memory limit 2 GiB."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits, "FILE_SIZE", 1 << 20)
        patch.setattr(limits, "MEMORY_SHARE", 2 * limits.GiB / limits.ram())
        with Evaluator("cpu", trials=2, timeout=300, timing=FAST_TIMING, baselines=("eager",)) as evaluator:
            yield evaluator


def test_a_file_over_the_limit_fails_with_the_limit_named(small_limits):
    result = small_limits.evaluate(TASK, WRITES_2_MIB)
    assert result.status == "build_error"
    assert result.reason == ("OSError: [Errno 27] File too large (over the file size limit of candidates: "
                             "1 MiB, RLIMIT_FSIZE)")


def test_memory_over_the_limit_fails_with_the_limit_named(small_limits):
    result = small_limits.evaluate(TASK, RESERVES_4_GIB)
    assert result.status == "build_error"
    assert result.reason.startswith("RuntimeError: ") and "can't allocate memory" in result.reason
    assert result.reason.endswith("(over the memory limit of candidates: 2.0 GiB, RLIMIT_DATA)")


def test_the_worker_leaves_no_core_dump_and_honest_candidates_pass(small_limits):
    said = small_limits.evaluate(TASK, SAYS_ITS_LIMITS)
    memory = limits.Limits.for_process("cpu", sandboxed=True).memory
    assert said.reason == f"RuntimeError: Max data size {memory} {memory} bytes | Max core file size 0 0 bytes"
    honest = small_limits.evaluate(TASK, HEAD + MODEL)
    assert honest.status == "correct", honest.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="starts a process as another user, which takes root")
def test_processes_over_the_limit_fail_with_the_limit_named():
    # The kernel never limits root's processes, so the process runs as nobody, with the
    # standard library only (torch's installation may not be readable by nobody).
    script = (
        "import runpy, sys, threading\n"
        "limits = runpy.run_path(sys.argv[1])\n"
        "limits['Limits'](processes=int(sys.argv[2])).apply()\n"
        "started = []\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        thread = threading.Thread(target=threading.Event().wait, daemon=True)\n"
        "        thread.start()\n"
        "        started.append(thread)\n"
        "except RuntimeError as exc:\n"
        "    print(len(started), str(exc) + limits['broken_limit'](exc))\n"
        "else:\n"
        "    print(len(started))\n"
    )
    python = next(p for p in ("/usr/bin/python3", "/usr/local/bin/python3", sys.executable) if os.path.exists(p))

    def threads(limit: int) -> str:
        done = subprocess.run([python, "-I", "-c", script, limits.__file__, str(limit)], user=65534, group=65534,
                              extra_groups=[], capture_output=True, text=True, timeout=60, cwd="/")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert threads(1000) == "200"
    count, _, reason = threads(50).partition(" ")
    assert int(count) < 50
    assert reason == ("can't start new thread (over the processes limit of candidates: 50 processes and threads, "
                      "RLIMIT_NPROC)")


def test_limits_travel_in_one_variable():
    chosen = limits.Limits(memory=3 << 30, file_size=1 << 20, processes=64)
    assert limits.Limits.decode(chosen.encode()) == chosen
    assert limits.Limits.for_process("cuda:0", sandboxed=True).memory is None
    assert limits.Limits.for_process("cpu", sandboxed=False).processes is None
