"""Issue 13: faults injected on the real cluster while resilient jobs run.

1. test_slurmd_restarted_while_running_and_while_saving - the node's
   slurmd is restarted (SIGTERM, started again, as `systemctl restart
   slurmd` does) while the job runs, then again in the middle of a save:
   the job goes on, the interrupted save completes and verifies, the job
   completes with no restart, the node is never drained.
2. test_sigkill_mid_save_keeps_previous_generation - the batch step's
   slurmstepd and everything of the job (supervisor, saver, script) are
   killed with SIGKILL in the middle of a save; the operator requeues the
   job: the previous generation is still `latest` and verifies, the next
   attempt restores it, Restarts counts one.
3. test_enospc_during_save - the checkpoint file system (a 4 MiB tmpfs of
   the test user) fills up during a save: the previous generation stays
   latest and verifies, the job's output says what failed, the job runs
   on and completes.
4. test_node_rebooted_between_attempts - the node "reboots" between two
   attempts: attempt 2's node crashes and comes back with this cluster's
   entries in RUNDIR gone; the next attempt starts, restores and counts
   both retries used (failure, node failure) right.
"""
import json
import os
import shutil
import signal
import subprocess
import time

RUNDIR = "/run/slurm-resilience"

# A model whose state is its step counter.  On USR1 it saves the counter
# and, if ctl/big holds a size in KiB, that much incompressible data (one
# process: split), then declares the scratch ready.  ctl/stop ends it
# well; ctl/fail makes attempt 1 fail (exit 3).
MODEL = r"""#!/bin/bash
C=%(ctl)s
trap 'echo $N > $RESILIENCE_SCRATCH/n
      if [ -f $C/big ]; then mkdir -p $RESILIENCE_SCRATCH/big
        head -c $(cat $C/big)K /dev/urandom | split -b 32K - $RESILIENCE_SCRATCH/big/f
      fi
      touch $RESILIENCE_CKPT_READY' USR1
N=0; [ -f $RESILIENCE_SCRATCH/n ] && N=$(cat $RESILIENCE_SCRATCH/n)
echo "attempt=$RESILIENCE_ATTEMPT left=$RESILIENCE_RETRIES_LEFT start=$N restored=${RESILIENCE_RESTORED_FROM:-none}"
while [ ! -f $C/stop ]; do
  [ -f $C/fail ] && [ "$RESILIENCE_ATTEMPT" = 1 ] && { echo failing; exit 3; }
  N=$((N+1)); sleep 0.5
done
echo finished
"""


def _cli(cluster, *args):
    """The CLI as the test user (the owner of the checkpoints)."""
    return cluster.as_user([os.path.join(os.path.dirname(cluster.plugin),
                                         "slurm-resilience")] + list(args))


def _setup(cluster, userdir, ck_parent=None):
    ctl = os.path.join(userdir, "ctl")
    os.mkdir(ctl)
    shutil.chown(ctl, cluster.user.pw_name, cluster.user.pw_name)
    ck = os.path.join(ck_parent or userdir, "ckpt")
    return ctl, ck, MODEL % {"ctl": ctl}


def _touch(path, text=""):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def _manifest(ck):
    with open(os.path.join(ck, "manifest.json")) as f:
        return json.load(f)


def _latest(ck):
    try:
        return os.readlink(os.path.join(ck, "latest"))
    except OSError:
        return None


def _staging(ck):
    try:
        return [n for n in os.listdir(ck) if n.startswith(".staging-")]
    except FileNotFoundError:
        return []


def _usr1(cluster, j):
    r = cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
    assert r.returncode == 0, r.stderr


def _save(cluster, j, ck, gen, timeout=60):
    """Ask for a checkpoint; wait until gen-<gen> is latest."""
    _usr1(cluster, j)
    want = "gen-%06d" % gen
    cluster.wait_for(lambda: _latest(ck) == want, timeout,
                     "%s in %s (latest %s)" % (want, ck, _latest(ck)))


def _wait_mid_save(cluster, ck, timeout=60):
    """Poll (5 ms) until a save is under way: a staging folder exists."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _staging(ck):
            return
        time.sleep(0.005)
    raise AssertionError("no save under way in %s: %s" % (ck, os.listdir(ck)))


def _start(cluster, script, spec):
    j = cluster.sbatch(script, ["--open-mode=append", "--resilience=" + spec])
    cluster.wait_state(j, "RUNNING")
    cluster.wait_for(lambda: "attempt=" in cluster.output(j), 30, "job start")
    return j


def _assert_never_drained(cluster):
    states = cluster.node_states()
    assert not [s for s in states.values() if "drain" in s or "drng" in s
                or s.startswith("down")], states
    for n in cluster.nodes:
        log = cluster.slurmd_log(n)
        assert "drain" not in log.lower(), [l for l in log.splitlines()
                                            if "drain" in l.lower()]


def _verify(cluster, ck):
    r = _cli(cluster, "ckpt", "verify", ck)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def _stop_slurmd(cluster, node):
    proc = cluster.slurmd_procs[node]
    os.kill(proc.pid, signal.SIGTERM)   # slurmd only, as systemd's KillMode=process
    proc.wait(30)


def test_slurmd_restarted_while_running_and_while_saving(cluster, plugstack, userdir):
    ctl, ck, script = _setup(cluster, userdir)
    with plugstack():
        j = _start(cluster, script, "ckpt=%s,scratch=%s/s-%%j,lead=0,grace=60,"
                   "retries=1" % (ck, userdir))
        node = cluster.job(j)["BatchHost"]
        _stop_slurmd(cluster, node)
        cluster.restart_slurmd(node)
        assert cluster.state(j) == "RUNNING"
        _save(cluster, j, ck, 1)            # signals reach it through the new slurmd

        _touch(os.path.join(ctl, "big"), "65536")    # 64 MiB, 2048 files
        _usr1(cluster, j)
        _wait_mid_save(cluster, ck)
        _stop_slurmd(cluster, node)
        cluster.restart_slurmd(node)
        cluster.wait_for(lambda: _latest(ck) == "gen-000002", 90,
                         "the interrupted save to publish gen-000002 (latest %s)"
                         % _latest(ck))
        assert cluster.state(j) == "RUNNING"
        _touch(os.path.join(ctl, "stop"))
        info = cluster.wait_state(j, "COMPLETED", 60)
    assert info["Restarts"] == "0"
    assert info["ExitCode"] == "0:0"
    _verify(cluster, ck)
    assert len(os.listdir(os.path.join(ck, "gen-000002", "node-0", "big"))) == 2048
    assert _staging(ck) == []
    out = cluster.output(j)
    assert "resilience: checkpoint gen-000002 saved:" in out, out
    assert "finished" in out
    _assert_never_drained(cluster)


def test_sigkill_mid_save_keeps_previous_generation(cluster, plugstack, userdir):
    ctl, ck, script = _setup(cluster, userdir)
    with plugstack():
        j = _start(cluster, script, "ckpt=%s,scratch=%s/s-%%j,lead=0,grace=60,"
                   "retries=1" % (ck, userdir))
        _save(cluster, j, ck, 1)
        gen1 = _manifest(ck)["generations"][-1]
        _touch(os.path.join(ctl, "big"), "131072")   # 128 MiB, 4096 files
        _usr1(cluster, j)
        _wait_mid_save(cluster, ck)
        pids = cluster.own_pids(job=j)
        stepd = [p for p in pids if cluster.cmdline(p).startswith(
            "slurmstepd: [%d.batch]" % j)]
        assert stepd, [cluster.cmdline(p) for p in pids]
        cluster.kill(stepd)                 # the step's slurmstepd first,
        cluster.kill(pids)                  # then what it leaves behind
        cluster.wait_for(lambda: not cluster.own_pids(job=j), 10, "the job's processes gone")
        assert _latest(ck) == "gen-000001", _latest(ck)
        _verify(cluster, ck)
        # The operator requeues the job whose step died.
        r = cluster.run(["scontrol", "requeue", str(j)])
        assert r.returncode == 0, r.stderr
        cluster.wait_for(lambda: "attempt=2" in cluster.output(j), 90, "attempt 2")
        out = cluster.output(j)
        assert "attempt=2 left=" in out and "restored=%s/gen-000001" % ck in out, out
        assert _latest(ck) == "gen-000001"
        m = _manifest(ck)
        assert m["generations"] == [gen1]      # gen-000001 as it was saved
        # The dead save's staging is no generation (verify passed above);
        # the next save on this host removes it (its saver's pid is gone).
        dead = _staging(ck)
        assert len(dead) == 1, dead
        os.unlink(os.path.join(ctl, "big"))
        _save(cluster, j, ck, 2)
        assert _staging(ck) == [], (dead, _staging(ck))
        _touch(os.path.join(ctl, "stop"))
        info = cluster.wait_state(j, "COMPLETED", 60)
    assert info["Restarts"] == "1"
    _verify(cluster, ck)
    att = _manifest(ck)["attempts"]
    print("after SIGKILL mid-save: staging %s, removed by the next save; ledger %s"
          % (dead, [(a["attempt"], a["outcome"], a.get("action")) for a in att]))
    _assert_never_drained(cluster)


def test_enospc_during_save(cluster, plugstack, userdir):
    fs = os.path.join(userdir, "ckfs")
    os.mkdir(fs)
    u = cluster.user
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755,uid=%d,gid=%d"
                    % (u.pw_uid, u.pw_gid), "tmpfs", fs], check=True)
    try:
        ctl, ck, script = _setup(cluster, userdir, ck_parent=fs)
        with plugstack():
            j = _start(cluster, script, "ckpt=%s,scratch=%s/s-%%j,lead=0,grace=60,"
                       "retries=1" % (ck, userdir))
            _save(cluster, j, ck, 1)
            _touch(os.path.join(ctl, "big"), "8192")     # 8 MiB into 4 MiB
            _usr1(cluster, j)
            cluster.wait_for(lambda: "checkpoint of" in cluster.output(j), 60,
                             "the job to be told the save failed")
            assert cluster.state(j) == "RUNNING"
            assert _latest(ck) == "gen-000001"
            _verify(cluster, ck)
            _touch(os.path.join(ctl, "stop"))
            info = cluster.wait_state(j, "COMPLETED", 60)
        out = cluster.output(j)
        line = [l for l in out.splitlines() if "checkpoint of" in l][0]
        assert "failed" in line and ck in line and "No space left on device" in line, line
        assert info["Restarts"] == "0" and info["ExitCode"] == "0:0", info
        assert _latest(ck) == "gen-000001"
        assert [g["gen"] for g in _manifest(ck)["generations"]] == [1]
        _verify(cluster, ck)
        # The failed save took its partial copy away: the space is back.
        st = os.statvfs(fs)
        free = st.f_bavail * st.f_frsize
        print("after ENOSPC: staging %s, %d KiB free of 4096" % (_staging(ck), free // 1024))
        assert _staging(ck) == [] and free > 3 * 1024 * 1024, (_staging(ck), free)
        _assert_never_drained(cluster)
    finally:
        subprocess.run(["umount", "-l", fs])


def _rundir_entries(cluster):
    """This cluster's entries in RUNDIR (shared with other test clusters on
    this machine): <cluster>.* at the top and in each u<uid>/."""
    found = []
    pre = cluster.name + "."
    for top in os.listdir(RUNDIR) if os.path.isdir(RUNDIR) else []:
        p = os.path.join(RUNDIR, top)
        if top.startswith(pre):
            found.append(p)
        elif top.startswith("u") and os.path.isdir(p):
            found += [os.path.join(p, n) for n in os.listdir(p) if n.startswith(pre)]
    return found


def test_node_rebooted_between_attempts(cluster, plugstack, userdir):
    """Attempt 1 fails and is requeued (a retry used); attempt 2's node
    crashes (slurmd and the job's processes SIGKILLed) and "reboots": this
    cluster's entries in RUNDIR (the facts and private files attempt 2
    keeps there; a tmpfs on a real node) are removed while slurmd is down
    (the job epilog never ran).  Slurm requeues the job after
    SlurmdTimeout (30 s); attempt 3 starts on another node, restores
    gen-000001 and counts its retries from the ledger, not from RUNDIR.
    RUNDIR itself (shared by every test cluster on this machine) stays."""
    import signal
    ctl, ck, script = _setup(cluster, userdir)
    with plugstack():
        j = _start(cluster, script, "ckpt=%s,scratch=%s/s-%%j-%%n,lead=0,grace=60,"
                   "retries=2" % (ck, userdir))
        _save(cluster, j, ck, 1)
        _touch(os.path.join(ctl, "fail"))
        cluster.wait_for(lambda: "attempt=2" in cluster.output(j), 90, "attempt 2")
        cluster.wait_state(j, "RUNNING")
        node = cluster.job(j)["BatchHost"]
        cluster.wait_for(lambda: len(_rundir_entries(cluster)) >= 2, 20,
                         "attempt 2's files in RUNDIR")
        gone = _rundir_entries(cluster)
        proc = cluster.slurmd_procs[node]
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            cluster.kill(cluster.own_pids(job=j))
            for p in gone:                      # the reboot
                if os.path.isdir(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
            cluster.wait_for(lambda: cluster.job(j).get("Restarts") == "2", 150,
                             "Slurm to requeue the job after the node failure")
            cluster.wait_for(lambda: "attempt=3" in cluster.output(j), 120, "attempt 3")
        finally:
            cluster.restart_slurmd(node)
        _touch(os.path.join(ctl, "stop"))
        info = cluster.wait_state(j, "COMPLETED", 60)
    out = cluster.output(j)
    print("removed at the reboot: %s" % gone)
    print([l for l in out.splitlines() if l.startswith("attempt=")])
    assert "failing" in out
    assert "attempt=2 left=1 " in out, out
    a3 = [l for l in out.splitlines() if l.startswith("attempt=3 ")]
    assert a3 and "restored=%s/gen-000001" % ck in a3[0], out
    assert info["Restarts"] == "2" and info["NodeList"] != node
    att = _manifest(ck)["attempts"]
    print("ledger:", [(a["attempt"], a["outcome"], a.get("action")) for a in att])
    assert [(a["attempt"], a["outcome"]) for a in att] == [
        (1, "failed"), (2, "node_fail"), (3, "completed")], att
    assert att[0]["action"] == "requeued"
    # The retry count survives the reboot (the ledger is in CKPT_DIR, not
    # in RUNDIR): attempt 1's failure and attempt 2's node failure each
    # used one (requeue_on=any includes node_fail), so none is left.
    assert att[1]["retry"] is True and att[1]["retries_left"] == 0, att[1]
    assert "attempt=3 left=0 " in a3[0], a3
    _assert_never_drained(cluster)
