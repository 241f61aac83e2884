"""Issue 12: job shapes. A job submitted from inside a resilient job; a
multi-node job whose task on one node ends early."""
import json
import os
import time


def _gens(path):
    try:
        return sorted(d for d in os.listdir(path) if d.startswith("gen-"))
    except FileNotFoundError:
        return []


def _supervised_jobs(cluster):
    """Job ids that have a resilience-supervisor running right now."""
    jobs = set()
    for p in cluster.own_pids():
        a = cluster.cmdline(p).split()
        if a and a[0].endswith("resilience-supervisor") and "--job" in a:
            jobs.add(int(a[a.index("--job") + 1]))
    return jobs


# The parent submits a child with sbatch from its batch script, and runs
# an srun step, which must stay supervised.
NESTED = r"""#!/bin/bash
echo "parent-spank=$(env | grep -c SLURM_SPANK_OPTION) $(env | grep SLURM_SPANK_OPTION | cut -d= -f1)"
child=$(sbatch --parsable -o %(work)s/slurm-%%j.out --wrap 'echo child-spank=$(env | grep -c SLURM_SPANK_OPTION); sleep 30')
echo "child=$child"
own=$(sbatch --parsable -o %(work)s/slurm-%%j.out --resilience=ckpt=%(dir)s/c-%%j,scratch=%(dir)s/s-%%j,lead=0 --wrap 'sleep 30')
echo "own=$own"
srun -N1 -n1 bash -c 'echo "step-parent=$(tr "\0" " " < /proc/$PPID/cmdline)"; echo step-spank=$(env | grep -c SLURM_SPANK_OPTION)'
sleep 30
"""


def test_nested_sbatch_is_not_resilient(cluster, plugstack, userdir):
    """Slurm gives the job's tasks SLURM_SPANK__SLURM_SPANK_OPTION_
    resilience_resilience; sbatch inside the job must not take it."""
    with plugstack():
        j = cluster.sbatch(NESTED % {"work": cluster.work, "dir": userdir}, [
            "--resilience=ckpt=%s/c-%%j,scratch=%s/s-%%j,lead=0" % (userdir, userdir)])
        cluster.wait_for(lambda: "step-spank=" in cluster.output(j), 60,
                         "the parent's srun step")
        out = cluster.output(j)
        child = int(out.split("child=")[1].split()[0])
        own = int(out.split("own=")[1].split()[0])
        cluster.wait_state(child, "RUNNING")
        cluster.wait_state(own, "RUNNING")
        cluster.wait_for(lambda: "child-spank=" in cluster.output(child), 30,
                         "the child's output")
        time.sleep(1)
        sup = _supervised_jobs(cluster)
        cluster.run(["scancel", str(j), str(child), str(own)])
        for k in (j, child, own):
            cluster.wait_done(k)
    print(out, cluster.output(child), sup)
    # The parent is supervised, its srun step too (the step's task runs
    # under the supervisor), the child is not; a child that asks itself is.
    assert j in sup and child not in sup and own in sup, (j, child, own, sup)
    assert "resilience-supervisor" in out.split("step-parent=")[1].split("\n")[0], out
    assert "child-spank=0" in cluster.output(child), cluster.output(child)
    assert not os.path.exists(os.path.join(userdir, "c-%d" % child))


def _ckpt_cli(cluster, *args):
    """slurm-resilience ckpt ... as the test user (the folder is theirs)."""
    cli = os.path.join(os.environ.get("RS_BUILD", "build"), "slurm-resilience")
    return cluster.as_user([cli, "ckpt"] + list(args))


# Node 2's task (SLURM_NODEID=1) writes its state and exits early; the
# other two keep running and checkpoint on USR1.  Attempt 2 prints what
# each node restored and ends (every task exits by itself).
EARLY = r"""#!/bin/bash
srun -N3 -n3 bash -c '
mkdir -p $RESILIENCE_SCRATCH
echo "$SLURMD_NODENAME attempt=$RESILIENCE_ATTEMPT restored=${RESILIENCE_RESTORED_FROM:-none} has=$(cat $RESILIENCE_SCRATCH/who 2>/dev/null)"
if [ $SLURM_NODEID = 1 ]; then
  echo "final node=$SLURMD_NODENAME attempt=$RESILIENCE_ATTEMPT" > $RESILIENCE_SCRATCH/who
  echo "$SLURMD_NODENAME ended"; exit 0
fi
[ "$RESILIENCE_ATTEMPT" = 2 ] && exit 0
n=0
trap "n=\$((n+1)); echo \"node=$SLURMD_NODENAME attempt=\$RESILIENCE_ATTEMPT n=\$n\" > $RESILIENCE_SCRATCH/who; touch $RESILIENCE_CKPT_READY" USR1
for i in $(seq 1 240); do sleep 0.5; done'
"""


def _parts(path):
    return sorted(d for d in os.listdir(path)
                  if d.startswith("node-") and os.path.isdir(os.path.join(path, d)))


def _who(ck, k):
    with open(os.path.join(ck, "latest", "node-%d" % k, "who")) as f:
        return f.read()


def test_task_ending_early_keeps_generations_publishing(cluster, plugstack, userdir):
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(EARLY, [
            "-N3", "--open-mode=append",
            "--resilience=ckpt=%s,scratch=%s/early-%%j-%%n,lead=0,grace=20" % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        cluster.wait_for(lambda: cluster.output(j).count(" attempt=1 restored") == 3
                         and "n2 ended" in cluster.output(j), 30, "three tasks, n2 ended")
        # The ended node's final scratch is in place before the warnings.
        cluster.wait_for(lambda: os.path.isdir(os.path.join(ck, ".staging-j%d-a1-end" % j, "node-1")),
                         30, "n2's final part")
        seen = {0: [], 2: []}
        for n in (1, 2):
            r = cluster.run(["scancel", "--signal=USR1", str(j)])
            assert r.returncode == 0
            cluster.wait_for(lambda: len(_gens(ck)) >= n and
                             os.path.islink(os.path.join(ck, "latest")) and
                             os.readlink(os.path.join(ck, "latest")) == "gen-%06d" % n,
                             30, "generation %d published (latest moves)" % n)
            assert _parts(os.path.join(ck, "latest")) == ["node-0", "node-1", "node-2"]
            # The running nodes' state is this warning's (a task may see
            # USR1 twice: from scancel and from srun): n grows.
            for k, node in ((0, "n1"), (2, "n3")):
                who = _who(ck, k)
                assert who.startswith("node=%s attempt=1 n=" % node), who
                seen[k].append(int(who.split("n=")[1]))
                assert len(seen[k]) == 1 or seen[k][-1] > seen[k][-2], seen
            assert _who(ck, 1) == "final node=n2 attempt=1\n"
            time.sleep(1)
        out = cluster.output(j)
        assert "part 1's task has ended; its final scratch stands in" in out, out
        # verify reports what staging holds (here: n2's final part).
        v = _ckpt_cli(cluster, "verify", ck)
        assert v.returncode == 0, v.stderr
        assert "staging .staging-j%d-a1-end" % j in v.stderr, v.stderr
        # Requeue: every node restores, node 2 its final scratch.
        r = cluster.run(["scontrol", "requeue", str(j)])
        assert r.returncode == 0, r.stderr
        assert cluster.wait_done(j, 90)["JobState"] == "COMPLETED"
    out = cluster.output(j)
    g2 = "%s/gen-000002" % ck
    assert "n1 attempt=2 restored=%s has=node=n1 attempt=1 n=%d\n" % (g2, seen[0][-1]) in out, out
    assert "n2 attempt=2 restored=%s has=final node=n2 attempt=1\n" % g2 in out, out
    assert "n3 attempt=2 restored=%s has=node=n3 attempt=1 n=%d\n" % (g2, seen[2][-1]) in out, out
    # Every task of attempt 2 ended: the last one removed the attempt's
    # staging; attempt 1's went with attempt 2's first save.
    assert not [d for d in os.listdir(ck) if d.startswith(".staging-")], os.listdir(ck)
    v = _ckpt_cli(cluster, "verify", ck)
    assert v.returncode == 0 and "staging" not in v.stderr, v.stderr
    assert os.readlink(os.path.join(ck, "latest")) == "gen-000002"


# The user guide's one-node job: the application runs under srun and
# answers the warning itself; the batch script has no trap.
ONE_NODE = r"""#!/bin/bash
srun -n1 bash -c '
mkdir -p $RESILIENCE_SCRATCH
n=0
trap "n=\$((n+1)); echo state-\$n > $RESILIENCE_SCRATCH/state; touch $RESILIENCE_CKPT_READY" USR1
echo "app up"
while [ ! -e %(go)s ]; do sleep 0.2; done'
"""


def test_one_node_srun_step_warning_checkpoints(cluster, plugstack, userdir):
    """#12: a warning that reaches only the srun step's task (--signal
    without B:, or scancel --signal to the step) produces a generation
    with the application's state; a warning to the batch step and the
    srun step at once produces one, not two."""
    ck = os.path.join(userdir, "ckpt")
    go = os.path.join(userdir, "go")
    with plugstack():
        j = cluster.sbatch(ONE_NODE % {"go": go}, [
            "-N1", "--resilience=ckpt=%s,scratch=%s/o-%%j,lead=0,grace=120" % (ck, userdir)])
        cluster.wait_for(lambda: "app up" in cluster.output(j), 60, "the application")
        assert cluster.run(["scancel", "--signal=USR1", "%d.0" % j]).returncode == 0
        cluster.wait_for(lambda: len(_gens(ck)) == 1, 20,
                         "a generation from the srun step's answer")
        with open(os.path.join(ck, "latest", "node-0", "state")) as f:
            assert f.read() == "state-1\n"
        # The batch step (B:) and the srun step at once.
        assert cluster.run(["scancel", "--batch", "--signal=USR1", str(j)]).returncode == 0
        assert cluster.run(["scancel", "--signal=USR1", "%d.0" % j]).returncode == 0
        cluster.wait_for(lambda: len(_gens(ck)) == 2, 20, "the second generation")
        time.sleep(3)            # a double save would show by now
        gens = _gens(ck)
        cluster.as_user(["touch", go], check=True)
        assert cluster.wait_done(j, 60)["JobState"] == "COMPLETED"
    assert gens == ["gen-000001", "gen-000002"], gens
    with open(os.path.join(ck, "gen-000002", "node-0", "state")) as f:
        assert f.read().startswith("state-"), "no state in gen 2"


# docs/spec.md, "The tutorial job, rewritten": run.py under srun handles
# USR1 itself; --signal without B:, lead=0; the model is a step counter.
RUN_PY = r"""import os, signal, sys, time
state = os.path.join(os.environ["RESILIENCE_SCRATCH"], "model.state")
save_now = False
def on_usr1(signum, frame):
    global save_now
    save_now = True
signal.signal(signal.SIGUSR1, on_usr1)
step = int(open(state).read()) if os.path.exists(state) else 0
print("attempt=%s resumed-from=%d" % (os.environ["RESILIENCE_ATTEMPT"], step), flush=True)
if step:
    print("finished", flush=True)
    sys.exit(0)
while True:
    step += 1
    time.sleep(0.2)
    if save_now:
        with open(state + ".tmp", "w") as f:
            f.write(str(step))
        os.rename(state + ".tmp", state)
        open(os.environ["RESILIENCE_CKPT_READY"], "w").close()
        print("saved step=%d" % step, flush=True)
        save_now = False
"""


def test_user_guide_tutorial_job_continues_at_its_time_limit(cluster, plugstack, userdir):
    """#12 must show 1: the user guide's tutorial job (srun, --signal
    without B:, lead=0) checkpoints on Slurm's warning, continues at its
    time limit without a retry, and resumes from its state."""
    ck = os.path.join(userdir, "ckpt")
    run_py = os.path.join(userdir, "run.py")
    with open(run_py, "w") as f:
        f.write(RUN_PY)
    os.chmod(run_py, 0o644)
    script = ("#!/bin/bash\nsrun python3 %s --state \"$RESILIENCE_SCRATCH\"\n" % run_py)
    with plugstack():
        j = cluster.sbatch(script, [
            "--time=1", "--signal=USR1@45", "--open-mode=append",
            "--resilience=ckpt=%s,scratch=%s/climate_%%j,lead=0,retries=3" % (ck, userdir)])
        info = cluster.wait_state(j, "COMPLETED", 200)
    out = cluster.output(j)
    assert info["Restarts"] == "1", info
    saved = [l for l in out.splitlines() if l.startswith("saved step=")]
    assert len(saved) == 1, out
    step = int(saved[0].split("=")[1])
    assert "attempt=2 resumed-from=%d" % step in out and "finished" in out, out
    att = json.load(open(os.path.join(ck, "manifest.json")))["attempts"]
    assert [(a["attempt"], a["outcome"], a["action"], a["retry"]) for a in att] == [
        (1, "timeout", "continued", False), (2, "completed", "completed", False)], att
    assert info["AdminComment"] == "" or "[retries_used=0]" in info["AdminComment"], info


# Both tasks answer the warning, but node 2's scratch holds a file its
# user cannot read: its part fails (every time), so the generation stays
# in staging; then both tasks end and the script ends the attempt.
UNFINISHED = r"""#!/bin/bash
srun -N2 -n2 bash -c '
mkdir -p $RESILIENCE_SCRATCH
trap "echo a > $RESILIENCE_SCRATCH/f; touch $RESILIENCE_CKPT_READY" USR1
if [ $SLURM_NODEID = 1 ]; then echo x > $RESILIENCE_SCRATCH/locked; chmod 000 $RESILIENCE_SCRATCH/locked; fi
echo "$SLURMD_NODENAME up"
while [ ! -e %(go)s ]; do sleep 0.2; done'
echo "srun done"
"""


def test_staging_of_an_ended_attempt_is_removed_at_its_end(cluster, plugstack, userdir):
    """A generation some node never finished must not outlive its
    attempt: the batch step's end removes the attempt's staging."""
    ck = os.path.join(userdir, "ckpt")
    go = os.path.join(userdir, "go")
    with plugstack():
        j = cluster.sbatch(UNFINISHED % {"go": go}, [
            "-N2", "--resilience=ckpt=%s,scratch=%s/u-%%j-%%n,lead=0,grace=120" % (ck, userdir)])
        cluster.wait_for(lambda: cluster.output(j).count(" up") == 2, 60, "both tasks up")
        # The warning to the srun step only (the batch script has no trap).
        assert cluster.run(["scancel", "--signal=USR1", "%d.0" % j]).returncode == 0
        stg = lambda: [d for d in (os.listdir(ck) if os.path.isdir(ck) else ())
                       if d.startswith(".staging-j%d-a1-" % j)]
        cluster.wait_for(lambda: any(os.path.isdir(os.path.join(ck, d, "node-0"))
                                     for d in stg()), 30, "node 1's part in staging")
        assert not _gens(ck)            # the generation never completes
        cluster.as_user(["touch", go], check=True)
        assert cluster.wait_done(j, 60)["JobState"] == "COMPLETED"
        # The attempt's end is recorded (ledger) in the same child that
        # removes its staging.
        cluster.wait_for(lambda: '"outcome":"completed"' in
                         open(os.path.join(ck, "manifest.json")).read().replace(" ", ""),
                         30, "the attempt's end in the ledger")
    assert stg() == [], os.listdir(ck)
    v = _ckpt_cli(cluster, "verify", ck)
    assert "staging" not in v.stderr, v.stderr


# A resilient job in preempt-low (GraceTime=20, PreemptMode=REQUEUE): the
# application saves its step counter when told (USR1) and resumes from it.
PREEMPTED = r"""#!/bin/bash
trap 'echo "usr1 attempt=$RESILIENCE_ATTEMPT"; echo "step=$STEP" > "$RESILIENCE_SCRATCH/model.state"; touch "$RESILIENCE_CKPT_READY"' USR1
trap 'echo "term attempt=$RESILIENCE_ATTEMPT"' TERM
echo "attempt=$RESILIENCE_ATTEMPT restored=${RESILIENCE_RESTORED_FROM:-none} retries_left=$RESILIENCE_RETRIES_LEFT"
STEP=0
[ -f "$RESILIENCE_SCRATCH/model.state" ] && . "$RESILIENCE_SCRATCH/model.state" && echo "resumed-from=$step" && STEP=$step
[ "$RESILIENCE_ATTEMPT" -ge 2 ] && exit 0
for i in $(seq 1 400); do STEP=$((STEP+1)); sleep 0.25; done
"""


def _completed_after_preemption(cluster, j):
    """Wait for the preempted job's end: COMPLETED after two runs, or
    three on Slurm 24.05+, whose GRACE_PREEMPT bit requeues a job that
    outlived its GraceTime once more after its second run exits 0
    (test_slurm_requeues_a_job_that_outlived_its_gracetime_once_more,
    docs/admin.md).  Returns the job's record."""
    from cluster import slurm_version
    info = cluster.wait_done(j, 150)
    runs = 3 if slurm_version(cluster.env) >= (24, 5) else 2
    assert (info["JobState"], info["Restarts"]) == ("COMPLETED", str(runs - 1)), info
    return info


def _preempt(cluster, j):
    """Submit the preemptor (preempt-high, same node); return its id and
    the time it was submitted."""
    t0 = time.time()
    hi = cluster.sbatch("#!/bin/bash\nsleep 3\n",
                        ["-p", "preempt-high", "--exclusive", "-J", "preemptor"])
    return hi, t0


# Slurm itself, no plugin: a batch job in preempt-low that survives its
# GraceTime (it traps TERM and goes on, as the two tests below do) is
# requeued by the preemption; its second run exits 0.
OUTLIVES_GRACE = r"""#!/bin/bash
trap 'echo "term restart=${SLURM_RESTART_COUNT:-0}"' TERM
echo "run restart=${SLURM_RESTART_COUNT:-0}"
[ "${SLURM_RESTART_COUNT:-0}" != 0 ] && exit 0
for i in $(seq 1 400); do sleep 0.25; done
"""


def test_slurm_requeues_a_job_that_outlived_its_gracetime_once_more(cluster, plugstack):
    """Pins a Slurm bug the two preemption tests below run into on 24.05+
    (none of it is the plugin's).  Since 24.05 (commit a689104d, bug
    16263) preemption with GraceTime sets GRACE_PREEMPT on the job, and
    only _job_complete's requeue branch clears it: that is, only when the
    batch script ends within the GraceTime.  A job that outlives it is
    requeued at the grace's end by the preemption itself
    (job_requeue_internal, batch_requeue_fini), which leaves the bit set;
    the next run's batch completion then counts as a preemption
    (proc_req.c, _slurm_rpc_complete_batch_script): requeued "per
    user/system request" once more, and the bit is cleared only then.  So
    the job runs a third time.  With --no-requeue it would end PREEMPTED
    instead of COMPLETED.  22.05 has no such bit: two runs.  When this
    fails on a newer release, Slurm has fixed it."""
    from cluster import slurm_version
    with plugstack(enabled=False):
        j = cluster.sbatch(OUTLIVES_GRACE, ["-p", "preempt-low", "--exclusive",
                                            "--requeue", "--open-mode=append"])
        cluster.wait_for(lambda: "run restart=0" in cluster.output(j), 30, "run 1")
        hi, _ = _preempt(cluster, j)
        cluster.wait_done(hi, 120)
        info = cluster.wait_done(j, 120)
    runs = cluster.output(j).count("run restart=")
    assert info["JobState"] == "COMPLETED", info
    if slurm_version(cluster.env) >= (24, 5):
        assert (runs, info["Restarts"]) == (3, "2"), cluster.output(j)
    else:
        assert (runs, info["Restarts"]) == (2, "1"), cluster.output(j)


def test_preempted_with_user_signal_checkpoints_and_continues(cluster, plugstack, userdir):
    ck = os.path.join(userdir, "ckpt")
    with plugstack():
        j = cluster.sbatch(PREEMPTED, [
            "-p", "preempt-low", "--exclusive", "--requeue", "--open-mode=append",
            "--signal=B:USR1@5",
            "--resilience=ckpt=%s,scratch=%s/p-%%j,lead=0,grace=10,retries=2" % (ck, userdir)])
        cluster.wait_for(lambda: "attempt=1" in cluster.output(j), 30, "attempt 1")
        time.sleep(2)
        hi, t0 = _preempt(cluster, j)
        cluster.wait_for(lambda: os.path.islink(os.path.join(ck, "latest")), 25,
                         "a checkpoint in the grace time")
        saved_after = time.time() - t0
        cluster.wait_for(lambda: "attempt=2" in cluster.output(j), 120, "attempt 2")
        _completed_after_preemption(cluster, j)
        cluster.wait_done(hi)
    out = cluster.output(j)
    with open(os.path.join(ck, "latest", "node-0", "model.state")) as f:
        step = f.read().strip().split("=")[1]
    assert "usr1 attempt=1" in out, out
    assert "attempt=2 restored=%s/gen-000001 retries_left=2" % ck in out, out
    assert "resumed-from=%s" % step in out, out
    m = json.load(open(os.path.join(ck, "manifest.json")))
    g = m["generations"][-1]
    assert (g["gen"], g["attempt"], g["reason"]) == (1, 1, "signal"), g
    print("checkpoint %.1f s after the preemptor was submitted" % saved_after)


def test_preempted_with_gracetime_only_reacts_within_seconds(cluster, plugstack, userdir):
    """No --signal: Slurm sends SIGCONT+SIGTERM and moves the end time to
    now + GraceTime (20 s), then requeues the job (REQUEUE mode).  Before,
    that TERM disarmed the lead for good: no checkpoint at all.  Now the
    TERM pokes the end-time poller, the shorter end re-arms the lead, and
    the checkpoint comes within seconds.  (The test cluster's poller asks
    every 2 s anyway, so this does not measure the poke against a 30 s
    period.)"""
    ck = os.path.join(userdir, "ckpt")
    if True:
        with plugstack():
            j = cluster.sbatch(PREEMPTED, [
                "-p", "preempt-low", "--exclusive", "--requeue", "--open-mode=append",
                "--time=10",
                "--resilience=ckpt=%s,scratch=%s/g-%%j,lead=60,grace=10,retries=2" % (ck, userdir)])
            cluster.wait_for(lambda: "attempt=1" in cluster.output(j), 30, "attempt 1")
            time.sleep(2)
            hi, t0 = _preempt(cluster, j)
            try:
                cluster.wait_for(lambda: os.path.islink(os.path.join(ck, "latest")), 25,
                                 "a checkpoint in the grace time")
            except AssertionError:
                print(cluster.output(j))
                print(os.popen("ls -la /run/slurm-resilience/u%d" % cluster.user.pw_uid).read())
                raise
            reacted = time.time() - t0
            cluster.wait_for(lambda: "attempt=2" in cluster.output(j), 120, "attempt 2")
            _completed_after_preemption(cluster, j)
            cluster.wait_done(hi)
    out = cluster.output(j)
    print("GraceTime preemption: checkpoint %.1f s after the preemptor was submitted" % reacted)
    with open(os.path.join(ck, "latest", "node-0", "model.state")) as f:
        step = f.read().strip().split("=")[1]
    assert "term attempt=1" in out and "usr1 attempt=1" in out, out
    assert "attempt=2 restored=%s/gen-000001 retries_left=2" % ck in out, out
    assert "resumed-from=%s" % step in out, out
    g = json.load(open(os.path.join(ck, "manifest.json")))["generations"][-1]
    assert (g["gen"], g["attempt"], g["reason"]) == (1, 1, "lead"), g
    assert reacted < 8, "checkpoint %.1f s after preemption" % reacted
