"""Issue 2: the --resilience option and site policy on a real cluster."""
import os
import re
import subprocess

import pytest

SHOW_ENV = "#!/bin/bash\nenv | grep '^RESILIENCE_' | sort\necho script-ran\n"


def _refused(cluster, r, *needles):
    """sbatch refused: non-zero exit, every needle in stderr, nothing queued."""
    assert r.returncode != 0, r.stdout + r.stderr
    for n in needles:
        assert n in r.stderr, "%r not in %r" % (n, r.stderr)
    assert cluster.queue() == []


def _env(text):
    return dict(l.split("=", 1) for l in text.splitlines()
                if l.startswith("RESILIENCE_"))


def test_option_listed_in_sbatch_help(cluster, plugstack):
    with plugstack():
        r = cluster.as_user(["sbatch", "--help"])
    assert r.returncode == 0
    assert re.search(r"--resilience=SPEC\s+Survive time limits", r.stdout)


def test_help_prints_grammar_and_queues_nothing(cluster, plugstack):
    with plugstack():
        r = cluster.as_user(["sbatch", "--resilience=help", "--wrap=true"])
    assert r.returncode == 0, r.stderr
    for key in ("ckpt=DIR", "requeue_on=C", "backoff=B", "exhausted=hold|fail",
                "Examples:"):
        assert key in r.stdout
    assert r.stdout.count("sbatch --resilience=") == 3
    assert cluster.queue() == []


def test_valid_spec_exports_variables(cluster, plugstack, userdir):
    spec = "ckpt=%s/ckpt/%%u-%%j,scratch=/tmp/rs-%%j-%%n,retries=1" % userdir
    with plugstack():
        j = cluster.sbatch(SHOW_ENV, ["--resilience=" + spec, "-w", "n2"])
        info = cluster.wait_done(j)
    assert info["JobState"] == "COMPLETED"
    env = _env(cluster.output(j))
    assert env["RESILIENCE_ATTEMPT"] == "1"
    assert env["RESILIENCE_CKPT_DIR"] == "%s/ckpt/rstest-%d" % (userdir, j)
    assert env["RESILIENCE_SCRATCH"] == "/tmp/rs-%d-n2" % j
    assert env["RESILIENCE_SPEC"].startswith("ckpt=%s/ckpt/%%u-%%j," % userdir)
    assert ",retries=1," in env["RESILIENCE_SPEC"]


def test_retries_only_job_sees_attempt_one(cluster, plugstack):
    """Must show 4: RESILIENCE_ATTEMPT=1 with retries=1, nothing without."""
    with plugstack():
        j1 = cluster.sbatch(SHOW_ENV, ["--resilience=retries=1"])
        j2 = cluster.sbatch(SHOW_ENV)
        cluster.wait_done(j1)
        cluster.wait_done(j2)
    assert _env(cluster.output(j1))["RESILIENCE_ATTEMPT"] == "1"
    out2 = cluster.output(j2)
    assert "script-ran" in out2 and "RESILIENCE_" not in out2


@pytest.mark.parametrize("spec,needles", [
    ("retries=x", ["retries", "not a whole number"]),
    ("retires=3", ["unknown key 'retires'", "did you mean 'retries'",
                   "valid keys: ckpt, scratch"]),
    ("retries=1,retries=2", ["retries: given twice"]),
    ("retries=", ["retries: empty value"]),
    ("retries=1,", ["trailing comma"]),
    ("retries=99999999999999999999999", ["retries", "out of range"]),
    ("backoff=10sx0", ["backoff", "factor"]),
    ("requeue_on=exit:300", ["requeue_on", "1-255"]),
    ("ckpt=relative/dir", ["ckpt", "absolute path"]),
    ("ckpt=/x/%q", ["unknown pattern '%q'"]),
    ("keep=0,ckpt=/tmp/x", ["keep", "out of range"]),
    ("signal=KILL,ckpt=/tmp/x", ["signal", "cannot be used"]),
    ("retries=1," + "x" * 5000, ["at most 4096"]),
])
def test_invalid_spec_refused_at_submit(cluster, plugstack, spec, needles):
    with plugstack():
        r = cluster.sbatch("#!/bin/sh\ntrue\n", ["--resilience=" + spec],
                           check=False)
    _refused(cluster, r, *needles)


def test_invalid_spec_refused_by_srun_and_salloc(cluster, plugstack):
    with plugstack():
        r = cluster.as_user(["srun", "--resilience=retries=x", "true"])
        _refused(cluster, r, "retries")
        r = cluster.as_user(["salloc", "--resilience=retries=x", "true"])
        _refused(cluster, r, "retries")


def test_srun_job_sees_variables(cluster, plugstack):
    with plugstack():
        r = cluster.as_user(["srun", "--resilience=retries=2", "-N1",
                             "sh", "-c", "echo A=$RESILIENCE_ATTEMPT"])
    assert r.returncode == 0, r.stderr
    assert "A=1" in r.stdout


def test_job_without_resilience_unaffected(cluster, plugstack):
    with plugstack("max_retries=2 default=off"):
        j = cluster.sbatch("#!/bin/bash\nenv | grep -c '^RESILIENCE_' ; exit 0\n")
        info = cluster.wait_done(j)
    assert info["JobState"] == "COMPLETED"
    assert cluster.output(j).strip() == "0"


def test_site_retry_cap_refused_with_cap_named(cluster, plugstack):
    with plugstack("max_retries=1"):
        r = cluster.sbatch("#!/bin/sh\ntrue\n", ["--resilience=retries=5"],
                           check=False)
        _refused(cluster, r, "retries=5 is over the site cap max_retries=1")
        j = cluster.sbatch(SHOW_ENV, ["--resilience=retries=1"])
        assert cluster.wait_done(j)["JobState"] == "COMPLETED"


def test_ckpt_roots_enforced_at_submit(cluster, plugstack, userdir):
    root = os.path.join(userdir, "root")
    with plugstack("ckpt_roots=%s:/nonexistent/second" % root):
        for bad in ("/tmp/elsewhere/%j", root + "2/%j", root):
            r = cluster.sbatch("#!/bin/sh\ntrue\n",
                               ["--resilience=ckpt=" + bad], check=False)
            _refused(cluster, r, "not under the site's checkpoint roots",
                     "ckpt_roots=%s:/nonexistent/second" % root)
        # '..' is refused before any root is looked at (it is how
        # ROOT/link/../x once left the roots).
        r = cluster.sbatch("#!/bin/sh\ntrue\n",
                           ["--resilience=ckpt=%s/../escape/%%j" % root], check=False)
        _refused(cluster, r, "'..' is not allowed in ckpt=", "the folder's own path")
        j = cluster.sbatch(SHOW_ENV, ["--resilience=ckpt=%s/%%j" % root])
        assert cluster.wait_done(j)["JobState"] == "COMPLETED"
        assert _env(cluster.output(j))["RESILIENCE_CKPT_DIR"] == "%s/%d" % (root, j)


def test_ckpt_roots_symlink_escape_fails_job_on_node(cluster, plugstack, userdir):
    """A symlink inside the root that points outside passes the submit-time
    (lexical) check; the node resolves it as the user and refuses."""
    root = os.path.join(userdir, "root")
    os.makedirs(root)
    os.symlink("/tmp", os.path.join(root, "link"))
    subprocess.run(["chown", "-R", "-h", "rstest:rstest", root], check=True)
    with plugstack("ckpt_roots=" + root):
        j = cluster.sbatch(SHOW_ENV, ["--resilience=ckpt=%s/link/%%j" % root])
        info = cluster.wait_done(j)
    assert info["JobState"] == "FAILED"
    out = cluster.output(j)
    assert "resolves to /tmp/%d, which is not under" % j in out
    assert "script-ran" not in out
    assert set(cluster.node_states().values()) <= {"idle", "mix", "alloc"}


def test_bad_admin_argument_never_drains(cluster, plugstack):
    with plugstack("max_retries=lots"):
        # A job that does not ask for resilience runs normally.
        j = cluster.sbatch("#!/bin/bash\necho plain-ran\n")
        assert cluster.wait_done(j)["JobState"] == "COMPLETED"
        assert "plain-ran" in cluster.output(j)
        # A job that asks is refused at submit, with the argument named.
        r = cluster.sbatch("#!/bin/sh\ntrue\n", ["--resilience=retries=1"],
                           check=False)
        _refused(cluster, r, "misconfigured", "max_retries=lots")
    node = cluster.job(j)["NodeList"]
    assert "max_retries=lots" in cluster.slurmd_log(node)
    states = cluster.node_states()
    assert all(s == "idle" for s in states.values()), states


def test_site_default_applies_and_off_opts_out(cluster, plugstack):
    with plugstack("default=retries=2"):
        j1 = cluster.sbatch(SHOW_ENV)
        j2 = cluster.sbatch(SHOW_ENV, ["--resilience=off"])
        cluster.wait_done(j1)
        cluster.wait_done(j2)
    assert _env(cluster.output(j1))["RESILIENCE_SPEC"].startswith("retries=2,")
    assert "RESILIENCE_" not in cluster.output(j2)


def test_sbatch_directive_in_script(cluster, plugstack):
    with plugstack():
        r = cluster.sbatch("#!/bin/bash\n#SBATCH --resilience=retries=x\ntrue\n",
                           check=False)
        _refused(cluster, r, "retries")
        j = cluster.sbatch("#!/bin/bash\n#SBATCH --resilience=retries=3\n" +
                           SHOW_ENV.split("\n", 1)[1])
        cluster.wait_done(j)
    assert ",".join(["retries=3"]) in _env(cluster.output(j))["RESILIENCE_SPEC"]
