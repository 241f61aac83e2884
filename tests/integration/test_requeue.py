"""Issue 5: the requeue policy on a real cluster (cred_expire=5 in the test
cluster, so Slurm's own delay after a requeue is 6 s)."""
import datetime
import json
import os
import re
import time

import pytest

HELD = ("job_requeued_in_held_state", "JobHeldAdmin", "JobHeldUser")


def _ledger(path):
    with open(os.path.join(path, "manifest.json")) as f:
        return json.load(f)["attempts"]


def _wait_final(cluster, j, timeout=120):
    """Until the job is held, or done and not coming back."""
    def done():
        info = cluster.job(j)
        return (info.get("Reason") in HELD or
                info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"))
    cluster.wait_for(done, timeout, "job %d to end or be held (%s)" %
                     (j, cluster.job(j).get("JobState")))
    return cluster.job(j)


def test_retry_three_times_then_hold(cluster, plugstack, userdir):
    """Must show 1: "retry 3x then page operator"."""
    state = os.path.join(cluster.dir, "rs-state")
    with plugstack("state_dir=" + state):
        j = cluster.sbatch("#!/bin/bash\necho attempt=$RESILIENCE_ATTEMPT "
                           "left=$RESILIENCE_RETRIES_LEFT\nexit 3\n",
                           ["--open-mode=append", "--resilience=retries=3"])
        info = _wait_final(cluster, j, 180)
        status = cluster.run([os.path.join(cluster.plugin.rsplit("/", 1)[0],
                                           "slurm-resilience"), "status", str(j)])
    assert info["Reason"] == "job_requeued_in_held_state", info
    assert info["Restarts"] == "4"
    assert info["AdminComment"] == ("resilience: attempt 4/4 failed exit=3, "
                                    "retries exhausted (3 used), held for an operator "
                                    "[retries_used=3]")
    out = cluster.output(j)
    for a, left in ((1, 3), (2, 2), (3, 1), (4, 0)):
        assert "attempt=%d left=%d" % (a, left) in out
    att = _ledger(os.path.join(state, "%s.%d" % (cluster.name, j)))
    assert [(a["attempt"], a["outcome"], a["exit_code"], a["action"]) for a in att] == [
        (1, "failed", 3, "requeued"), (2, "failed", 3, "requeued"),
        (3, "failed", 3, "requeued"), (4, "failed", 3, "held")]
    assert att[-1]["exhausted"] is True
    assert status.returncode == 0, status.stderr
    assert "held" in status.stdout and "retries exhausted" in status.stdout
    assert len(re.findall(r"^\d+ +\d+ .* failed +exit=3 ", status.stdout, re.M)) == 4


def test_requeue_on_exit_code(cluster, plugstack, userdir):
    state = os.path.join(cluster.dir, "rs-state")
    with plugstack("state_dir=" + state):
        j75 = cluster.sbatch("#!/bin/bash\n[ $RESILIENCE_ATTEMPT = 1 ] && exit 75\nexit 0\n",
                             ["--resilience=retries=2,requeue_on=exit:75"])
        j1 = cluster.sbatch("#!/bin/bash\nexit 1\n",
                            ["--resilience=retries=2,requeue_on=exit:75"])
        i1 = _wait_final(cluster, j1)
        i75 = cluster.wait_state(j75, "COMPLETED", 90)
    assert i75["Restarts"] == "1"
    assert i1["JobState"] == "FAILED" and i1["Restarts"] == "0"
    assert "exit code does not match requeue_on" in i1["AdminComment"]


def test_time_limit_continuation_uses_no_retry(cluster, plugstack, userdir):
    """Must show 2: a checkpoint taken on the warning, then the time limit:
    requeued as a continuation (retries=0), restored, completes."""
    ck = os.path.join(userdir, "ckpt")
    script = r"""#!/bin/bash
trap 'echo $N > $RESILIENCE_SCRATCH/n; touch $RESILIENCE_CKPT_READY' USR1
N=0; [ -f $RESILIENCE_SCRATCH/n ] && N=$(cat $RESILIENCE_SCRATCH/n)
echo "attempt=$RESILIENCE_ATTEMPT start=$N"
if [ "$N" -gt 0 ]; then echo finished; exit 0; fi
while true; do N=$((N+1)); sleep 0.5; done
"""
    with plugstack():
        j = cluster.sbatch(script, ["--time=1", "--signal=B:USR1@45", "--open-mode=append",
                                    "--resilience=ckpt=%s,scratch=%s/s-%%j,lead=0"
                                    % (ck, userdir)])
        info = cluster.wait_state(j, "COMPLETED", 200)
    assert info["Restarts"] == "1"
    out = cluster.output(j)
    assert "attempt=2 start=" in out and "finished" in out
    att = _ledger(ck)
    assert [(a["attempt"], a["outcome"], a["action"], a["retry"]) for a in att] == [
        (1, "timeout", "continued", False), (2, "completed", "completed", False)]
    assert att[0]["checkpoints"] == 1


def test_cancelled_completed_and_no_requeue_are_never_requeued(cluster, plugstack, userdir):
    """Must show 3."""
    state = os.path.join(cluster.dir, "rs-state")
    with plugstack("state_dir=" + state):
        jc = cluster.sbatch("#!/bin/bash\nsleep 60\n", ["--resilience=retries=3"])
        j0 = cluster.sbatch("#!/bin/bash\nexit 0\n", ["--resilience=retries=3"])
        r = cluster.sbatch("#!/bin/bash\nexit 4\n", ["--no-requeue",
                                                     "--resilience=retries=3"], check=False)
        assert r.returncode == 0, r.stderr
        assert "--no-requeue, so retries=3 will not be used" in r.stderr
        jn = int(r.stdout.strip())
        cluster.wait_state(jc, "RUNNING")
        cluster.run(["scancel", str(jc)])
        ic = cluster.wait_done(jc)
        i0 = cluster.wait_done(j0)
        inr = cluster.wait_done(jn)
        time.sleep(8)  # longer than Slurm's requeue delay
        ic, i0, inr = cluster.job(jc), cluster.job(j0), cluster.job(jn)
    assert (ic["JobState"], ic["Restarts"]) == ("CANCELLED", "0")
    assert (i0["JobState"], i0["Restarts"]) == ("COMPLETED", "0")
    assert (inr["JobState"], inr["Restarts"]) == ("FAILED", "0")
    assert "--no-requeue" in inr["AdminComment"]
    assert [a["action"] for a in _ledger(os.path.join(state, "%s.%d" % (cluster.name, jc)))] == ["ended"]


def test_backoff_grows(cluster, plugstack, userdir):
    """backoff=10sx2: the next attempts become eligible 10 s, then 20 s after
    the failures (both above Slurm's own 6 s delay in this cluster).  Slurm
    may start a job a little after it becomes eligible: the gaps are at
    least the backoff."""
    state = os.path.join(cluster.dir, "rs-state")
    eligible = {}
    with plugstack("state_dir=" + state):
        j = cluster.sbatch("#!/bin/bash\nexit 5\n",
                           ["--resilience=retries=2,backoff=10sx2,exhausted=fail"])
        deadline = time.time() + 150
        while time.time() < deadline:
            info = cluster.job(j)
            if info.get("JobState") == "PENDING" and info.get("Reason") == "BeginTime":
                eligible[int(info["Restarts"])] = info["EligibleTime"]
            if info.get("JobState") == "FAILED":
                break
            time.sleep(0.3)
    att = _ledger(os.path.join(state, "%s.%d" % (cluster.name, j)))
    assert [a["delay"] for a in att] == [10, 20, 0]

    def ts(s):
        return time.mktime(datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").timetuple())
    assert abs(ts(eligible[1]) - att[0]["end"] - 10) <= 1, (eligible, att)
    assert abs(ts(eligible[2]) - att[1]["end"] - 20) <= 1, (eligible, att)
    assert att[1]["start"] - att[0]["end"] >= 10
    assert att[2]["start"] - att[1]["end"] >= 20
    assert info["JobState"] == "FAILED" and info["Restarts"] == "2"


def test_job_array_each_task_own_budget(cluster, plugstack, userdir):
    state = os.path.join(cluster.dir, "rs-state")
    script = ("#!/bin/bash\nif [ $SLURM_ARRAY_TASK_ID = 2 ] && "
              "[ $RESILIENCE_ATTEMPT = 1 ]; then exit 9; fi\nexit 0\n")
    with plugstack("state_dir=" + state):
        r = cluster.sbatch(script, ["--array=0-3", "--resilience=retries=1"], check=False)
        assert r.returncode == 0, r.stderr
        master = int(r.stdout.strip().split(";")[0])
        cluster.wait_for(lambda: not cluster.queue(), 120, "array to finish")
        out = cluster.run(["scontrol", "-o", "show", "job", str(master)]).stdout
    restarts = dict(re.findall(r"ArrayTaskId=(\d+) .*?Restarts=(\d+)", out))
    states = dict(re.findall(r"ArrayTaskId=(\d+) .*?JobState=(\w+)", out))
    assert restarts == {"0": "0", "1": "0", "2": "1", "3": "0"}, out
    assert set(states.values()) == {"COMPLETED"}
