"""Candidates cannot reach the user's secrets, network or files.

With ANTHROPIC_API_KEY set, candidates try to read it, write outside their folder,
connect to a listener this test starts on 127.0.0.1 and spawn processes; a C++ kernel
(which the static screen cannot read) proves the sandbox, and its twin run without the
sandbox proves that the attack itself works. Honest candidates still pass. Each test of
the sandbox runs with each tool that works here: bubblewrap, and unshare as on a machine
without bubblewrap.
"""

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pike_bench.cli import main
from pike_bench.evaluate import Evaluator
from pike_bench.evaluate.prebuild import Prebuilder
from pike_bench.evaluate import sandbox as sandbox_module
from pike_bench.evaluate.sandbox import TOOLS, Sandbox, SandboxUnavailable, allowed_environment
from pike_bench.tasks import task_from_file

from conftest import CANDIDATES, DATA, FAST_TIMING

ATTEMPTS = DATA / "sandbox"
TASK = task_from_file(DATA / "level0" / "1_TinyMLP.py")
FAST = dict(trials=2, timeout=300, timing=FAST_TIMING, baselines=("eager",))
HERE = {tool: Sandbox.choose("auto", tools=(tool,)) for tool in TOOLS}
EACH_TOOL = [pytest.param(tool, marks=pytest.mark.skipif(not HERE[tool].enabled, reason=f"no sandbox: {HERE[tool].why_not}"))
             for tool in TOOLS]  # fmt: skip
pytest_plugins = ["pytester"]


class Listener:
    """A TCP server on 127.0.0.1 that keeps what each connection sends."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)
        self.port = self.server.getsockname()[1]
        self.received: list[bytes] = []
        self.open = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.open:
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                self.received.append(b"".join(iter(lambda: connection.recv(4096), b"")))

    def close(self) -> None:
        self.open = False
        self.thread.join()
        self.server.close()


@pytest.fixture
def listener():
    listening = Listener()
    yield listening
    listening.close()


@pytest.fixture(scope="module")
def key():
    """The user's API key, in the environment of this process (and of the workers it starts)."""
    value = "sk-ant-test-" + secrets.token_hex(8)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANTHROPIC_API_KEY", value)
        yield value


@pytest.fixture(scope="module")
def key_holder(key):
    """A process started with the key in its environment, as the user's shell or pytest is:
    /proc shows that environment to every process of the same user."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    yield holder
    holder.kill()
    holder.wait()


@pytest.fixture(scope="module", params=EACH_TOOL)
def sandboxed(request, key):
    with Evaluator("cpu", sandbox=HERE[request.param], **FAST) as evaluator:
        yield evaluator


@pytest.fixture(scope="module")
def path_without_bwrap(tmp_path_factory):
    """PATH as a machine without bubblewrap has it: every program of PATH, linked into one folder, except bwrap."""
    folder = tmp_path_factory.mktemp("bin")
    for directory in reversed(os.environ["PATH"].split(os.pathsep)):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else []:
            if program.name != "bwrap":
                (folder / program.name).unlink(missing_ok=True)
                (folder / program.name).symlink_to(program)
    return str(folder)


def filled(name: str, target: Path, port: int, loud: bool = False) -> str:
    text = (ATTEMPTS / name).read_text()
    return text.replace("__TARGET__", str(target)).replace("__PORT__", str(port)).replace("__LOUD__", "yes" if loud else "no")


def test_workers_get_what_torch_needs_and_no_credential():
    environ = {
        "PATH": "/usr/bin", "HOME": "/home/me", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src",
        "CUDA_VISIBLE_DEVICES": "1", "TORCH_CUDA_ARCH_LIST": "9.0", "TRITON_INTERPRET": "1",
        "ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": "http://llm", "OPENAI_API_KEY": "k", "GITHUB_TOKEN": "t",
        "AWS_SECRET_ACCESS_KEY": "k", "TORCH_HUB_TOKEN": "t", "CUDA_LICENSE_KEY": "k", "DB_PASSWORD": "p",
        "SSH_AUTH_SOCK": "/tmp/agent", "HTTPS_PROXY": "http://proxy",
    }  # fmt: skip
    assert allowed_environment(environ) == {
        "PATH": "/usr/bin", "HOME": "/home/me", "LC_ALL": "C.UTF-8", "PYTHONPATH": "/src",
        "CUDA_VISIBLE_DEVICES": "1", "TORCH_CUDA_ARCH_LIST": "9.0", "TRITON_INTERPRET": "1",
    }  # fmt: skip


@pytest.mark.parametrize("tool", EACH_TOOL)
def test_a_cpp_candidate_with_the_default_settings_leaks_the_key_nowhere(key, key_holder, listener, tmp_path, tool,
                                                                         path_without_bwrap, monkeypatch):
    target = tmp_path / "stolen.txt"
    if tool == "unshare":
        monkeypatch.setenv("PATH", path_without_bwrap)
    with Evaluator("cpu", **FAST) as evaluator:
        assert evaluator.sandbox.tool == tool
        # The CPU build process imports the candidate too, so its C++ runs there first.
        built = asyncio.run(Prebuilder("cpu", sandbox=evaluator.sandbox).build(filled("leak_cpp.py", target, listener.port)))
        quiet = evaluator.evaluate(TASK, filled("leak_cpp.py", target, listener.port))
        loud = evaluator.evaluate(TASK, filled("leak_cpp.py", target, listener.port, loud=True))
    assert built.ok, built.message
    assert quiet.status == "correct", quiet.reason
    assert not target.exists() and listener.received == []
    # The attack ran, and found and sent nothing: each attempt failed inside the sandbox.
    assert loud.status == "build_error"
    assert "env=-;proc=-;file: Read-only file system;socket: Connection refused" in loud.reason
    assert key not in loud.reason + loud.detail


@pytest.mark.parametrize("tool", EACH_TOOL)
def test_a_worker_outlives_the_thread_that_started_it(tool, path_without_bwrap, monkeypatch):
    """bubblewrap's --die-with-parent follows the thread that started the sandbox, and each
    task's asyncio.run ends the threads its evaluations ran in: the worker must outlive them
    (it was killed, and a candidate of the next task read "killed by SIGKILL")."""
    if tool == "unshare":
        monkeypatch.setenv("PATH", path_without_bwrap)
    good = (CANDIDATES / "good.py").read_text()
    phases = []
    with Evaluator("cpu", **FAST) as evaluator:
        assert evaluator.sandbox.tool == tool
        first = threading.Thread(target=evaluator.evaluate, args=(TASK, good))
        first.start()
        first.join()
        time.sleep(1)  # had the thread's end signalled the worker, it would be dead by now
        again = evaluator.evaluate(TASK, good + "\n# again\n", on_phase=lambda what, who: phases.append(what))
    assert again.status == "correct", again.reason
    assert "starting the worker" not in phases


@pytest.mark.slow  # a C++ build without the sandbox
def test_without_the_sandbox_the_allow_list_alone_keeps_the_key_from_getenv_only(key, key_holder, listener, tmp_path):
    target = tmp_path / "stolen.txt"
    with Evaluator("cpu", sandbox="off", **FAST) as evaluator:
        result = evaluator.evaluate(TASK, filled("leak_cpp.py", target, listener.port))
    assert result.status == "correct", result.reason
    # Not in its own environment; but another process's, through /proc, is in reach.
    stolen = target.read_text()
    assert stolen.startswith("env=-;proc=") and key in stolen.removeprefix("env=-;proc=").split(",")
    deadline = time.monotonic() + 10
    while not listener.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listener.received == [stolen.encode()]


@pytest.mark.parametrize("name", sorted(p.name for p in ATTEMPTS.glob("py_*.py")))
def test_python_attempts_fail_inside_the_candidate_with_a_clear_error(sandboxed, key, listener, tmp_path, name):
    status, _, words = (ATTEMPTS / name).read_text().splitlines()[0].removeprefix("# expect: ").partition(": ")
    target = tmp_path / "written.txt"
    result = sandboxed.evaluate(TASK, filled(name, target, listener.port))
    assert (result.status, words in result.reason) == (status, True), f"{result.reason}\n{result.detail}"
    assert not target.exists() and listener.received == []
    assert key not in result.reason + result.detail


@pytest.mark.parametrize("path", [DATA / "cpp" / "relu_cpp.py", CANDIDATES / "triton_relu.py"], ids=["cpp", "triton"])
def test_honest_kernels_build_run_and_pass_in_the_sandbox(sandboxed, path):
    result = sandboxed.evaluate(TASK, path.read_text())
    assert result.status == "correct", f"{result.reason}\n{result.detail}"
    assert result.timing.rounds >= 10 and "eager" in result.speedups


@pytest.mark.parametrize("tool", EACH_TOOL)
def test_the_scratch_folder_is_writable_and_home_credentials_are_hidden(tmp_path, monkeypatch, tool):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY")
    (home / ".netrc").write_text("machine example.com password hunter2")
    monkeypatch.setenv("HOME", str(home))
    script = ('echo scratch > "$TMPDIR/file" && cat "$TMPDIR/file"; '
              f'cat {home}/.ssh/id_ed25519 {home}/.netrc; echo outside > {tmp_path}/file')
    confined = HERE[tool].prepare(["sh", "-c", script])
    try:
        done = subprocess.run(confined.argv, env=confined.env, capture_output=True, text=True, timeout=60)
    finally:
        confined.remove_scratch()
    assert done.stdout == "scratch\n"
    assert "No such file or directory" in done.stderr and "Read-only file system" in done.stderr
    assert not (tmp_path / "file").exists()


def test_on_refuses_to_run_without_bubblewrap_and_auto_says_why_once(pytester, monkeypatch, tmp_path, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(SandboxUnavailable, match="bubblewrap is not installed"):
        Sandbox.choose("on")
    refused = pytester.runpytest("--collect-only", "-p", "no:cacheprovider", "--pike-device", "cpu", "--pike-sandbox", "on")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["ERROR: --pike-sandbox on: bubblewrap is not installed*"])
    capsys.readouterr()
    code = main(["eval", str(TASK.path), str(CANDIDATES / "good.py"), "--device", "cpu", "--sandbox", "on"])
    assert (code, capsys.readouterr().err.strip().count("\n")) == (2, 0)

    # A bwrap that cannot make namespaces (as in a container that forbids them).
    (empty / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    (empty / "bwrap").chmod(0o755)
    said = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--pike-device", "cpu")
    lines = [line for line in said.outlines if "no sandbox" in line]
    assert lines == ["pike-bench: no sandbox: bubblewrap cannot make a sandbox here (bwrap: No permissions to "
                     "creating new namespace); user namespaces may be disabled; unshare (util-linux) is not installed "
                     "(apt-get install util-linux, or dnf install util-linux); candidates run with your network "
                     "and files (--pike-sandbox off silences this)"]


@pytest.mark.parametrize("tool", EACH_TOOL)
def test_the_candidate_cannot_undo_the_sandbox_and_reaches_only_the_gpu_nodes(tool, monkeypatch, tmp_path):
    # /dev/kmsg stands in for a GPU node: passed through, where the host's other nodes are not.
    monkeypatch.setattr(sandbox_module, "GPU_NODES", ("/dev/kmsg",))
    script = (f"grep CapEff /proc/self/status; ls /dev/kmsg /dev/null; ls /dev/vda /dev/sda; "
              f"mount -o remount,rw / || echo no remount; "
              f"unshare -rm sh -c 'mount -o remount,bind,rw / && touch {tmp_path}/file' || echo no nested remount; "
              "kill -SEGV $$")
    confined = HERE[tool].prepare(["sh", "-c", script])
    try:
        done = subprocess.run(confined.argv, env=confined.env, capture_output=True, text=True, timeout=60)
    finally:
        confined.remove_scratch()
    assert done.stdout.splitlines() == ["CapEff:\t0000000000000000", "/dev/kmsg", "/dev/null", "no remount",
                                        "no nested remount"]
    assert not (tmp_path / "file").exists()
    # A death by signal reads as it does without a sandbox.
    assert HERE[tool].exit_code(done.returncode) == -11


@pytest.mark.skipif(os.geteuid() != 0 or not HERE["unshare"].enabled, reason="sets up mounts of its own: root and unshare")
def test_unshare_makes_its_sandbox_where_one_mount_covers_another(tmp_path):
    # As systemd's binfmt_misc under the /proc that unshare mounts anew: a line of mountinfo
    # whose mount is out of sight cannot be made read-only, and need not be.
    covered = tmp_path / "covered"
    confined = HERE["unshare"].prepare(["sh", "-c", f"touch {covered}/inner/file || echo read-only"])
    setup = f"mkdir -p {covered}/inner && mount -t tmpfs a {covered}/inner && mount -t tmpfs b {covered} && mkdir {covered}/inner"
    try:
        done = subprocess.run(["unshare", "--mount", "sh", "-c", f'{setup} && exec "$@"', "sh", *confined.argv],
                              env=confined.env, capture_output=True, text=True, timeout=60)
    finally:
        confined.remove_scratch()
    assert (done.returncode, done.stdout) == (0, "read-only\n"), done.stderr


FAKE_DRIVER = """
#include <stdlib.h>
/* cuInit as a sandbox that hides what the driver needs makes it fail: 304 where the
   variable below, which the sandbox's environment allow-list drops, is missing. */
int cuInit(unsigned int flags) { return getenv("PIKE_TEST_DRIVER_SEES_ALL") || ALWAYS ? 0 : 304; }
"""


@pytest.mark.parametrize("tool", EACH_TOOL)
@pytest.mark.parametrize("starts_inside", [False, True])
def test_a_tool_is_chosen_only_where_the_gpu_driver_starts_inside_it_too(tool, starts_inside, tmp_path, monkeypatch):
    library = tmp_path / "libcuda.so.1"
    source = tmp_path / "driver.c"
    source.write_text(FAKE_DRIVER)
    subprocess.run(["cc", "-shared", "-fPIC", f"-DALWAYS={int(starts_inside)}", "-o", str(library), str(source)],
                   check=True)
    monkeypatch.setattr(sandbox_module, "CUDA_DRIVER", str(library))
    monkeypatch.setattr(sandbox_module, "GPU_NODES", ("/dev/null",))  # a "GPU" here, so the driver is asked
    monkeypatch.setenv("PIKE_TEST_DRIVER_SEES_ALL", "1")
    sandbox_module.cuda_init_error.cache_clear()
    try:
        chosen = Sandbox.choose("auto", tools=(tool,))
        assert sandbox_module.cuda_init_error() == 0  # outside, the driver starts
    finally:
        sandbox_module.cuda_init_error.cache_clear()
    if starts_inside:
        assert (chosen.tool, chosen.why_not) == (tool, "")
    else:
        assert chosen.tool is None
        assert chosen.why_not.endswith("makes a sandbox here, but the GPU driver does not start inside it (cuInit: 304)")
