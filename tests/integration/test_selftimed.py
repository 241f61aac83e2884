"""Issue 7: checkpoints nobody has to remember: the self-timed warning
(lead=, on by default with ckpt=) and periodic checkpoints (every=).
The test cluster polls for time-limit changes every 2 s
(RS_END_POLL_SECONDS in slurmd's environment; 30 s by default)."""
import json
import os
import time

from test_checkpoint import _gens, _manifest

# A model that saves its step counter when told to (USR1) and resumes.
MODEL = r"""#!/bin/bash
trap 'echo $N > $RESILIENCE_SCRATCH/n; touch $RESILIENCE_CKPT_READY' USR1
N=0; [ -f $RESILIENCE_SCRATCH/n ] && N=$(cat $RESILIENCE_SCRATCH/n)
echo "attempt=$RESILIENCE_ATTEMPT start=$N restored=${RESILIENCE_RESTORED_FROM:-none}"
if [ "$N" -gt 0 ]; then echo finished; exit 0; fi
while true; do N=$((N+1)); sleep 0.5; done
"""


def test_time_limited_job_without_signal_checkpoints_and_continues(cluster, plugstack, userdir):
    """Must show 1: --time=2, ckpt=, no --signal, retries=0: a generation
    (reason lead) before the limit, a continuation, a restore."""
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(MODEL, ["--time=2", "--open-mode=append",
                                   "--resilience=ckpt=%s,scratch=%s/s-%%j" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        t0 = time.time()
        cluster.wait_for(lambda: os.path.islink(os.path.join(ck, "latest")), 110,
                         "the self-timed checkpoint")
        took = time.time() - t0
        assert cluster.job(j)["Restarts"] == "0", "checkpoint only after the limit"
        info = cluster.wait_state(j, "COMPLETED", 240)
    # The default lead adapts to the 2-minute limit: half of it.
    assert 50 <= took <= 75, took
    g = _manifest(ck)["generations"][0]
    assert (g["attempt"], g["reason"]) == (1, "lead")
    assert info["Restarts"] == "1"
    out = cluster.output(j)
    assert "attempt=2 start=" in out and "restored=%s/gen-000001" % ck in out
    assert "finished" in out
    att = _manifest(ck)["attempts"]
    assert [(a["outcome"], a["action"], a["retry"]) for a in att] == [
        ("timeout", "continued", False), ("completed", "completed", False)]


def test_lead_warning_does_not_kill_an_application_that_ignores_it(cluster, plugstack, userdir):
    ck = os.path.join(userdir, "ckpt")
    script = "#!/bin/bash\necho data > $RESILIENCE_SCRATCH/f\nsleep 20\necho survived\n"
    with plugstack():
        j = cluster.sbatch(script, ["--time=2", "--resilience=ckpt=%s,scratch=%s/s-%%j,"
                                    "lead=110s,grace=5" % (ck, userdir)])
        info = cluster.wait_done(j, 60)
    assert info["JobState"] == "COMPLETED", info
    assert "survived" in cluster.output(j)
    assert _manifest(ck)["generations"][0]["reason"] == "lead"


def test_time_limit_update_moves_the_self_timed_checkpoint(cluster, plugstack, userdir):
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        # lead=150s on a 3-minute job: the warning would come after 30 s.
        j = cluster.sbatch(MODEL, ["--time=3", "--resilience=ckpt=%s,scratch=%s/s-%%j,"
                                   "lead=150s,grace=5" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        t0 = time.time()
        r = cluster.run(["scontrol", "update", "JobId=%d" % j, "TimeLimit=6"])
        assert r.returncode == 0, r.stderr
        time.sleep(45)
        assert _gens(ck) == [], "the old end time was used"
        # Back to 3 minutes: the warning is due at once.
        r = cluster.run(["scontrol", "update", "JobId=%d" % j, "TimeLimit=3"])
        assert r.returncode == 0, r.stderr
        cluster.wait_for(lambda: os.path.islink(os.path.join(ck, "latest")), 30,
                         "the checkpoint at the new end time")
        assert time.time() - t0 < 80
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    assert _manifest(ck)["generations"][0]["reason"] == "lead"


def test_periodic_checkpoints(cluster, plugstack, userdir):
    """Must show 2 (first half): checkpoints at the interval."""
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(MODEL, ["--resilience=ckpt=%s,scratch=%s/s-%%j,every=20s,"
                                   "grace=3,keep=10,lead=0" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        time.sleep(52)
        gens = _gens(ck)
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    assert len(gens) >= 2, gens
    m = _manifest(ck)["generations"]
    assert all(g["reason"] == "periodic" for g in m), m
    assert m[1]["time_unix"] - m[0]["time_unix"] >= 15


def test_every_below_site_minimum_refused(cluster, plugstack, userdir):
    with plugstack("min_every=60s"):
        r = cluster.sbatch("#!/bin/sh\ntrue\n", [
            "--resilience=ckpt=%s/c,every=30s" % userdir], check=False)
    assert r.returncode != 0
    assert "every is under the site minimum min_every=1m" in r.stderr
    assert cluster.queue() == []


def test_lead_that_cannot_fit_refused_at_submit(cluster, plugstack, userdir):
    with plugstack():
        r = cluster.sbatch("#!/bin/sh\ntrue\n", [
            "--time=2", "--resilience=ckpt=%s/c,lead=2m" % userdir], check=False)
        assert r.returncode != 0
        assert "lead=2m plus grace=1m do not fit the job's time limit of 2m" in r.stderr
        r = cluster.sbatch("#!/bin/sh\n#SBATCH --time=1\ntrue\n", [
            "--resilience=ckpt=%s/c,lead=50s" % userdir], check=False)
        assert r.returncode != 0 and "time limit of 1m" in r.stderr
    assert cluster.queue() == []


def test_node_failure_restores_last_periodic_generation(cluster, plugstack, userdir):
    """Must show 2 (second half): the job's node dies (its slurmd and the
    job's processes are killed); Slurm requeues the job after SlurmdTimeout
    (30 s here); the next attempt, on another node, restores the last
    periodic generation, and the ledger records the lost attempt as
    node_fail."""
    import signal
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(MODEL, ["--open-mode=append",
                                   "--resilience=ckpt=%s,scratch=%s/s-%%j-%%n,every=10s,"
                                   "grace=3,keep=5,lead=0" % (ck, userdir)])
        info = cluster.wait_state(j, "RUNNING")
        node = info["NodeList"]
        cluster.wait_for(lambda: len(_gens(ck)) >= 1, 40, "a periodic generation")
        proc = cluster.slurmd_procs[node]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            # The job's slurmstepd and processes, of this cluster only.
            cluster.kill(cluster.own_pids(job=j))
            time.sleep(1)
            last = _manifest(ck)["generations"][-1]["gen"]   # nothing saves now
            cluster.wait_for(lambda: cluster.job(j).get("Restarts") == "1", 120,
                             "Slurm to requeue the job after the node failure")
            cluster.wait_for(lambda: "finished" in cluster.output(j), 120,
                             "attempt 2 to finish")
        finally:
            cluster.restart_slurmd(node)
        info = cluster.wait_state(j, "COMPLETED", 30)
    assert info["NodeList"] != node
    out = cluster.output(j)
    assert "attempt=2 start=" in out
    assert "restored=%s/gen-%06d" % (ck, last) in out, out
    att = _manifest(ck)["attempts"]
    assert [(a["attempt"], a["outcome"]) for a in att] == [(1, "node_fail"), (2, "completed")]


def test_srun_steps_that_save_with_a_lead_end_with_their_tasks(cluster, plugstack, userdir):
    """In a job on several nodes (and one without a batch script) the srun
    steps save, with the default lead, so each gets an end-time poller.
    The poller must not keep the step open: it once held the tasks' output
    pipes, and every such srun hung until the job's time limit.  Nor may it
    outlive its step: one per step, each asking slurmctld until the end of
    the attempt, they piled up (the pollers keep slurmstepd's name)."""
    ck = os.path.join(userdir, "ckpt")
    spec = "--resilience=ckpt=%s,scratch=%s/s-%%j-%%n" % (ck, userdir)
    script = """#!/bin/bash
for i in 1 2 3; do
  t0=$(date +%s%N); srun -N2 -n2 true; rc=$?
  echo "step=$i rc=$rc ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
done
sleep 15
"""

    def pollers():
        # The pollers are `slurm-resilience poll-end --job J` (exec'd:
        # since 23.11 a child forked in user_init cannot call libslurm).
        return [p for p in cluster.own_pids(job=j)
                if " poll-end " in cluster.cmdline(p)]

    with plugstack():
        j = cluster.sbatch(script, ["-N2", "--time=10", spec])
        cluster.wait_for(lambda: "step=3" in cluster.output(j), 60, "three steps")
        cluster.wait_for(lambda: not pollers(), 5, "no poller left after its step")
        info = cluster.wait_done(j, 90)
        r = cluster.as_user(["srun", "-N1", "-t", "5", spec, "echo", "alone"],
                            timeout=60)
    assert info["JobState"] == "COMPLETED", info
    out = cluster.output(j)
    steps = [l.split() for l in out.splitlines() if l.startswith("step=")]
    assert len(steps) == 3, out
    for step, rc, ms in steps:
        assert rc == "rc=0", out
        assert int(ms.split("=")[1]) < 15000, out
    assert r.returncode == 0 and "alone" in r.stdout, (r.stdout, r.stderr)
