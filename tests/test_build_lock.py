"""A builder killed mid-build must not stall the next build of its extension."""

import signal
import subprocess
import sys
import textwrap

import pytest
import torch.utils.cpp_extension

from pike_bench.evaluate import Evaluator
from pike_bench.evaluate.build_lock import BuildLock

from conftest import DATA, FAST_TIMING

# torch 2.14 and later lock extension builds with an flock of their own (no FileBaton).
TORCH_LOCKS_ITSELF = not hasattr(torch.utils.cpp_extension, "FileBaton")

HOLD = """
import sys, time
{setup}
{take}
print("held", flush=True)
time.sleep(120)
"""
# The lock load_inline takes for a build folder, whichever torch this is.
AS_LOAD_INLINE = """
import torch.utils.cpp_extension as cpp_extension
if hasattr(cpp_extension, "FileBaton"):
    lock = cpp_extension.FileBaton(sys.argv[1])  # kept: a lock dropped is released
    assert lock.try_acquire()
else:
    lock = cpp_extension.FileLock(sys.argv[1])
    lock.acquire()
"""
AS_TORCHS_BATON = """
from torch.utils.file_baton import FileBaton
baton = FileBaton(sys.argv[1])
assert baton.try_acquire()
"""


def _killed_while_holding(path, setup: str, take: str, baton) -> None:
    """A process takes a build lock and is killed holding it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(setup=setup, take=take), str(path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert not baton(str(path)).try_acquire()  # while it lives, the lock excludes
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_the_lock_of_a_killed_builder_is_free_again(tmp_path):
    path = tmp_path / "lock"
    _killed_while_holding(path, "from pike_bench.evaluate import build_lock; build_lock.install()", AS_LOAD_INLINE,
                          BuildLock)
    assert path.exists()  # the file stays, the lock does not
    baton = BuildLock(str(path))
    assert baton.try_acquire()
    baton.release()


def test_torchs_own_baton_stays_taken_after_its_holder_is_killed(tmp_path):
    """The control: what install() fixes."""
    from torch.utils.file_baton import FileBaton

    path = tmp_path / "lock"
    _killed_while_holding(path, "", AS_TORCHS_BATON, FileBaton)
    assert not FileBaton(str(path)).try_acquire()


def test_install_reaches_cpp_extension_imported_before_or_after(tmp_path):
    # Where torch locks its builds itself, install leaves cpp_extension as it is.
    want = "None" if TORCH_LOCKS_ITSELF else "build_lock.BuildLock"
    for order in ("import torch.utils.cpp_extension; build_lock.install()",
                  "build_lock.install(); import torch.utils.cpp_extension"):
        code = textwrap.dedent(f"""
            from pike_bench.evaluate import build_lock
            {order}
            assert getattr(torch.utils.cpp_extension, "FileBaton", None) is {want}
        """)
        subprocess.run([sys.executable, "-c", "import torch\n" + code], check=True)


@pytest.mark.slow  # a C++ build (about 40 s on 2 cores)
def test_a_candidate_builds_although_a_killed_build_left_its_lock_file(tmp_path, monkeypatch, tiny_task):
    extensions = tmp_path / "torch_extensions"
    (extensions / "pike_test_relu").mkdir(parents=True)
    (extensions / "pike_test_relu" / "lock").touch()  # as torch's baton leaves it when its builder dies
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    with Evaluator("cpu", trials=2, timeout=150, timing=FAST_TIMING, baselines=()) as evaluator:
        result = evaluator.evaluate(tiny_task, (DATA / "cpp" / "relu_cpp.py").read_text())
    assert result.status == "correct", result.reason
