"""The job runner (circuitlang.eval.parallel): how jobs are planned, and that a local Ray
gives exactly the sequential results, in job order, with job errors and progress intact.

One local Ray of 2 workers serves the whole module (started by the module fixture through
`ray_session`, the same start-up `run_jobs` uses, and shut down at the end); the Ray
tests are skipped where Ray is not installed, the rest run without it.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

from circuitlang.core.errors import CircuitlangError
from circuitlang.eval import parallel
from circuitlang.eval.parallel import INSTALL_HELP, ParallelError, Plan, plan, ray_session, run_jobs


class JobFailed(CircuitlangError):
    """An error a job raises on purpose, to see it come back as itself."""


def seeded_matmul(seed: int) -> dict:
    """A deterministic float job: a seeded random product, summed along one axis (a
    reduction whose float result depends on how torch splits it over threads)."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(96, 80, generator=generator)
    b = torch.randn(80, 72, generator=generator)
    return {"seed": seed, "values": (a @ b).sum(0).tolist(), "threads": torch.get_num_threads(),
            "pid": os.getpid()}


def fail_on_three(job: int) -> int:
    """Returns its job, except job 3, which fails with a CircuitlangError and its help."""
    if job == 3:
        raise JobFailed("job 3 cannot be measured", "look at checkpoint 3")
    return job


def echo_env(_job: int) -> dict:
    """The environment a job sees that the driver passes on."""
    return {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "CIRC_THREADS")}


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 workers for the module, started the way run_jobs starts one."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized(), "another test left Ray running"
    two = plan(4, 2, None)
    assert two == Plan(2, None, "local Ray, 2 workers")
    with ray_session(two):
        assert ray.is_initialized()
        yield two
    assert not ray.is_initialized(), "ray_session started Ray but did not shut it down"


@pytest.fixture
def no_ray(monkeypatch):
    """Ray made unimportable, as when circuitlang[distributed] is not installed."""
    monkeypatch.setitem(sys.modules, "ray", None)


# --- Ray: the same results as in-process -----------------------------------------------------


def test_local_ray_results_equal_the_sequential_run_in_job_order(local_ray):
    seeds = [5, 0, 7, 2, 9, 1]
    here = run_jobs(seeded_matmul, seeds, plan(len(seeds), 1, None), threads=2)
    on_ray = run_jobs(seeded_matmul, seeds, local_ray, threads=2)
    assert [result["seed"] for result in on_ray] == seeds
    assert [result["values"] for result in on_ray] == [result["values"] for result in here]
    assert {result["threads"] for result in on_ray} == {2} == {result["threads"] for result in here}
    # The jobs really ran in Ray's worker processes, and in this one for the in-process plan.
    assert os.getpid() not in {result["pid"] for result in on_ray}
    assert {result["pid"] for result in here} == {os.getpid()}


def test_a_job_error_reaches_the_caller_as_itself(local_ray):
    with pytest.raises(JobFailed) as caught:
        run_jobs(fail_on_three, range(6), local_ray)
    assert type(caught.value) is JobFailed
    assert caught.value.message == "job 3 cannot be measured"
    assert caught.value.help == "look at checkpoint 3"
    # Ray is still usable after a failed job (the module's Ray was not shut down).
    assert run_jobs(fail_on_three, [0, 1, 2], local_ray) == [0, 1, 2]


def test_progress_counts_every_result_on_ray(local_ray):
    calls: list[tuple[int, int]] = []
    results = run_jobs(fail_on_three, [0, 1, 2, 4, 5], local_ray, progress=lambda done, total: calls.append((done, total)))
    assert results == [0, 1, 2, 4, 5]
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_workers_see_the_drivers_offline_settings(local_ray, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("CIRC_THREADS", "3")
    assert run_jobs(echo_env, [0, 1], local_ray) == [{"HF_HUB_OFFLINE": "1", "CIRC_THREADS": "3"}] * 2


def test_auto_uses_a_local_ray_with_one_worker_per_cpu_up_to_the_jobs(monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setattr(parallel, "cpu_count", lambda: 8)
    assert plan(3, None, None) == Plan(3, None, "local Ray, 3 workers")
    assert plan(20, None, None) == Plan(8, None, "local Ray, 8 workers")
    monkeypatch.setattr(parallel, "cpu_count", lambda: 1)
    assert plan(20, None, None) == Plan(1, None, "in-process")


def test_an_address_plans_the_cluster_without_connecting():
    pytest.importorskip("ray")
    cluster = plan(10, None, "ray://head:10001")
    assert cluster == Plan(10, "ray://head:10001", "Ray cluster at ray://head:10001")
    assert plan(10, 4, "auto").how == "Ray cluster at auto, at most 4 jobs at a time"
    assert cluster.uses_ray


# --- Planning and the in-process path (no Ray needed) ----------------------------------------


def test_one_worker_runs_in_process():
    one = plan(10, 1, None)
    assert one == Plan(1, None, "in-process")
    assert not one.uses_ray
    assert plan(1, None, None).how == "in-process"
    assert plan(1, 4, None).how == "in-process"


def test_without_ray_workers_fall_back_to_in_process_and_say_why(no_ray):
    fallback = plan(10, 4, None)
    assert fallback.workers == 1 and fallback.address is None and not fallback.uses_ray
    assert fallback.how == f"in-process (Ray is not installed: {INSTALL_HELP} to run 4 workers)"
    assert plan(10, None, None) == Plan(1, None, "in-process")
    # ...and the in-process run needs no Ray.
    assert run_jobs(fail_on_three, [2, 1, 0], fallback) == [2, 1, 0]


def test_an_address_without_ray_is_an_error_with_the_install_help(no_ray):
    with pytest.raises(ParallelError) as caught:
        plan(10, None, "ray://head:10001")
    assert "ray://head:10001" in caught.value.message
    assert caught.value.help == INSTALL_HELP
    assert isinstance(caught.value, CircuitlangError)


def test_fewer_than_one_worker_is_an_error():
    with pytest.raises(ParallelError, match="at least 1"):
        plan(10, 0, None)


def test_in_process_sets_the_threads_per_job_and_restores_them():
    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    results = run_jobs(seeded_matmul, [0, 1], plan(2, 1, None), threads=wanted)
    assert [result["threads"] for result in results] == [wanted, wanted]
    assert torch.get_num_threads() == before


def test_in_process_errors_and_progress():
    calls: list[tuple[int, int]] = []
    assert run_jobs(fail_on_three, [4, 0, 2], plan(3, 1, None), progress=lambda *call: calls.append(call)) == [4, 0, 2]
    assert calls == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(JobFailed, match="job 3"):
        run_jobs(fail_on_three, [0, 3], plan(2, 1, None))


def test_no_jobs_give_no_results_without_starting_anything():
    assert run_jobs(fail_on_three, [], Plan(2, None, "local Ray, 2 workers")) == []


def test_worker_env_carries_this_sys_path(monkeypatch):
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("CIRC_THREADS", raising=False)
    env = parallel.worker_env()
    entries = env["PYTHONPATH"].split(os.pathsep)
    assert os.path.dirname(os.path.abspath(__file__)) in entries
    assert all(os.path.isdir(entry) for entry in entries)
    assert env["TRANSFORMERS_OFFLINE"] == "1" and "CIRC_THREADS" not in env
    assert parallel.worker_env(cluster=True)["PYTHONPATH"].endswith(os.pathsep + "${PYTHONPATH}")


def test_an_unreachable_cluster_is_refused_quickly() -> None:
    """Ray retries an unreachable head for minutes; the runner checks the port first."""
    import socket

    pytest.importorskip("ray")
    with socket.socket() as probe:  # a port nothing listens on: bind, then close
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    plan = parallel.plan(2, None, f"127.0.0.1:{port}")
    with pytest.raises(parallel.ParallelError, match="nothing answers at"):
        parallel.run_jobs(abs, [1, 2], plan)
