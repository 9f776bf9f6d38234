"""The pytest process talks to its worker without importing torch: only the worker does."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_parent_side_of_the_worker_imports_without_torch():
    # A fresh interpreter: this one imported torch long ago.
    parent_side = "pike_bench.evaluate.messages", "pike_bench.evaluate.worker", "pike_bench.evaluate"
    code = f"import sys\nfor name in {parent_side!r}:\n    __import__(name)\nprint(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    assert done.stdout.strip() == "[]"
