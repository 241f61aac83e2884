"""make demo: a private one-node Slurm cluster with the plugin, a real
ClickHouse for metrics, and one job walked through checkpoint, time limit,
requeue, restore and metrics, printing what happened at each step.

Run as root on Debian 12 (make demo installs what is missing first).
Takes about two minutes: the job hits a real one-minute time limit.
"""
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "metrics"))
from cluster import Cluster  # noqa: E402
from receivers import Receivers  # noqa: E402

CLI = os.path.join(ROOT, "build", "slurm-resilience")
T0 = time.time()

JOB = r"""#!/bin/bash
#SBATCH --job-name=climate-run
#SBATCH --time=1
#SBATCH --signal=B:USR1@45
# A toy model: counts steps; on the warning signal it writes its state
# into scratch and says so.  No trap-rsync, no retry counter, no curl.
trap 'echo "$(date +%T) model: got USR1 at step $STEP, saving state";
      echo $STEP > "$RESILIENCE_SCRATCH/model.state";
      touch "$RESILIENCE_CKPT_READY"' USR1
STEP=0
if [ -f "$RESILIENCE_SCRATCH/model.state" ]; then
  STEP=$(cat "$RESILIENCE_SCRATCH/model.state")
  echo "$(date +%T) model: attempt $RESILIENCE_ATTEMPT resumes at step $STEP (restored from $RESILIENCE_RESTORED_FROM)"
  for i in $(seq 1 10); do STEP=$((STEP+1)); sleep 0.5; done
  echo "$(date +%T) model: finished at step $STEP"
  exit 0
fi
echo "$(date +%T) model: attempt $RESILIENCE_ATTEMPT starts from scratch in $RESILIENCE_SCRATCH"
while true; do STEP=$((STEP+1)); sleep 0.5; done
"""


def say(msg):
    print("[%5.1fs] %s" % (time.time() - T0, msg), flush=True)


def show(title, text):
    print("  -- %s --" % title)
    for line in text.rstrip().splitlines():
        print("  | " + line)


def main():
    if os.geteuid() != 0:
        sys.exit("make demo needs root (it starts munge, slurmctld and slurmd)")
    rcv = Receivers(pushgateway=False, alertmanager=False)
    c = Cluster(nodes=1)
    try:
        say("starting ClickHouse (metrics receiver)")
        rcv.start()
        with open(os.path.join(ROOT, "docs", "operators.md")) as f:
            import re
            ddl = re.search(r"<!-- sql:ddl -->\s*```sql\n(.*?)```", f.read(), re.S).group(1)
        for stmt in ddl.split(";"):
            if stmt.strip():
                rcv.ch(stmt)
        spool = os.path.join(c.dir, "spool")
        os.makedirs(spool, mode=0o700)
        args = ("ckpt_roots=%s max_retries=3 state_dir=%s/state "
                "metrics_url=%s metrics_format=clickhouse "
                "clickhouse_table=slurm_resilience.events spool_dir=%s cluster=demo"
                % (c.work, c.dir, rcv.clickhouse_url, spool))
        c.set_plugin_args(args)
        say("starting a private Slurm cluster (munge, slurmctld, slurmd) in " + c.dir)
        c.start()
        show("plugstack.conf", open(c.plugstack).read())

        ck = os.path.join(c.work, "ckpt")
        spec = "ckpt=%s/%%j,scratch=%s/scratch-%%j,lead=0,retries=1" % (ck, c.work)
        say("a typo is refused before anything is queued:")
        r = c.sbatch(JOB, ["--resilience=" + spec.replace("retries", "retires")],
                     check=False)
        show("sbatch --resilience=...retires=1 (exit %d)" % r.returncode, r.stderr)

        say("submitting the job as user %s with --resilience=%s" % (c.user.pw_name, spec))
        j = c.sbatch(JOB, ["--open-mode=append", "--resilience=" + spec])
        c.wait_state(j, "RUNNING", 60)
        say("job %d is running; Slurm will send USR1 about 45 s before its 1-minute limit" % j)
        gdir = os.path.join(ck, str(j))
        c.wait_for(lambda: os.path.islink(os.path.join(gdir, "latest")), 90,
                   "the checkpoint")
        say("checkpoint taken while the job runs:")
        show("slurm-resilience ckpt list " + gdir,
             c.run([CLI, "ckpt", "list", gdir]).stdout)
        say("waiting for the time limit; the plugin requeues the job as a continuation")
        c.wait_for(lambda: c.job(j).get("Restarts") == "1", 120, "the requeue")
        show("scontrol show job %d | AdminComment" % j, c.job(j).get("AdminComment", ""))
        c.wait_state(j, "COMPLETED", 120)
        say("attempt 2 restored the checkpoint and completed:")
        show("job output", c.output(j))
        show("slurm-resilience status " + gdir, c.run([CLI, "status", gdir]).stdout)

        c.wait_for(lambda: len(rcv.query(
            "SELECT attempt FROM slurm_resilience.events FINAL WHERE job_id=%d" % j)) == 2,
            30, "two rows in ClickHouse")
        rows = rcv.ch("SELECT attempt, outcome, action, duration_seconds, checkpoints, "
                      "restored_from_generation FROM slurm_resilience.events FINAL "
                      "WHERE job_id=%d ORDER BY attempt FORMAT PrettyCompactMonoBlock" % j)
        say("metrics: one row per attempt in ClickHouse")
        # Pretty formats embolden the header with terminal escapes (the
        # NoEscapes variants are newer than Debian's ClickHouse 18.16).
        show("SELECT ... FROM slurm_resilience.events",
             re.sub(r"\x1b\[[0-9;]*m", "", rows))
        say("done: checkpoint, time limit, requeue, restore and metrics, without a "
            "line of shell plumbing in the job")
    finally:
        c.stop()
        rcv.stop()
        if os.environ.get("RS_KEEP_CLUSTER"):
            print("cluster left in", c.dir)
        else:
            shutil.rmtree(c.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
