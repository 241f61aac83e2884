"""Issue 13: the plugin on a cluster that tracks processes with cgroups
(proctrack/cgroup + task/cgroup, cgroup/v1).  Run by `make
integration-cgroup` (RS_CGROUP=1, one cgroup cluster for the session,
with the process-lifetime tests of the other modules); skipped on the
linuxproc cluster of `make integration`.

1. test_cluster_really_tracks_by_cgroup - the job's processes are in the
   step's freezer cgroup, so what follows is tested where Slurm kills by
   cgroup.
2. test_metrics_event_arrives_within_seconds - the last event of a job
   reaches the Pushgateway within seconds of the job's end: the detached
   sender is not killed with the step's cgroup (else it would wait for
   the flush timer, 5 min).
3. test_sender_outlives_the_step - a receiver that never answers keeps
   the sender busy past the step's end: the sender is still alive after
   the job is COMPLETED and lives in no job's cgroup (proctrack/cgroup
   kills everything left in the step's freezer cgroup).
"""
import os
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "metrics"))
from receivers import FaultyReceiver, Receivers  # noqa: E402


@pytest.fixture(autouse=True)
def _cgroup_only(cluster):
    if not cluster.cgroup:
        pytest.skip("cgroup cluster only: make integration-cgroup (RS_CGROUP=1)")


def test_cluster_really_tracks_by_cgroup(cluster, plugstack, userdir):
    with plugstack(""):
        cfg = cluster.run(["scontrol", "show", "config"]).stdout
        assert "proctrack/cgroup" in cfg and "task/cgroup" in cfg, cfg
        mark = os.path.join(userdir, "pid")
        j = cluster.sbatch("#!/bin/bash\necho $$ > %s\nsleep 30\n" % mark,
                           ["--resilience=retries=1"])
        cluster.wait_for(lambda: os.path.exists(mark) and
                         open(mark).read().strip(), 60, "the job's pid")
        pid = int(open(mark).read())
        with open("/proc/%d/cgroup" % pid) as f:
            cg = f.read()
        freezer = [l for l in cg.splitlines() if ":freezer:" in l]
        assert freezer and "/job_%d/step_batch" % j in freezer[0], cg
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)


def test_metrics_event_arrives_within_seconds(cluster, plugstack):
    spool = os.path.join(cluster.dir, "spool-cgroup-latency")
    os.makedirs(spool, mode=0o700)
    rcv = Receivers(clickhouse=False, alertmanager=False).start()
    try:
        args = ("metrics_url=%s metrics_format=prometheus spool_dir=%s "
                "cluster=rstest state_dir=%s/st-cg"
                % (rcv.pushgateway_url, spool, cluster.dir))
        with plugstack(args):
            # One attempt: its only event is sent by the sender the step's
            # end starts; no later submit on the node flushes it.
            j = cluster.sbatch("#!/bin/bash\nsleep 1\nexit 0\n",
                               ["--resilience=retries=1"])
            cluster.wait_state(j, "COMPLETED", 90)
            t0 = time.time()

            def pushed():
                s = rcv.pushgateway_samples("slurm_resilience_attempts_total")
                return [v for k, v in s.items() if ("job_id", str(j)) in k]
            cluster.wait_for(lambda: pushed() == [1.0], 15,
                             "job %d's event in the Pushgateway (spool: %s)"
                             % (j, os.listdir(spool)))
            latency = time.time() - t0
        print("cgroup: event delivered %.1f s after COMPLETED" % latency)
        assert [f for f in os.listdir(spool) if f.startswith("e-")] == []
    finally:
        rcv.stop()


def _cgroups(pid):
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            return f.read()
    except OSError:
        return None


def test_sender_outlives_the_step(cluster, plugstack):
    spool = os.path.join(cluster.dir, "spool-cgroup-hang")
    os.makedirs(spool, mode=0o700)
    hang = FaultyReceiver("hang").start()
    try:
        args = ("metrics_url=%s metrics_format=json spool_dir=%s cluster=rstest "
                "timeout_ms=8000 flush_budget_ms=10000 state_dir=%s/st-cg"
                % (hang.url, spool, cluster.dir))
        with plugstack(args):
            j = cluster.sbatch("#!/bin/bash\nsleep 1\nexit 0\n",
                               ["--resilience=retries=1"])
            cluster.wait_state(j, "COMPLETED", 90)
            cluster.wait_for(lambda: hang.count >= 1, 10, "the sender's request")

            def senders():
                return [p for p in cluster.own_pids()
                        if " flush " in cluster.cmdline(p) + " "]
            # Slurm has killed what was left in the step's cgroup by the
            # time the job is COMPLETED; give it a moment more.
            time.sleep(2)
            alive = senders()
            where = {p: _cgroups(p) for p in alive}
        assert alive, "the sender was killed with the step (spool: %s)" % os.listdir(spool)
        for p, cg in where.items():
            assert cg is not None and "/job_" not in cg, (p, cg)
    finally:
        hang.stop()
