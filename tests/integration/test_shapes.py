"""Issue 12: job shapes. A job submitted from inside a resilient job; a
multi-node job whose task on one node ends early."""
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
