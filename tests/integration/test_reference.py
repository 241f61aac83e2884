"""Issue 16: the tutorial's reference job, migrated the obvious way.

The reference template of the tutorial (../shared/seed, section 2) on 4
nodes: `#SBATCH --signal=B:USR1@120`, `#SBATCH --requeue`, a `trap
checkpoint USR1 TERM` that rsyncs the scratch folder, and the application
started with srun from the batch shell.  A user who adopts the plugin
deletes checkpoint(), the trap and the rsync, adds one `#SBATCH
--resilience=` line and keeps the rest (verbatim below, without the GPU
flags and the module lines, which this cluster has no use for).

The batch shell then has no trap, and `B:USR1` goes to it: without the
plugin's rule the warning killed the shell, srun and every task, two hours
before the limit.  The rule (docs/spec.md, "Which signal reaches which
process"): a warning for a batch script that does not handle it goes to
the processes under it that do - srun, which passes it to its tasks on
every node - and never to the script.
"""
import json
import os
import re
import shutil
import time

from test_checkpoint import _gens, _manifest, _requeue_now, _wait_gen

MIGRATED = """#!/bin/bash
#SBATCH --job-name=climate-run
#SBATCH --account=climate_ops
#SBATCH --partition=gh-accelerated
#SBATCH --nodes=4
#SBATCH --time=06:00:00
#SBATCH --qos=enterprise
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --resilience=ckpt=@CKPT@/%j,scratch=$SLURM_JOBTMP/climate_%j_%n

export SCRATCH_DIR=$SLURM_JOBTMP/climate_${SLURM_JOB_ID}
mkdir -p "$SCRATCH_DIR"

srun --cpu-bind=cores python run.py \\
  --config configs/frontier-2024.yaml \\
  --output "$SCRATCH_DIR"
"""

# The same job before migration keeps its own trap: it must still run.
WITH_TRAP = """#!/bin/bash
#SBATCH --job-name=climate-run
#SBATCH --nodes=4
#SBATCH --signal=B:USR1@120
#SBATCH --requeue
#SBATCH --resilience=ckpt=@CKPT@/%j,scratch=$SLURM_JOBTMP/climate_%j_%n

export SCRATCH_DIR=$SLURM_JOBTMP/climate_${SLURM_JOB_ID}
mkdir -p "$SCRATCH_DIR"

function checkpoint() {
  echo "trap ran in the batch shell" >> @LOG@/trap
}

trap checkpoint USR1 TERM

srun --cpu-bind=cores python run.py \\
  --config configs/frontier-2024.yaml \\
  --output "$SCRATCH_DIR"
"""

# The application: counts steps; on USR1 writes its state into its node's
# RESILIENCE_SCRATCH and says so (RESILIENCE_CKPT_READY); on start resumes
# from what it finds there.  It logs to a file per node and attempt.
RUN_PY = r"""
import os, signal, sys, time
node = os.environ["SLURMD_NODENAME"]
scratch = os.environ["RESILIENCE_SCRATCH"]
attempt = os.environ["RESILIENCE_ATTEMPT"]
log = open(os.path.join(os.environ["RUN_LOG"], "%s.a%s" % (node, attempt)), "a")
state = os.path.join(scratch, "state")
step = 0
if os.path.exists(state):
    with open(state) as f:
        saved_node, step = f.read().split()
    step = int(step)
    log.write("resumed from=%s step=%d restored=%s\n" % (
        saved_node, step, os.environ.get("RESILIENCE_RESTORED_FROM", "")))
log.write("start node=%s attempt=%s\n" % (node, attempt))
log.flush()
RUN_FOR = float(os.environ.get("RUN_FOR", "100000"))
def warned(sig, frame):
    with open(state + ".tmp", "w") as f:
        f.write("%s %d\n" % (node, step))
    os.rename(state + ".tmp", state)
    open(os.environ["RESILIENCE_CKPT_READY"], "w").close()
    log.write("saved step=%d\n" % step)
    log.flush()
signal.signal(signal.SIGUSR1, warned)
t0 = time.time()
while time.time() - t0 < RUN_FOR:
    step += 1
    time.sleep(0.1)
log.write("done\n")
"""

NODES = 4


def _setup(cluster, userdir):
    """run.py, a `python` on PATH (Debian names it python3), the site's
    per-job folder variable, the checkpoint folder and the logs."""
    for sub in ("bin", "logs", "jobtmp"):
        os.makedirs(os.path.join(userdir, sub))
    with open(os.path.join(userdir, "run.py"), "w") as f:
        f.write(RUN_PY)
    os.symlink("/usr/bin/python3", os.path.join(userdir, "bin", "python"))
    for root, dirs, files in os.walk(userdir):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), cluster.user.pw_uid,
                      cluster.user.pw_gid)
    return {
        "SLURM_JOBTMP": os.path.join(userdir, "jobtmp"),
        # The cluster's Slurm first (sbatch here, srun in the job): it
        # need not be /usr/bin's (make integration SLURM_PREFIX=...).
        "PATH": ":".join([os.path.join(userdir, "bin"), cluster.slurm_bin,
                          "/usr/bin", "/bin"]),
        "RUN_LOG": os.path.join(userdir, "logs"),
    }


def _submit(cluster, userdir, template, env, args=()):
    ck = os.path.join(userdir, "ckpt")
    script = template.replace("@CKPT@", ck).replace("@LOG@", env["RUN_LOG"])
    path = os.path.join(userdir, "climate.sh")
    with open(path, "w") as f:
        f.write(script)
    shutil.chown(path, cluster.user.pw_name)
    envs = ["%s=%s" % kv for kv in sorted(env.items())]
    r = cluster.as_user(["env"] + envs + [
        "sbatch", "--parsable", "-o", os.path.join(userdir, "slurm-%j.out")] +
        list(args) + [path], cwd=userdir)
    assert r.returncode == 0, r.stderr
    j = int(r.stdout.strip().split(";")[0])
    return j, os.path.join(ck, str(j))


def _log(env, node, attempt):
    try:
        with open(os.path.join(env["RUN_LOG"], "%s.a%d" % (node, attempt))) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _all_started(env, attempt):
    return all("start node=n%d" % k in _log(env, "n%d" % k, attempt)
               for k in range(1, NODES + 1))


def _saved_steps(env, attempt):
    steps = {}
    for k in range(1, NODES + 1):
        m = re.findall(r"saved step=(\d+)", _log(env, "n%d" % k, attempt))
        if m:
            steps["n%d" % k] = int(m[-1])
    return steps


def test_migrated_reference_job_survives_its_warning(cluster, plugstack, userdir):
    """Must show 1 and 2: `scancel -b --signal=USR1` (what B:USR1@120
    delivers) reaches the batch shell, which has no trap: one generation
    with all 4 nodes' state, the job keeps running; after a requeue each
    node resumes from its own part."""
    env = _setup(cluster, userdir)
    with plugstack():
        j, ck = _submit(cluster, userdir, MIGRATED, env)
        cluster.wait_state(j, "RUNNING", timeout=60)
        cluster.wait_for(lambda: _all_started(env, 1), 60, "4 tasks started")
        time.sleep(1)
        r = cluster.as_user(["scancel", "-b", "--signal=USR1", str(j)])
        assert r.returncode == 0, r.stderr
        _wait_gen(cluster, ck, 1, timeout=60)
        cluster.wait_for(lambda: len(_saved_steps(env, 1)) == NODES, 30,
                         "4 nodes saved")
        gen = _manifest(ck)["generations"][-1]
        assert gen["nparts"] == NODES, gen
        latest = os.path.join(ck, "latest")
        parts = sorted(d for d in os.listdir(latest)
                       if os.path.isdir(os.path.join(latest, d)))
        assert parts == ["node-%d" % k for k in range(NODES)], parts
        saved = _saved_steps(env, 1)
        for k in range(NODES):
            with open(os.path.join(ck, "latest", "node-%d" % k, "state")) as f:
                node, step = f.read().split()
            assert node == "n%d" % (k + 1)
            assert int(step) == saved[node]
        # The job is alive: the shell, srun and every task.
        time.sleep(3)
        assert cluster.state(j) == "RUNNING"
        assert all("done" not in _log(env, "n%d" % k, 1) for k in range(1, 5))
        out = open(os.path.join(userdir, "slurm-%d.out" % j)).read()
        assert "the batch script does not handle" in out, out
        assert len(_gens(ck)) == 1

        _requeue_now(cluster, j)
        cluster.wait_for(lambda: _all_started(env, 2), 90, "attempt 2 on 4 nodes")
        for k in range(1, NODES + 1):
            log = _log(env, "n%d" % k, 2)
            assert ("resumed from=n%d step=%d restored=%s/gen-000001"
                    % (k, saved["n%d" % k], ck)) in log, log
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)


def test_migrated_reference_job_continues_at_its_time_limit(cluster, plugstack, userdir):
    """Must show 2: `--time=3 --signal=B:USR1@90`: the warning comes
    before the limit, every node saves, and at the limit the job continues
    from that generation without using a retry; every node resumes from
    its own part."""
    env = _setup(cluster, userdir)
    with plugstack():
        j, ck = _submit(cluster, userdir, MIGRATED, env,
                        ["--time=3", "--signal=B:USR1@90"])
        cluster.wait_state(j, "RUNNING", timeout=60)
        cluster.wait_for(lambda: len(_saved_steps(env, 1)) == NODES, 200,
                         "the warning and 4 saves")
        saved = _saved_steps(env, 1)
        _wait_gen(cluster, ck, 1, timeout=60)
        # The time limit, then the next attempt.
        cluster.wait_for(lambda: _all_started(env, 2), 240, "attempt 2 on 4 nodes")
        info = cluster.job(j)
        assert info["Restarts"] == "1", info
        assert ("timeout, checkpointed before its time limit: continues, no retry used"
                in info.get("AdminComment", "")), info
        assert "[retries_used=0]" in info.get("AdminComment", ""), info
        with open(os.path.join(ck, "manifest.json")) as f:
            attempts = json.load(f)["attempts"]
        assert attempts[0]["outcome"] == "timeout" and \
            attempts[0]["action"] == "continued" and not attempts[0].get("retry"), attempts
        # The self-timed lead may have saved once more after the warning:
        # every node resumes from the last generation, its own part.
        saved = _saved_steps(env, 1)
        latest = os.readlink(os.path.join(ck, "latest")).rstrip("/")
        for k in range(1, NODES + 1):
            log = _log(env, "n%d" % k, 2)
            assert ("resumed from=n%d step=%d restored=%s/%s"
                    % (k, saved["n%d" % k], ck, os.path.basename(latest))) in log, log
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)


def test_reference_job_with_its_own_trap_still_runs_it(cluster, plugstack, userdir):
    """A user who kept `trap checkpoint USR1 TERM`: the warning goes to the
    batch shell as before, and the trap runs (bash runs it once the
    foreground srun has ended, as it always did); the tasks are not
    signalled by the plugin and end by themselves."""
    env = _setup(cluster, userdir)
    env["RUN_FOR"] = "20"
    with plugstack():
        j, ck = _submit(cluster, userdir, WITH_TRAP, env)
        cluster.wait_state(j, "RUNNING", timeout=60)
        cluster.wait_for(lambda: _all_started(env, 1), 60, "4 tasks started")
        r = cluster.as_user(["scancel", "-b", "--signal=USR1", str(j)])
        assert r.returncode == 0, r.stderr
        info = cluster.wait_done(j, timeout=90)
    assert info["JobState"] == "COMPLETED", info
    with open(os.path.join(env["RUN_LOG"], "trap")) as f:
        assert f.read() == "trap ran in the batch shell\n"
    assert _saved_steps(env, 1) == {}
    assert all("done" in _log(env, "n%d" % k, 1) for k in range(1, NODES + 1))
