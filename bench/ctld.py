"""What the plugin costs slurmctld (issue 13): extra RPCs per attempt by
type, and slurmctld's time per RPC type, from sdiag, as ratios against
the same job array without --resilience in the same invocation.

Starts a private Slurm cluster (tests/integration/cluster.py) with the
built plugin and runs, one after the other, the same job array
(`--array=0-N-1%C`, each task `true`) as the test user:

  base      plugin loaded, no --resilience; every task succeeds
  ok        --resilience=retries=1; every task succeeds
  fail      no --resilience; every task fails (exit 1): Slurm's own cost
            of a failed job, the baseline of `retry`
  retry     --resilience=retries=1; every task fails once (requeued by
            the plugin) then succeeds: 2 attempts per task

Before each run `sdiag -r` resets slurmctld's counters; the run waits on
sdiag's own job counters (REQUEST_STATS_INFO, left out of the figures),
never on squeue, so the only job lookups counted are the plugin's.

    bash bench/ctld.sh                 (N=100 C=20 ROUNDS=3)
    N=200 C=50 ROUNDS=5 bash bench/ctld.sh
The four runs go in turn, ROUNDS times; figures are summed over rounds.
Targets (issue 13): at most 1 extra RPC per attempt for a job that
succeeds, at most 3 for an attempt that is requeued, and no increase in
slurmctld's time per REQUEST_COMPLETE_BATCH_SCRIPT (ratios of the same RPC
type's mean time, with against without --resilience).
"""
import os
import re
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from cluster import Cluster  # noqa: E402

N = int(os.environ.get("N", "100"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
C = int(os.environ.get("C", "20"))
RUN_TIMEOUT = int(os.environ.get("RUN_TIMEOUT", "900"))
# RPC types the plugin itself may send (the rest is Slurm's own traffic).
PLUGIN_RPCS = ("REQUEST_JOB_INFO_SINGLE", "REQUEST_FED_INFO", "REQUEST_JOB_INFO",
               "REQUEST_JOB_REQUEUE", "REQUEST_UPDATE_JOB")
SHOWN = PLUGIN_RPCS + ("REQUEST_COMPLETE_BATCH_SCRIPT", "MESSAGE_EPILOG_COMPLETE",
                       "REQUEST_SUBMIT_BATCH_JOB")


def sdiag(c):
    out = c.run(["sdiag"]).stdout
    rpcs = {}
    for m in re.finditer(r"^\s*(\w+)\s*\(\s*\d+\)\s*count:(\d+)\s+ave_time:(\d+)\s+"
                         r"total_time:(\d+)", out, re.M):
        rpcs[m.group(1)] = (int(m.group(2)), int(m.group(4)))
    jobs = {}
    for k in ("Jobs completed", "Jobs failed", "Jobs canceled", "Jobs started"):
        m = re.search(r"^%s:\s+(\d+)" % k, out, re.M)
        jobs[k] = int(m.group(1)) if m else 0
    return rpcs, jobs


def run(c, name, script, args):
    """script ends its last attempt with `touch $DONE/$SLURM_ARRAY_TASK_ID`:
    waiting on files costs slurmctld nothing."""
    done = os.path.join(c.user_work(c.user.pw_name), "done-" + name)
    os.makedirs(done)
    shutil.chown(done, c.user.pw_name)
    script = script.replace("$DONE", done)
    c.run(["sdiag", "-r"], check=True)
    t0 = time.time()
    c.sbatch(script, ["--array=0-%d%%%d" % (N - 1, C), "-o", "/dev/null"] + args)
    deadline = t0 + RUN_TIMEOUT
    while len(os.listdir(done)) < N:
        if time.time() > deadline:
            raise SystemExit("bench/ctld: run %s did not finish" % name)
        time.sleep(1)
    time.sleep(8)  # the last jobs end, their epilogs complete
    rpcs, jobs = sdiag(c)
    print("== %-7s %d tasks in %.0f s" % (name, N, time.time() - t0))
    return rpcs, jobs


def main():
    c = Cluster(nodes=4)
    c.start()
    try:
        ok = "#!/bin/bash\ntouch $DONE/$SLURM_ARRAY_TASK_ID\n"
        once = ("#!/bin/bash\n[ \"${SLURM_RESTART_COUNT:-0}\" = 0 ] && exit 1\n"
                "touch $DONE/$SLURM_ARRAY_TASK_ID\n")
        res = {}
        c.set_plugin_args("")
        fail = "#!/bin/bash\ntouch $DONE/$SLURM_ARRAY_TASK_ID\nexit 1\n"
        runs = (("base", ok, []), ("ok", ok, ["--resilience=retries=1"]),
                ("fail", fail, []), ("retry", once, ["--resilience=retries=1"]))
        # Rounds, in turn, so that the load of a shared machine falls on
        # all four alike; counts and times are summed over the rounds.
        for r in range(ROUNDS):
            for name, script, args in runs:
                rpcs, _ = run(c, "%s%d" % (name, r), script, args)
                acc = res.setdefault(name, ({}, None))[0]
                for t, (n, total) in rpcs.items():
                    a = acc.get(t, (0, 0))
                    acc[t] = (a[0] + n, a[1] + total)
    finally:
        c.stop()
        c.cleanup()

    attempts = {"base": N * ROUNDS, "ok": N * ROUNDS, "fail": N * ROUNDS,
                "retry": 2 * N * ROUNDS}
    print("\nRPCs per attempt by type (sdiag count / attempts):")
    print("%-32s %8s %8s %8s %8s" % ("type", "base", "ok", "fail", "retry"))
    for t in SHOWN:
        print("%-32s" % t + "".join(
            " %8.2f" % (res[r][0].get(t, (0, 0))[0] / attempts[r])
            for r in ("base", "ok", "fail", "retry")))

    def plugin_rpcs(r):
        return sum(res[r][0].get(t, (0, 0))[0] for t in PLUGIN_RPCS)

    extra_ok = (plugin_rpcs("ok") - plugin_rpcs("base")) / (N * ROUNDS)
    # The requeued attempt alone: run `retry` is run `ok` plus one failed
    # attempt per task that the plugin requeues.
    extra_retry = (plugin_rpcs("retry") - plugin_rpcs("ok") -
                   (plugin_rpcs("fail") - plugin_rpcs("base"))) / (N * ROUNDS)

    def per_call(r, t):
        n, total = res[r][0].get(t, (0, 0))
        return total / n if n else float("nan")

    cb = "REQUEST_COMPLETE_BATCH_SCRIPT"
    print("\nextra slurmctld RPCs per attempt, succeeding job:   %.2f  (target <= 1)" % extra_ok)
    print("extra slurmctld RPCs per attempt, requeued attempt: %.2f  (target <= 3)"
          % extra_retry)
    print("slurmctld time per %s: base %.0f us, ok %.0f us (%.2fx), "
          "fail %.0f us, retry %.0f us (%.2fx)" % (
              cb, per_call("base", cb), per_call("ok", cb),
              per_call("ok", cb) / per_call("base", cb),
              per_call("fail", cb), per_call("retry", cb),
              per_call("retry", cb) / per_call("fail", cb)))
    for t in ("REQUEST_JOB_INFO_SINGLE", "REQUEST_JOB_REQUEUE", "REQUEST_UPDATE_JOB"):
        print("slurmctld time per %s: ok %.0f us, retry %.0f us" % (
            t, per_call("ok", t), per_call("retry", t)))


if __name__ == "__main__":
    main()
