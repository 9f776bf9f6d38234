"""Which sandboxes work on this machine, and what each costs an honest candidate.

    python benchmarks/sandbox_gpu.py RESULTS_DIR [--debs .bwrap] [--device cuda] [--repeats 3] [--budget 140]

Made for one call on a GPU machine (root in a container, no network, no bubblewrap
installed), it writes RESULTS_DIR/sandbox_gpu.json and RESULTS_DIR/sandbox_gpu.log:

1. `modes`: for each tool (bubblewrap, unshare) whether it makes a sandbox here and, if
   not, why; `--debs FOLDER` unpacks the .deb files there (bubblewrap and its libraries)
   into a temporary folder first and puts its bwrap on PATH.
2. `isolation`: in each working mode and without one, a process tries what a candidate
   would: read ANTHROPIC_API_KEY, write a file outside its folder, connect to a listener
   this script opens on 127.0.0.1, see the GPU nodes.
3. `rows`: honest candidates of level3/1_MLP (its ReLUs as a Triton kernel, and as a
   `load_inline` CUDA kernel; C++ on the CPU) evaluated in each mode and without a
   sandbox, a fresh Evaluator each time: `cold` is the first candidate (the worker
   starts), `warm` the second on the same worker. A first pass without a sandbox builds
   the kernels into the shared caches and is not counted; the modes take turns in an
   order that changes each repeat. No round starts once `--budget` seconds have passed,
   so the call ends in time; the JSON is written after every row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

STARTED = time.monotonic()
TOOLS = ("bwrap", "unshare")

TRITON = '''
import torch
import torch.nn as nn
import triton
import triton.language as tl


@triton.jit
def relu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    tl.store(out_ptr + offsets, tl.maximum(tl.load(x_ptr + offsets, mask=mask), 0.0), mask=mask)


def relu(x):
    x = x.contiguous()
    out = torch.empty_like(x)
    relu_kernel[(triton.cdiv(x.numel(), 1024),)](x, out, x.numel(), BLOCK=1024)
    return out
'''
CUDA = r'''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SOURCE = """
#include <ATen/cuda/CUDAContext.h>

__global__ void relu_kernel(const float* x, float* out, int64_t n) {
    int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[i] > 0.f ? x[i] : 0.f;
}

torch::Tensor relu(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::empty_like(x);
    int64_t n = x.numel();
    relu_kernel<<<(n + 255) / 256, 256, 0, at::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), out.data_ptr<float>(), n);
    return out;
}
"""
ext = load_inline("pike_sandbox_gpu_relu", cpp_sources="torch::Tensor relu(torch::Tensor x);",
                  cuda_sources=SOURCE, functions=["relu"])
relu = ext.relu
'''
CPP = r'''
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

ext = load_inline("pike_sandbox_cpu_relu", cpp_sources="torch::Tensor relu(torch::Tensor x) { return x.clamp_min(0); }",
                  functions=["relu"])
relu = ext.relu
'''
MODEL = '''

class ModelNew(nn.Module):
    def __init__(self, input_size, layer_sizes, output_size):
        super().__init__()
        widths = [input_size, *layer_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        self.head = nn.Linear(widths[-1], output_size)

    def forward(self, x):
        for layer in self.hidden:
            x = relu(layer(x))
        return self.head(x)
'''


class Log:
    """Lines to the terminal and to the log file, each with the seconds since the start."""

    def __init__(self, path: Path):
        self.file = path.open("w")

    def __call__(self, *parts) -> None:
        line = f"[{time.monotonic() - STARTED:6.1f} s] " + " ".join(str(part) for part in parts)
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def unpack_debs(folder: Path, log: Log) -> None:
    """The .deb files of `folder` unpacked into a temporary folder whose bwrap goes first on PATH
    (through a wrapper that names their libraries where the system lacks them)."""
    root = Path(tempfile.mkdtemp(prefix="pike_debs_"))
    for deb in sorted(folder.glob("*.deb")):
        if shutil.which("dpkg"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        else:
            extract_deb(deb, root)
        log("unpacked", deb.name)
    binary = root / "usr" / "bin" / "bwrap"
    if not binary.exists():
        log(f"no usr/bin/bwrap in the packages of {folder}")
        return
    libraries = [str(p) for p in root.glob("*lib*/x86_64-linux-gnu")] + [str(p) for p in root.glob("usr/lib*/x86_64-linux-gnu")]
    missing = "not found" in subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
    bin_dir = root / "wrapped"
    bin_dir.mkdir()
    if missing:  # bwrap passes its own environment on, so the variable reaches the worker too (harmless)
        (bin_dir / "bwrap").write_text(f'#!/bin/sh\nLD_LIBRARY_PATH={":".join(libraries)} exec {binary} "$@"\n')
        (bin_dir / "bwrap").chmod(0o755)
    else:
        (bin_dir / "bwrap").symlink_to(binary)
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    log("bwrap from the packages:", binary, "(with their libraries)" if missing else "")


def extract_deb(deb: Path, root: Path) -> None:
    """dpkg -x without dpkg: a .deb is an ar archive holding data.tar.*."""
    data = deb.read_bytes()
    offset = 8  # b"!<arch>\n"
    while offset < len(data):
        name, size = data[offset:offset + 16].decode().strip().rstrip("/"), int(data[offset + 48:offset + 58])
        body = data[offset + 60:offset + 60 + size]
        if name.startswith("data.tar"):
            with tempfile.NamedTemporaryFile(suffix=name) as member:
                member.write(body)
                member.flush()
                with tarfile.open(member.name) as archive:
                    archive.extractall(root)
        offset += 60 + size + size % 2


def facts(device: str) -> dict:
    import torch

    def first_line(argv):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired) as exc:
            return f"({exc or 'nothing'})"

    read = lambda path: Path(path).read_text().strip() if Path(path).exists() else None  # noqa: E731
    return {
        "platform": platform.platform(), "cpus": os.cpu_count(), "euid": os.geteuid(),
        "os_release": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "triton": __import__("triton").__version__,
        "gpu": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "bwrap": shutil.which("bwrap"), "bwrap_version": first_line(["bwrap", "--version"]),
        "unshare": shutil.which("unshare"), "unshare_version": first_line(["unshare", "--version"]),
        "max_user_namespaces": read("/proc/sys/user/max_user_namespaces"),
        "gpu_nodes": sorted(str(p) for p in Path("/dev").glob("nvidia*")),
        "dmesg_says_gvisor": "gVisor" in first_line(["dmesg"]),
    }


def isolation(sandbox, key: str) -> dict:
    """What a process in `sandbox` reaches: the key, a file outside, a listener, the GPU nodes."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve():
        listener.settimeout(2)
        try:
            connection, _ = listener.accept()
            received.append(connection.recv(100))
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    outside = Path(tempfile.mkdtemp(prefix="pike_outside_")) / "written"
    probe = (
        "import os, socket, glob\n"
        f"print('env:', os.environ.get('ANTHROPIC_API_KEY', '-') == {key!r})\n"
        f"try:\n    open({str(outside)!r}, 'w').write('x'); print('file: written')\n"
        "except OSError as e:\n    print('file:', e.strerror)\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), 3).sendall(b'key'); print('socket: sent')\n"
        "except OSError as e:\n    print('socket:', e.strerror)\n"
        "print('gpu nodes:', len(glob.glob('/dev/nvidia*')))\n"
    )
    confined = sandbox.prepare([sys.executable, "-I", "-c", probe])
    try:
        done = subprocess.run(confined.argv, env=confined.env, capture_output=True, text=True, timeout=60)
    finally:
        confined.remove_scratch()
    listener.close()
    thread.join(3)
    return {"stdout": done.stdout.strip().splitlines(), "stderr_tail": done.stderr.strip().splitlines()[-3:],
            "rc": done.returncode, "file_outside_exists": outside.exists(), "listener_received": bool(received)}


def start_seconds(sandbox, repeats: int = 10) -> float:
    """The median seconds to start and end `true` in `sandbox`."""
    seconds = []
    for _ in range(repeats):
        confined = sandbox.prepare(["true"])
        started = time.perf_counter()
        subprocess.run(confined.argv, env=confined.env, check=True)
        seconds.append(time.perf_counter() - started)
        confined.remove_scratch()
    return statistics.median(seconds)


def evaluate_pair(device: str, sandbox, task, first: str, second: str, max_time: float) -> dict:
    from pike_bench.evaluate import Evaluator, TimingOptions

    timing = TimingOptions(max_seconds=max_time)
    with Evaluator(device, sandbox=sandbox, baselines=("eager",), trials=3, timing=timing) as evaluator:
        cold = evaluator.evaluate(task, first)
        warm = evaluator.evaluate(task, second)
    return {"status": [cold.status, warm.status], "reason": [cold.reason, warm.reason],
            "cold_s": cold.seconds, "warm_s": warm.seconds,
            "ms": [r.timing.median_ms if r.timing else None for r in (cold, warm)],
            "over_eager": [r.speedups["eager"].value if "eager" in r.speedups else None for r in (cold, warm)]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--debs", type=Path, help="a folder of .deb files holding bubblewrap (and its libraries)")
    parser.add_argument("--device", default=None, help="cuda where there is a GPU, else cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=140.0, help="seconds after which no round starts")
    parser.add_argument("--max-time", type=float, default=0.3, help="seconds of timing rounds per evaluation")
    args = parser.parse_args()
    args.results.mkdir(parents=True, exist_ok=True)
    log = Log(args.results / "sandbox_gpu.log")
    if args.debs:
        unpack_debs(args.debs, log)

    import torch

    from pike_bench.evaluate.prebuild import set_cuda_arch
    from pike_bench.evaluate.sandbox import Sandbox
    from pike_bench.tasks import find_task

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    set_cuda_arch(device)  # one architecture to build for, as the evaluations would
    key = "sk-ant-probe-" + os.urandom(6).hex()
    os.environ["ANTHROPIC_API_KEY"] = key
    out = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": " ".join(sys.argv),
           "machine": facts(device), "device": device, "modes": {}, "isolation": {}, "start_s": {}, "rows": []}
    save = lambda: (args.results / "sandbox_gpu.json").write_text(json.dumps(out, indent=1))  # noqa: E731
    log("machine:", json.dumps(out["machine"]))

    sandboxes = {"off": Sandbox.choose("off")}
    for tool in TOOLS:
        chosen = Sandbox.choose("auto", tools=(tool,))
        out["modes"][tool] = {"works": chosen.enabled, "path": chosen.path, "why_not": chosen.why_not}
        log(f"mode {tool}:", "works" if chosen.enabled else f"unavailable: {chosen.why_not}")
        if chosen.enabled:
            sandboxes[tool] = chosen
    out["modes"]["auto"] = Sandbox.choose("auto").tool or "off"
    for name, sandbox in sandboxes.items():
        out["isolation"][name] = isolation(sandbox, key)
        out["start_s"][name] = start_seconds(sandbox)
        log(f"isolation {name}:", json.dumps(out["isolation"][name]), f"start {out['start_s'][name]:.4f} s")
    save()

    task = find_task("level3/1_MLP")
    native = CUDA if device.startswith("cuda") else CPP
    cases = {"triton": TRITON + MODEL, "cuda" if device.startswith("cuda") else "cpp": native + MODEL}
    first, second = cases.values()
    out["cases"] = list(cases)
    log("warm-up without a sandbox: builds the kernels into the caches")
    out["warmup"] = evaluate_pair(device, sandboxes["off"], task, first, second, args.max_time)
    log("warm-up:", json.dumps(out["warmup"]))
    save()
    names = list(sandboxes)
    rounds = [(repeat, name) for repeat in range(args.repeats) for name in (names if repeat % 2 == 0 else names[::-1])]
    for repeat, name in rounds:
        if time.monotonic() - STARTED > args.budget:
            log(f"budget of {args.budget:g} s spent: no more rounds")
            break
        row = {"repeat": repeat, "mode": name,
               **evaluate_pair(device, sandboxes[name], task, first, second + "# the second\n", args.max_time)}
        out["rows"].append(row)
        log("row:", json.dumps(row))
        save()
    out["summary"] = summary(out)
    save()
    log("summary:\n" + out["summary"])
    return 0


def summary(out: dict) -> str:
    first, second = out["cases"]
    lines = [f"| mode | rounds | {first}: new worker, s (median) | {second}: same worker, s (median) | verdicts |",
             "|---|---|---|---|---|"]
    for name in dict.fromkeys(row["mode"] for row in out["rows"]):
        mine = [row for row in out["rows"] if row["mode"] == name]
        statuses = sorted({status for row in mine for status in row["status"]})
        lines.append(f"| {name} | {len(mine)} | {statistics.median(r['cold_s'] for r in mine):.2f} | "
                     f"{statistics.median(r['warm_s'] for r in mine):.2f} | {', '.join(statuses)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
