"""The pure parts of `--workers`: how many, and one metrics exposition from several."""

from __future__ import annotations

import os
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lockgate.proxy.workers import Supervisor, merge_expositions, resolve_workers, usable_cpus

WORKER = """\
# HELP lockgate_requests_total Requests answered
# TYPE lockgate_requests_total counter
lockgate_requests_total{{model="m",status_code="200"}} {n}.0
# HELP lockgate_in_flight Requests in flight
# TYPE lockgate_in_flight gauge
lockgate_in_flight {n}.0
"""


def test_auto_uses_every_usable_cpu_with_redis_and_one_worker_with_the_memory_store() -> None:
    assert resolve_workers("auto", "redis://127.0.0.1:6379/0") == usable_cpus() >= 1
    assert resolve_workers("auto", "memory") == 1
    assert resolve_workers("3", "memory") == 3
    with pytest.raises(ValueError, match="at least 1"):
        resolve_workers("0", "memory")


def test_the_workers_metrics_merge_into_one_family_each_with_a_worker_label() -> None:
    text = merge_expositions([(0, WORKER.format(n=4)), (1, WORKER.format(n=5))]).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert text.count("# TYPE lockgate_requests_total counter") == 1
    requests = {s.labels["worker"]: s.value for s in families["lockgate_requests"].samples}
    assert requests == {"0": 4.0, "1": 5.0}
    assert {s.labels["model"] for s in families["lockgate_requests"].samples} == {"m"}
    assert sum(s.value for s in families["lockgate_in_flight"].samples) == 9.0


def test_reaping_waits_for_a_worker_still_draining_when_another_was_reaped_first() -> None:
    quick = os.fork()
    if quick == 0:
        os._exit(0)
    read, write = os.pipe()
    slow = os.fork()
    if slow == 0:  # drains until the test lets it end
        os.close(write)
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    pids = [quick, slow]
    os.waitpid(quick, 0)  # as the watcher does when a worker ends
    reaper = threading.Thread(target=Supervisor._reap, args=(list(pids),))
    reaper.start()
    pids.remove(quick)  # the watcher takes it off the list meanwhile
    reaper.join(0.3)
    assert reaper.is_alive()  # still waiting for the slow one
    os.close(write)
    reaper.join(10)
    assert not reaper.is_alive()
    with pytest.raises(ChildProcessError):
        os.waitpid(slow, os.WNOHANG)  # reaped
