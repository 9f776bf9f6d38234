"""The evaluator pool on a Ray cluster: one actor per GPU, each holding one Evaluator.

The same pool as :mod:`pike_bench.evaluate.pool` (a candidate to the next free evaluator),
with each evaluator living inside a Ray actor: one per GPU of the cluster (Ray gives every
actor its own CUDA_VISIBLE_DEVICES, so inside it the device is cuda:0), or a given number
of CPU actors where the cluster has no GPU (as in CI).

- Every actor times each candidate beside baselines it runs itself, so a speedup never
  divides one GPU's time by another's.
- An actor gets the task file's text, not its path: the driver's file system is not the
  actors'. It writes the text to a folder of its own and loads the task from there.
- Results travel as ``EvalResult.to_dict()``, so nothing depends on pickling internals.
- An actor that dies is taken out with a message and its candidate goes to another one.

Ray is optional (``pip install 'pike-bench[ray]'``) and is imported only here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from pike_bench.policy import CheckPolicy, check_policy
from pike_bench.evaluate.pool import EvaluatorPool
from pike_bench.evaluate.result import CRASHED, EvalResult
from pike_bench.evaluate.worker import OnPhase
from pike_bench.tasks import Task, TaskError, task_from_file

MISSING_RAY = "pike-bench: --pike-ray needs Ray: pip install 'pike-bench[ray]'"
# Placing the actors can wait on GPUs that other jobs of the cluster hold.
STARTUP_TIMEOUT = 300.0
# close() lets each actor stop its worker process before it is killed; a killed actor
# would leave the worker to notice on its own that its parent is gone.
CLOSE_TIMEOUT = 30.0


class NoGPU(ValueError):
    """The cluster has no GPU and no CPU actors were asked for; callers name their option."""


def import_ray():
    """The ray module, or an ImportError whose message is one line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise ImportError(MISSING_RAY) from None
    return ray


class EvaluatorActor:
    """Runs inside a Ray actor: one Evaluator (one worker process) and the tasks sent to it."""

    def __init__(self, device: str, index: int, evaluator_options: dict[str, Any]):
        from pike_bench.evaluate import Evaluator

        self.evaluator = Evaluator(device, **evaluator_options)
        self.index = index
        self.folder = Path(tempfile.mkdtemp(prefix="pike_ray_tasks_"))
        self.tasks: dict[tuple[str, str], Task] = {}

    def describe(self) -> dict[str, str]:
        """Its name (which GPU of which node), size, mode and check policy; an answer also means it started."""
        import ray

        node = ray.util.get_node_ip_address()
        if self.evaluator.device == "cpu":
            name = f"cpu:{self.index}@{node}"
        else:  # the GPU as its node numbers it: every GPU actor's own device is cuda:0
            name = f"cuda:{ray.get_gpu_ids()[0]}@{node}"
        return {"device": name, "size": self.evaluator.size, "mode": self.evaluator.mode,
                "check_name": self.evaluator.check.name}

    def evaluate(self, task_id: str, text: str, source: str) -> dict[str, Any]:
        try:
            task = self.task(task_id, text)
        except TaskError as exc:
            # It imported on the driver, so it is this node's environment that fails: a fault
            # of the device, as when the worker cannot load the reference.
            return self._crashed(task_id, f"the reference: {exc}").to_dict()
        return self.evaluator.evaluate(task, source).to_dict()

    def task(self, task_id: str, text: str) -> Task:
        """The task written to this actor's own folder, loaded once per (id, text)."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        key = (task_id, digest)
        if key not in self.tasks:
            level, _, name = task_id.rpartition("/")
            path = self.folder / digest[:16] / (level or "tasks") / f"{name}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            # The id is the driver's, whatever folder the copy lies in.
            self.tasks[key] = replace(task_from_file(path), id=task_id)
        return self.tasks[key]

    def _crashed(self, task_id: str, reason: str) -> EvalResult:
        e = self.evaluator
        return crashed_result(task_id, reason, e.device, e.size, e.mode, e.trials)

    def close(self) -> None:
        self.evaluator.close()


def crashed_result(task_id: str, reason: str, device: str, size: str, mode: str, trials: int) -> EvalResult:
    return EvalResult(task_id=task_id, status=CRASHED, reason=reason, detail="", device=device, device_name="",
                      torch_version="", mode=mode, size=size, trials=trials, hypothesis_seed=0)


@dataclass(eq=False)
class RemoteEvaluator:
    """The driver's handle on one actor, with what EvaluatorPool reads of an evaluator."""

    actor: Any  # ray.actor.ActorHandle
    device: str  # "cuda:3@10.0.0.5": unique in the pool, which takes devices out by name
    size: str
    mode: str
    check_name: str = "strict"

    @property
    def check(self) -> CheckPolicy:
        return check_policy(self.check_name)

    def close(self) -> None:
        import_ray().kill(self.actor)  # harmless on an actor that is already dead


class RayEvaluatorPool(EvaluatorPool):
    """EvaluatorPool over Ray actors; the Optimizer takes it as it takes EvaluatorPool.

    address: "auto" (the cluster `ray start` runs on this machine), "HOST:PORT" or
    "ray://HOST:PORT", or None/"local" to start a Ray instance here.
    cpu_actors: 0 for one actor per GPU of the cluster, N for N actors on the CPU.
    """

    def __init__(self, address: str | None = "auto", cpu_actors: int = 0, *, max_crashes: int = 3,
                 say: Callable[[str], None] = print, startup_timeout: float = STARTUP_TIMEOUT,
                 **evaluator_options):
        if cpu_actors < 0:
            raise ValueError(f"{cpu_actors} CPU actors: give 0 (one actor per GPU) or more")
        self._ray = import_ray()
        self._owns_connection = connect(self._ray, address, cpu_actors)
        self._closed = False
        self._busy: set[int] = set()  # ids of remotes with an evaluation in flight
        self._trials = evaluator_options.get("trials", 5)
        try:
            remotes = start_actors(self._ray, cpu_actors, evaluator_options, startup_timeout)
        except BaseException:
            self._disconnect()
            raise
        super().__init__(remotes, max_crashes=max_crashes, say=say)

    async def evaluate(self, task: Task, source: str, on_phase: OnPhase | None = None) -> EvalResult:
        # The worker's steps stay on the actor's node: `on_phase` hears nothing from there.
        # Read once, here: the text travels, and an actor never looks at the driver's path.
        text = task.path.read_text()
        if self._all_out():
            return self._nothing_left(task)
        free = self._queue()
        while True:
            remote = await free.get()
            if remote is None:  # every actor is out; wake the next one waiting, too
                free.put_nowait(None)
                return self._nothing_left(task)
            try:
                result = await self._run(remote, task, text, source)
            except self._ray.exceptions.RayActorError as exc:
                self._take_out(remote, exc)
                continue
            if self._still_usable(remote, result):
                free.put_nowait(remote)
                return result
            if self._all_out():  # its worker kept crashing and it was the last: the verdict stands
                free.put_nowait(None)
                return result

    async def _run(self, remote: RemoteEvaluator, task: Task, text: str, source: str) -> EvalResult:
        # Left marked busy if this is cancelled (Ctrl-C): the actor goes on with it, and
        # close() should not wait behind it.
        self._busy.add(id(remote))
        data = await remote.actor.evaluate.remote(task.id, text, source)  # an ObjectRef is awaitable
        self._busy.discard(id(remote))
        result = EvalResult.from_dict(data)
        result.device = remote.device  # which GPU of which node ran it: each actor only knows cuda:0
        return result

    def _take_out(self, remote: RemoteEvaluator, exc: Exception) -> None:
        self._taken_out.append(remote.device)
        self.say(f"pike-bench: {remote.device} taken out: its Ray actor died ({_first_line(exc)})")
        remote.close()
        if self._all_out():
            self._free.put_nowait(None)  # for the evaluations waiting on a free actor

    def _all_out(self) -> bool:
        return len(self._taken_out) == len(self.evaluators)

    def _nothing_left(self, task: Task) -> EvalResult:
        return crashed_result(task.id, f"not evaluated: every Ray actor of the pool is out ({self.device})",
                              self.device, self.size, self.mode, self._trials)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._ray.is_initialized():
            idle = [r for r in self.evaluators if r.device not in self._taken_out and id(r) not in self._busy]
            if idle:
                self._ray.wait([r.actor.close.remote() for r in idle], num_returns=len(idle), timeout=CLOSE_TIMEOUT)
            for remote in self.evaluators:
                remote.close()
        self._disconnect()

    def _disconnect(self) -> None:
        # Only a connection this pool made: that stops a Ray it started here, and merely
        # disconnects from a cluster that `ray start` runs (the cluster goes on).
        if self._owns_connection and self._ray.is_initialized():
            self._ray.shutdown()


def check_options(address: str | None, cpu_actors: int, devices: str | None, flag: str) -> None:
    """The Ray options' rules, for the plugin (flag "--pike-ray") and `pike optimize` ("--ray");
    ValueError with the one line to show."""
    if cpu_actors < 0:
        raise ValueError(f"{flag}-cpus must be 0 (one actor per GPU) or more")
    if cpu_actors and not address:
        raise ValueError(f"{flag}-cpus needs {flag} auto|ADDRESS|local")
    if not address:
        return
    if devices:
        raise ValueError(f"{flag} and {flag.replace('ray', 'devices')} exclude each other: Ray places one actor per GPU")
    try:
        import_ray()
    except ImportError:
        raise ValueError(f"{flag} needs Ray: pip install 'pike-bench[ray]'") from None


def open_pool(address: str, cpu_actors: int, flag: str, say: Callable[[str], None], **evaluator_options
              ) -> "RayEvaluatorPool":
    """The pool, or ValueError with one line naming the option (no cluster, no GPU, no start)."""
    try:
        return RayEvaluatorPool(address, cpu_actors=cpu_actors, say=say, **evaluator_options)
    except NoGPU:
        raise ValueError(f"{flag} {address}: the Ray cluster has no GPU; "
                         f"give {flag}-cpus N for N CPU actors") from None
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"{flag} {address}: {exc}") from None


def connect(ray, address: str | None, cpu_actors: int) -> bool:
    """Connect to Ray; True if this call made the connection (and close() should end it)."""
    if ray.is_initialized():
        return False  # a connection of the caller's (a notebook, a test): theirs to end
    if address in (None, "local"):
        # Ray counts one CPU per core here; CPU actors asked for beyond that still get a place.
        ray.init(address="local", num_cpus=max(cpu_actors, os.cpu_count() or 1), include_dashboard=False,
                 log_to_driver=False, ignore_reinit_error=True)
        return True
    try:
        ray.init(address=address, log_to_driver=False, ignore_reinit_error=True)
    except ConnectionError as exc:
        raise ValueError(f"{address}: no Ray cluster to connect to ({_first_line(exc)})") from None
    return True


def start_actors(ray, cpu_actors: int, evaluator_options: dict[str, Any], timeout: float) -> list[RemoteEvaluator]:
    actor_class = ray.remote(EvaluatorActor)
    if cpu_actors:
        handles = [actor_class.options(num_cpus=1).remote("cpu", i, evaluator_options) for i in range(cpu_actors)]
    else:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if not gpus:
            raise NoGPU("the Ray cluster has no GPU; ask for CPU actors instead")
        handles = [actor_class.options(num_gpus=1, num_cpus=1).remote("cuda", i, evaluator_options)
                   for i in range(gpus)]
    try:
        described = ray.get([h.describe.remote() for h in handles], timeout=timeout)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError) as exc:
        for handle in handles:
            ray.kill(handle)
        if isinstance(exc, ray.exceptions.GetTimeoutError):
            raise RuntimeError(f"{len(handles)} Ray actors did not start within {timeout:g} s: "
                               "the cluster's GPUs (or CPUs) may be held by other jobs") from None
        raise RuntimeError(f"a Ray actor failed to start: {_first_line(exc)}") from None
    return [RemoteEvaluator(h, **d) for h, d in zip(handles, described)]


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
