"""An installed package on a real Slurm cluster (make check-package, as
root, RS_INSTALLED=1): slurmd loads the plugin from Slurm's plugin folder,
which runs the CLI and supervisor from where the package put them."""
import os
import re
import subprocess
import time

import cluster as C
# A few of the integration suite's tests, run here against the installed
# plugin (same cluster fixture).
from test_foundation import (test_valid_spec_exports_variables,  # noqa: F401
                             test_job_without_resilience_unaffected,
                             test_bad_admin_argument_never_drains)
from test_checkpoint import test_tutorial_job_checkpoints_on_usr1_and_restores  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.environ.get("RS_INSTALLED_CLI", "/usr/bin/slurm-resilience")


def _version():
    with open(os.path.join(ROOT, "VERSION")) as f:
        return f.read().strip()


def test_cluster_loads_the_installed_plugin(cluster):
    assert C.INSTALLED, "run with RS_INSTALLED=1 (make check-package)"
    assert cluster.plugin == C.INSTALLED_PLUGIN
    with open(cluster.plugstack) as f:
        assert C.INSTALLED_PLUGIN in f.read()
    # The file belongs to the package, not to a build tree.
    r = subprocess.run(["dpkg", "-S", C.INSTALLED_PLUGIN], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("slurm-spank-resilience:"), r


def test_slurmd_logs_version_once_per_start(cluster):
    """slurm_spank_init in S_CTX_SLURMD: one line per slurmd start, with
    VERSION and the Slurm release the plugin was built for."""
    slurm = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "slurmd"],
                           capture_output=True, text=True).stdout
    want = "resilience: spank-resilience %s (built for Slurm %s)" % (
        _version(), re.match(r"[0-9.]+", slurm).group(0))
    for n in range(1, cluster.nnodes + 1):
        log = cluster.slurmd_log("n%d" % n)
        lines = [l for l in log.splitlines() if "spank-resilience" in l]
        assert len(lines) == 1 and want in lines[0], (n, want, lines)


def test_cli_version_matches(cluster):
    r = subprocess.run([CLI, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == "slurm-resilience %s\n" % _version()


def test_installed_cli_reads_a_users_checkpoint(cluster, plugstack, userdir):
    """A checkpoint made by the installed plugin and supervisor, read back by
    the installed CLI as the user."""
    ck = os.path.join(userdir, "ck")
    script = ("#!/bin/bash\ntrap 'echo x > $RESILIENCE_SCRATCH/f; "
              "touch $RESILIENCE_CKPT_READY' USR1\n"
              "for i in $(seq 1 120); do sleep 0.5; done\n")
    with plugstack():
        j = cluster.sbatch(script, ["--resilience=ckpt=%s,scratch=%s/s-%%j,lead=0"
                                    % (ck, userdir)])
        cluster.wait_state(j, "RUNNING")
        time.sleep(3)   # the batch script has set its trap
        assert cluster.run(["scancel", "-b", "--signal=USR1", str(j)]).returncode == 0
        cluster.wait_for(lambda: os.path.islink(os.path.join(ck, "latest")), 40,
                         "a checkpoint in %s" % ck)
        cluster.run(["scancel", str(j)])
        cluster.wait_done(j)
    r = cluster.as_user([CLI, "ckpt", "verify", ck])
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = cluster.as_user([CLI, "status", ck])
    assert r.returncode == 0 and "%d" % j in r.stdout, (r.stdout, r.stderr)
