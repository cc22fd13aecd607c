"""Run independent, deterministic jobs (one model checkpoint each, say) on Ray or in-process.

`plan(jobs, workers, address)` decides how; `run_jobs(function, jobs, plan)` runs
`function(job)` for every job and returns the results in job order.

Why Ray and not a home-made process pool: Ray already does what a pool would have to
grow into — starting and reusing worker processes, shipping functions and results,
returning a worker's exception to the caller, surviving a crashed worker with an error
instead of a hang — and the same code runs on one machine (an embedded local Ray,
started on demand and shut down afterwards) and on a cluster (`address`). Ray is an
optional dependency (`pip install 'circuitlang[distributed]'`) and is imported only
here, inside functions: without it circuitlang imports, and the jobs run one after
another in this process.

Identical results: a job's result does not depend on where it runs provided that the job
is deterministic (seeded, no dependence on timing or on earlier jobs in the same process)
and that torch uses the same number of threads for it, because the thread count changes
how float reductions are split and summed. `threads` sets that count for every job, on
both paths (in-process the previous count is restored afterwards). Ray workers also get
the driver's `sys.path` (so a job's function imports in the worker, wherever it is
defined) and the environment variables that change how models load (`_PASSED_ENV`).
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from ..core.errors import CircuitlangError

INSTALL_HELP = "pip install 'circuitlang[distributed]'"

# Environment variables a worker needs to behave like this process: offline model hubs
# (a worker must not try the network when the driver does not) and the torch threads
# the model loader picks (circuitlang.eval.loading).
_PASSED_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CIRC_THREADS")


class ParallelError(CircuitlangError):
    """Jobs cannot run as asked: Ray missing for a cluster, a bad worker count, a lost worker."""


@dataclass(frozen=True)
class Plan:
    """How jobs run. `address` set: on the Ray cluster there, at most `workers` at a time;
    else `workers` > 1: on a local Ray started on demand with that many worker processes;
    else in this process. `how` says so in one line, for the terminal."""

    workers: int
    address: str | None
    how: str

    @property
    def uses_ray(self) -> bool:
        """Whether the jobs run on Ray (local or cluster) rather than in this process."""
        return self.address is not None or self.workers > 1


def cpu_count() -> int:
    """The CPUs this process may use (its affinity mask where the system has one: a
    container's share, not the host's count), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def ray_available() -> bool:
    """Whether Ray imports here (`circuitlang[distributed]` installed)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def plan(jobs: int, workers: int | None, address: str | None) -> Plan:
    """Decide how `jobs` independent jobs run.

    `address`: the Ray cluster there (Ray must be installed), at most `workers` jobs at a
    time when given. `workers=None` (auto): a local Ray with one worker per CPU (no more
    than there are jobs) when Ray is installed and both jobs and CPUs number more than
    one, else in-process. `workers=1`: in-process. `workers>1` without Ray: in-process,
    and `how` says why.

    >>> plan(3, 1, None)
    Plan(workers=1, address=None, how='in-process')
    """
    if workers is not None and workers < 1:
        raise ParallelError(f"the number of workers must be at least 1 (got {workers})",
                            "use --workers 1 to run in this process")
    if address is not None:
        if not ray_available():
            raise ParallelError(f"running on the Ray cluster at {address} needs Ray, which is not installed",
                                INSTALL_HELP)
        limit = f", at most {workers} jobs at a time" if workers is not None else ""
        return Plan(workers or max(1, jobs), address, f"Ray cluster at {address}{limit}")
    if workers is None:
        workers = min(jobs, cpu_count())
        if workers <= 1 or not ray_available():
            return _in_process()
        return Plan(workers, None, f"local Ray, {workers} workers")
    workers = min(workers, max(1, jobs))
    if workers <= 1:
        return _in_process()
    if not ray_available():
        return _in_process(f"Ray is not installed: {INSTALL_HELP} to run {workers} workers")
    return Plan(workers, None, f"local Ray, {workers} workers")


def _in_process(note: str | None = None) -> Plan:
    return Plan(1, None, f"in-process ({note})" if note else "in-process")


def run_jobs(function: Callable[[Any], Any], jobs: Sequence, plan: Plan, threads: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> list:
    """`[function(job) for job in jobs]`, run as `plan` says; results in job order.

    `function` must be picklable for Ray (a module-level function) and return a picklable
    result. `threads`: torch threads for each job (the same on every path, so float
    results match the sequential run bit for bit). `progress(done, total)` is called as
    each result arrives. A job's exception reaches the caller as itself (its type and
    message), not wrapped in Ray's error.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    if not plan.uses_ray:
        results = []
        for index, job in enumerate(jobs):
            results.append(_call_with_threads(function, threads, job))
            if progress is not None:
                progress(index + 1, len(jobs))
        return results
    with ray_session(plan):
        return _run_on_ray(function, jobs, plan, threads, progress)


@contextmanager
def ray_session(plan: Plan) -> Iterator[None]:
    """Ray, ready for `plan`'s jobs: connected to its cluster, or a local Ray of
    `plan.workers` CPUs started quietly; a Ray already running in this process is used as
    it is. Shut down on exit only when started here."""
    import ray

    if plan.address is not None:
        _reachable(plan.address)
    if ray.is_initialized():
        yield
        return
    quiet = _hush_ray_start()
    try:
        if plan.address is not None:
            try:
                ray.init(address=plan.address, logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise ParallelError(f"cannot connect to the Ray cluster at {plan.address}: {error}",
                                    "check the address (`ray status` on the head node prints it), or "
                                    "leave --ray-address out to run here") from error
        else:
            ray.init(num_cpus=plan.workers, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
    finally:
        quiet()
    try:
        yield
    finally:
        ray.shutdown()


def _reachable(address: str, seconds: float = 5.0) -> None:
    """Refuse, within `seconds`, a cluster address nothing answers at: Ray itself retries
    an unreachable head for minutes. `auto` and addresses without a port are left to Ray."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"ray://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return
    if not host or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return
    except OSError as error:
        raise ParallelError(f"nothing answers at {address} ({host}:{port}): {error.strerror or error}",
                            "check the address (`ray status` on the head node prints it), or leave "
                            "--ray-address out to run here") from None


def _hush_ray_start() -> Callable[[], None]:
    """Keep Ray's start-up notes off the terminal and return what undoes it.

    `logging_level` in `ray.init` hides its INFO lines ("Started a local Ray instance");
    a new local Ray also warns that it turned token authentication on (its default), which
    is no news for a private Ray started here: that one logger is raised to ERROR while
    Ray starts. Warnings from anything else, and every error, still show. Ray's usage
    statistics stay off unless RAY_USAGE_STATS_ENABLED says otherwise.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = logger.level
    logger.setLevel(logging.ERROR)
    return lambda: logger.setLevel(level)


def _run_on_ray(function: Callable, jobs: list, plan: Plan, threads: int | None,
                progress: Callable[[int, int], None] | None) -> list:
    """Submit jobs to Ray, at most `plan.workers` in flight, and collect the results in order."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    env = worker_env(cluster=plan.address is not None)
    remote = ray.remote(num_cpus=1)(_call_with_threads).options(runtime_env={"env_vars": env})
    function_ref = ray.put(function)
    results: list = [None] * len(jobs)
    pending: dict = {}
    following = 0
    done = 0
    try:
        while done < len(jobs):
            while following < len(jobs) and len(pending) < plan.workers:
                pending[remote.remote(function_ref, threads, jobs[following])] = following
                following += 1
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                results[pending.pop(ref)] = ray.get(ref)
                done += 1
                if progress is not None:
                    progress(done, len(jobs))
    except RayTaskError as error:
        raise error.cause from error
    except RayError as error:
        raise ParallelError(f"a Ray worker failed: {str(error).splitlines()[0] if str(error) else error!r}",
                            "run with --workers 1 to run the jobs in this process") from error
    finally:
        for ref in pending:
            ray.cancel(ref)
    return results


def worker_env(cluster: bool = False) -> dict[str, str]:
    """Environment variables for Ray's workers: PYTHONPATH built from this process's
    `sys.path` entries that exist, so functions from the repository, its tests and scripts
    import there (on a `cluster`, ahead of the node's own PYTHONPATH, which a local
    worker has in `sys.path` already); and `_PASSED_ENV` where set."""
    paths = [os.path.abspath(entry or os.curdir) for entry in sys.path]
    paths = list(dict.fromkeys(path for path in paths if os.path.isdir(path)))
    env = {"PYTHONPATH": os.pathsep.join(paths + (["${PYTHONPATH}"] if cluster else []))}
    env.update({name: os.environ[name] for name in _PASSED_ENV if name in os.environ})
    return env


def _call_with_threads(function: Callable, threads: int | None, job: Any) -> Any:
    """`function(job)` with torch on `threads` threads (when given), restored afterwards."""
    if threads is None:
        return function(job)
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return function(job)
    finally:
        torch.set_num_threads(previous)
