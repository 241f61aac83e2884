"""Issue 4: checkpoint on the warning signal inside real jobs, the
supervisor's transparency, restore on restart, multi-node generations."""
import json
import os
import subprocess
import time

import pytest


def _manifest(path):
    with open(os.path.join(path, "manifest.json")) as f:
        return json.load(f)


def _gens(path):
    try:
        return sorted(d for d in os.listdir(path) if d.startswith("gen-"))
    except FileNotFoundError:
        return []


def _wait_gen(cluster, path, n=1, timeout=30):
    cluster.wait_for(lambda: len(_gens(path)) >= n and
                     os.path.islink(os.path.join(path, "latest")), timeout,
                     "%d generation(s) in %s" % (n, path))


def _requeue_now(cluster, j):
    """scontrol requeue.  No StartTime=now: a batch job started before
    Slurm's own delay (cred_expire + 1 s: 6 s here) is killed with "Job
    credential revoked"."""
    r = cluster.run(["scontrol", "requeue", str(j)])
    assert r.returncode == 0, r.stderr


# The tutorial's reference job (seed, section 2) without its trap/rsync:
# the application writes state into scratch when told to, and touches the
# ready file.  A user trap is still there, to show it keeps working.
TUTORIAL = r"""#!/bin/bash
#SBATCH --job-name=climate-run
#SBATCH --requeue
trap 'echo "trap-ran attempt=$RESILIENCE_ATTEMPT";
      echo "step=$STEP" > "$RESILIENCE_SCRATCH/model.state";
      touch "$RESILIENCE_CKPT_READY"' USR1
echo "attempt=$RESILIENCE_ATTEMPT restored=${RESILIENCE_RESTORED_FROM:-none}"
STEP=0
[ -f "$RESILIENCE_SCRATCH/model.state" ] && . "$RESILIENCE_SCRATCH/model.state" && echo "resumed-from=$step" && STEP=$step
for i in $(seq 1 120); do STEP=$((STEP+1)); sleep 0.5; done
echo done
"""


def test_tutorial_job_checkpoints_on_usr1_and_restores(cluster, plugstack, userdir):
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(TUTORIAL, [
            "--open-mode=append", "--resilience=ckpt=%s/%%j,scratch=%s/run-%%j,"
            "lead=0,grace=20" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        cluster.wait_for(lambda: "attempt=1" in cluster.output(j), 20, "job start")
        time.sleep(2)
        r = cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
        assert r.returncode == 0
        gdir = os.path.join(ck, str(j))
        _wait_gen(cluster, gdir)
        latest = os.path.join(gdir, "latest", "node-0", "model.state")
        with open(latest) as f:
            saved = f.read()
        assert saved.startswith("step=") and int(saved.split("=")[1]) > 0
        out = cluster.output(j)
        assert "trap-ran attempt=1" in out
        assert "resilience: checkpoint gen-000001 saved:" in out
        m = _manifest(gdir)
        g = m["generations"][-1]
        assert (g["gen"], g["attempt"], g["reason"], g["job_id"]) == (1, 1, "signal", str(j))
        # The batch job keeps running after the checkpoint.
        assert cluster.state(j) == "RUNNING"
        _requeue_now(cluster, j)
        cluster.wait_for(lambda: "attempt=2" in cluster.output(j), 60, "attempt 2")
        cluster.wait_for(lambda: "resumed-from" in cluster.output(j), 10, "resume")
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    out = cluster.output(j)
    assert "attempt=2 restored=%s/gen-000001" % gdir in out
    assert "resumed-from=%s" % saved.strip().split("=")[1] in out
    # Restored files are copies: the checkpoint did not change under the job.
    with open(latest) as f:
        assert f.read() == saved
    # The restore claim of attempt 2 went with the attempt.
    assert not [f for f in os.listdir(gdir) if f.startswith(".restored-")]
    # The saver's status line reached slurmd's log (through the status
    # pipe) when attempt 1's batch step ended.
    log = cluster.slurmd_log(cluster.job(j)["BatchHost"])
    assert ("resilience: job %d: checkpoint gen-000001 (signal, part 1/1, "
            "published) saved:" % j) in log, \
        [line for line in log.splitlines() if "resilience" in line]


def test_signal_via_time_limit_warning(cluster, plugstack, userdir):
    """--time=1 --signal=B:USR1@50: the checkpoint exists before the limit."""
    ck = os.path.join(userdir, "ckpt")
    script = ("#!/bin/bash\ntrap 'date > $RESILIENCE_SCRATCH/s; touch $RESILIENCE_CKPT_READY' USR1\n"
              "for i in $(seq 1 200); do sleep 0.5; done\n")
    with plugstack():
        j = cluster.sbatch(script, ["--time=1", "--signal=B:USR1@50",
                                    "--resilience=ckpt=%s,scratch=%s/s-%%j,lead=0" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        t0 = time.time()
        _wait_gen(cluster, ck, 1, timeout=75)
        assert cluster.state(j) == "RUNNING", "checkpoint only after the end"
        assert time.time() - t0 < 60
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    assert os.path.exists(os.path.join(ck, "latest", "node-0", "s"))


@pytest.mark.parametrize("script", [
    # ignores USR1 entirely
    "#!/bin/bash\ntrap '' USR1\necho data > $RESILIENCE_SCRATCH/f\nsleep 60\n",
    # handles USR1 but never says it is ready
    "#!/bin/bash\ntrap 'echo got-it' USR1\necho data > $RESILIENCE_SCRATCH/f\n"
    "for i in $(seq 1 120); do sleep 0.5; done\n",
], ids=["ignores-signal", "never-ready"])
def test_save_happens_after_grace(cluster, plugstack, userdir, script):
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(script, ["--resilience=ckpt=%s,scratch=%s/s-%%j,grace=4,lead=0" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        time.sleep(1.5)
        t0 = time.time()
        cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
        _wait_gen(cluster, ck, 1, timeout=20)
        waited = time.time() - t0
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    assert waited >= 3.5, "saved before grace ran out (%.1fs)" % waited
    with open(os.path.join(ck, "latest", "node-0", "f")) as f:
        assert f.read() == "data\n"


STATUS_CASES = [("exit 7", "7:0"), ("kill -SEGV $$", "0:11"), ("kill -KILL $$", "0:9")]


@pytest.mark.parametrize("body,want", STATUS_CASES, ids=["exit7", "segv", "kill"])
def test_batch_exit_status_identical_with_and_without(cluster, plugstack, userdir, body, want):
    got = {}
    with plugstack():
        for name, args in (("plain", []),
                           ("supervised", ["--resilience=ckpt=%s/%%j,scratch=%s/s-%%j,lead=0"
                                          % (userdir, userdir)])):
            j = cluster.sbatch("#!/bin/bash\n%s\n" % body, args)
            got[name] = cluster.wait_done(j)["ExitCode"]
    assert got == {"plain": want, "supervised": want}


@pytest.mark.parametrize("body,rc", [("exit 7", 7), ("kill -SEGV $$", 139),
                                     ("kill -KILL $$", 137)],
                         ids=["exit7", "segv", "kill"])
def test_srun_exit_status_identical_with_and_without(cluster, plugstack, userdir, body, rc):
    with plugstack():
        plain = cluster.as_user(["srun", "-N1", "bash", "-c", body])
        sup = cluster.as_user(["srun", "-N1",
                               "--resilience=ckpt=%s/x,scratch=%s/s-%%j,lead=0" % (userdir, userdir),
                               "bash", "-c", body])
    assert plain.returncode == rc, plain.stderr
    assert sup.returncode == rc, sup.stderr


def test_no_supervisor_without_ckpt(cluster, plugstack, userdir):
    with plugstack():
        j1 = cluster.sbatch("#!/bin/bash\nsleep 20\n", ["--resilience=retries=1"])
        j2 = cluster.sbatch("#!/bin/bash\nsleep 20\n",
                            ["--resilience=ckpt=%s/%%j,scratch=%s/s-%%j,lead=0" % (userdir, userdir)])
        cluster.wait_state(j1, "RUNNING")
        cluster.wait_state(j2, "RUNNING")
        time.sleep(1)
        # This cluster's processes only: another suite may run beside.
        ps = "\n".join(cluster.cmdline(p) for p in cluster.own_pids())
        cluster.run(["scancel", str(j1), str(j2)])
        cluster.wait_done(j1)
        cluster.wait_done(j2)
    sups = [l for l in ps.splitlines() if "resilience-supervisor" in l and
            "--job" in l]
    assert len(sups) == 1 and "--job %d " % j2 in sups[0], sups


def test_three_node_job_one_generation_three_parts(cluster, plugstack, userdir):
    ck = os.path.join(userdir, "ckpt")
    # Node-local scratch differs per node: the node name is in its path.
    # A short step first: on each node it is the attempt's first, asks
    # slurmctld and restores; the long step then runs on the facts the
    # first kept (/run/slurm-resilience) and must find the same attempt
    # and the restored scratch.
    script = r"""#!/bin/bash
srun -N3 -n3 true
srun -N3 -n3 bash -c '
trap "echo node=$SLURMD_NODENAME attempt=\$RESILIENCE_ATTEMPT > $RESILIENCE_SCRATCH/who; touch $RESILIENCE_CKPT_READY" USR1
mkdir -p $RESILIENCE_SCRATCH
echo "$SLURMD_NODENAME attempt=$RESILIENCE_ATTEMPT restored=${RESILIENCE_RESTORED_FROM:-none} has=$(cat $RESILIENCE_SCRATCH/who 2>/dev/null)"
for i in $(seq 1 120); do sleep 0.5; done'
"""
    with plugstack():
        j = cluster.sbatch(script, [
            "-N3", "--open-mode=append",
            "--resilience=ckpt=%s,scratch=%s/mn-%%j-%%n,lead=0,grace=20" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        cluster.wait_for(lambda: cluster.output(j).count(" attempt=1 restored") == 3, 30,
                         "three tasks started")
        time.sleep(1)
        # Without B: the signal reaches every step's tasks on every node.
        r = cluster.run(["scancel", "--signal=USR1", str(j)])
        assert r.returncode == 0
        _wait_gen(cluster, ck, 1, timeout=30)
        parts = sorted(d for d in os.listdir(os.path.join(ck, "latest"))
                       if os.path.isdir(os.path.join(ck, "latest", d)))
        assert parts == ["node-0", "node-1", "node-2"], parts
        for k in range(3):
            with open(os.path.join(ck, "latest", "node-%d" % k, "who")) as f:
                assert f.read() == "node=n%d attempt=1\n" % (k + 1)
        assert len(_gens(ck)) == 1
        g = _manifest(ck)["generations"][-1]
        assert g["nparts"] == 3
        _requeue_now(cluster, j)
        cluster.wait_for(lambda: cluster.output(j).count(" attempt=2 restored") == 3, 60,
                         "three tasks of attempt 2")
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    out = cluster.output(j)
    for k in range(3):
        assert ("n%d attempt=2 restored=%s/gen-000001 has=node=n%d attempt=1"
                % (k + 1, ck, k + 1)) in out, out
    assert not [f for f in os.listdir(ck) if f.startswith(".restored-")]
