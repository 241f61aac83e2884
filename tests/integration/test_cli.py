"""Issue 14: what a user and an operator see from `slurm-resilience` on a
real cluster: status of an array task (405_10), of a relative folder, a
user's status JOBID with the site's state_dir, and root's ckpt verify and
list on a user's checkpoint folder."""
import json
import os
import re
import shutil

import pytest


def _cli(cluster):
    return os.path.join(os.path.dirname(cluster.plugin), "slurm-resilience")


def _ledger_jobs(out):
    """(job, attempt, outcome, action) rows of status's attempt table."""
    return [(int(m.group(1)), int(m.group(2)), m.group(3), m.group(4))
            for m in re.finditer(r"^(\d+) +(\d+) +\S+ \S+ +\S+ +(\w+) +\S+ +\d+ +(\w+) ",
                                 out, re.M)]


def test_status_of_array_task_and_user_state_dir(cluster, plugstack):
    """`status 405_1` as the job's user: Slurm's view of that task and its
    history from state_dir (root's folder, read by the user); a job with no
    history gets the exact reason; a folder that is not root's is named,
    not blamed on the reader."""
    state = os.path.join(cluster.dir, "rs-state-cli")
    cli = _cli(cluster)
    with plugstack("state_dir=" + state):
        arr = cluster.sbatch("#!/bin/bash\n[ $RESILIENCE_ATTEMPT = 1 ] && "
                             "[ $SLURM_ARRAY_TASK_ID = 1 ] && exit 3\nexit 0\n",
                             ["--array=0-2", "--resilience=retries=2"])
        task_ids = {}

        def all_done():
            r = cluster.run(["squeue", "-h", "-r", "-j", str(arr), "-o", "%i %A"])
            if r.stdout.strip():
                return False
            return True
        cluster.wait_for(all_done, 120, "array %d to finish" % arr)
        for t in range(3):
            info = cluster.job("%d_%d" % (arr, t))
            assert info.get("JobState") == "COMPLETED", info
            task_ids[t] = int(info["JobId"])
        r = cluster.as_user([cli, "status", "%d_1" % arr])
        mine = cluster.as_user([cli, "status", str(task_ids[1])])
        none = cluster.as_user([cli, "status", "%d_7" % arr])
        lost = cluster.as_user([cli, "status", "999999"])
        # A folder under state_dir that is not root's: named, not shown.
        bad = os.path.join(state, "%s.%d" % (cluster.name, task_ids[2]))
        shutil.chown(bad, cluster.user.pw_name)
        forged = cluster.as_user([cli, "status", str(task_ids[2])])
        shutil.chown(bad, "root")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "neither a job id" not in r.stderr
    assert "job %d: COMPLETED, restarts 1" % task_ids[1] in r.stdout, r.stdout
    assert _ledger_jobs(r.stdout) == [(task_ids[1], 1, "failed", "requeued"),
                                      (task_ids[1], 2, "completed", "completed")], r.stdout
    assert "owned by" not in r.stdout + r.stderr
    assert r.stdout == mine.stdout
    assert none.returncode == 1
    assert "Slurm has no task 7 of job %d" % arr in none.stderr, none.stderr
    assert lost.returncode == 0
    assert ("no attempt history for job 999999: no folder *.999999 in state_dir %s"
            % state) in lost.stdout, lost.stdout
    assert forged.returncode == 0
    assert ("%s: owned by uid %d, mode 0755: the plugin makes these folders as root"
            % (bad, cluster.user.pw_uid)) in forged.stdout, forged.stdout
    assert _ledger_jobs(forged.stdout) == []


def test_status_of_relative_folder(cluster, plugstack, userdir):
    """`status ck/1` from the user's folder: the job's history in its
    checkpoint folder, found through a relative path."""
    cli = _cli(cluster)
    with plugstack():
        j = cluster.sbatch("#!/bin/bash\nexit 0\n",
                           ["--resilience=ckpt=%s/ck/%%j,retries=1" % userdir])
        cluster.wait_state(j, "COMPLETED", 60)
    r = cluster.as_user([cli, "status", "ck/%d" % j], cwd=userdir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "attempt history (%s/ck/%d/manifest.json)" % (userdir, j) in r.stdout
    assert _ledger_jobs(r.stdout) == [(j, 1, "completed", "completed")]
    r = cluster.as_user([cli, "status", "./ck/%d/" % j], cwd=userdir)
    assert r.returncode == 0 and _ledger_jobs(r.stdout) == [(j, 1, "completed", "completed")]
    r = cluster.as_user([cli, "status", "nothere"], cwd=userdir)
    assert r.returncode == 2
    assert "'nothere' is neither a job id (405, 405_10, 405+1) nor a folder" in r.stderr


MODEL = r"""#!/bin/bash
trap 'T=$((T+1)); echo $T > $RESILIENCE_SCRATCH/n; touch $RESILIENCE_CKPT_READY' USR1
T=0
while [ $T -lt 2 ]; do sleep 0.5; done
sleep 5
exit 0
"""


def test_root_verifies_and_lists_a_users_checkpoint_folder(cluster, plugstack, userdir):
    """Two periodic generations made by a real job in the user's folder:
    root's verify and list work on it, read-only, and mark the latest."""
    cli = _cli(cluster)
    ck = os.path.join(userdir, "ck")
    with plugstack():
        j = cluster.sbatch(MODEL, ["--resilience=ckpt=%s,scratch=%s/s-%%j,every=10s,"
                                   "grace=3,keep=5,lead=0" % (ck, userdir)])
        cluster.wait_state(j, "COMPLETED", 90)
    os.chmod(ck, 0o700)          # the user's own, private folder
    before = {n: os.stat(os.path.join(ck, n)).st_mtime_ns for n in os.listdir(ck)}
    v = cluster.run([cli, "ckpt", "verify", ck])
    ls = cluster.run([cli, "ckpt", "list", ck])
    after = {n: os.stat(os.path.join(ck, n)).st_mtime_ns for n in os.listdir(ck)}
    with open(os.path.join(ck, "manifest.json")) as f:
        gens = [g["gen"] for g in json.load(f)["generations"]]
    assert len(gens) >= 2, gens
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout == "%s: consistent, latest is gen-%06d\n" % (ck, max(gens))
    assert ls.returncode == 0, ls.stderr
    rows = [l for l in ls.stdout.splitlines() if l.startswith("gen-")]
    assert len(rows) == len(gens)
    assert [l.startswith("gen-%06d*" % max(gens)) for l in rows] == \
        [False] * (len(rows) - 1) + [True], ls.stdout
    assert before == after                       # read-only
    assert all(os.stat(os.path.join(ck, n)).st_uid == cluster.user.pw_uid
               for n in after if not n.startswith("."))
    # The user sees the same.
    u = cluster.as_user([cli, "ckpt", "list", "ck"], cwd=userdir)
    assert u.returncode == 0 and u.stdout == ls.stdout


def test_status_of_het_job_component(cluster, plugstack):
    """`status 405+1`: component 1 of a heterogeneous job is found by its
    offset (Slurm's JOBID+OFFSET), `405+0` is the leader itself."""
    state = os.path.join(cluster.dir, "rs-state-het")
    cli = _cli(cluster)
    with plugstack("state_dir=" + state):
        j = cluster.sbatch("#!/bin/bash\nexit 0\n",
                           ["--resilience=retries=1", "-n1", ":", "-n1"])
        cluster.wait_state(j, "COMPLETED", 60)
        comp = int(cluster.job("%d+1" % j)["JobId"])
        lead = cluster.as_user([cli, "status", "%d+0" % j])
        plain = cluster.as_user([cli, "status", str(j)])
        one = cluster.as_user([cli, "status", "%d+1" % j])
        nine = cluster.as_user([cli, "status", "%d+9" % j])
    assert comp != j
    assert lead.returncode == 0 and lead.stdout == plain.stdout, lead.stdout + lead.stderr
    assert "job %d: COMPLETED" % j in lead.stdout
    assert _ledger_jobs(lead.stdout) == [(j, 1, "completed", "completed")], lead.stdout
    assert one.returncode == 0, one.stderr
    assert one.stdout.startswith("job %d: COMPLETED" % comp), one.stdout
    assert nine.returncode == 1
    assert "Slurm has no component 9 of job %d" % j in nine.stderr, nine.stderr
