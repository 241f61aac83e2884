/*
 * plugin.c - the SPANK glue.  Thin on purpose: each hook says where it runs
 * and calls into the pure modules (spec, policy, pattern, path, ...).
 *
 * Rules that keep the node safe (docs/design.md explains them):
 *  - No hook ever returns an error in a context where that could drain the
 *    node (slurmd, remote init/init_post_opt/exit).  A job that asked for
 *    resilience and cannot get it is failed from slurm_spank_task_init,
 *    with the reason on its stderr.
 *  - A job without --resilience (and no site default) returns from every
 *    hook after one flag test.
 *  - Every symbol is hidden except the plugin identity and the hooks: the
 *    plugin is loaded into sbatch/srun/slurmstepd, which have globals of
 *    their own.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "err.h"
#include "path.h"
#include "pattern.h"
#include "policy.h"
#include "spec.h"

#define RS_EXPORT __attribute__((visibility("default")))

RS_EXPORT const char plugin_name[] = "resilience";
RS_EXPORT const char plugin_type[] = "spank";
RS_EXPORT const unsigned int plugin_version = SLURM_VERSION_NUMBER;

/* Step ids with a special meaning (slurm.h names differ across versions). */
#define RS_BATCH_STEP  0xfffffffbu
#define RS_EXTERN_STEP 0xfffffffcu

/* All plugin state: one struct per process that loads the plugin. */
static struct {
	rs_policy_t pol;
	int pol_ok;                 /* plugstack arguments parsed cleanly */
	rs_err_t pol_err;
	int opt_given;              /* --resilience seen in this process */
	char opt_text[RS_SPEC_MAX + 1];
	rs_spec_t spec;             /* effective SPEC (user's or default) */
	int active;                 /* this job asked for resilience */
	int failed;                 /* asked, but cannot be honoured here */
	rs_err_t fail_err;
	char ckpt[PATH_MAX];        /* expanded paths */
	char scratch[PATH_MAX];
	uint32_t job_id, step_id, restart_count;
} g;

static int _opt_cb(int val, const char *optarg, int remote);

static struct spank_option rs_option = {
	"resilience", "SPEC",
	"Survive time limits, preemption and failures: checkpoint, requeue, "
	"report. --resilience=help prints the grammar.",
	1, 0, _opt_cb
};

/*
 * Option callback.  Runs in sbatch/salloc (allocator), srun (local) and
 * slurmstepd (remote, with the value the user gave at submit).  Refusing
 * here makes sbatch exit non-zero before anything is queued; in remote
 * context it never refuses (that could drain the node).
 */
static int _opt_cb(int val, const char *optarg, int remote)
{
	rs_err_t err;
	int rc;

	(void)val;
	g.opt_given = 1;
	snprintf(g.opt_text, sizeof(g.opt_text), "%s", optarg ? optarg : "");
	rc = rs_spec_parse(optarg, &g.spec, &err);
	if (remote) {
		if (rc) {
			g.failed = 1;
			g.fail_err = err;
		}
		return 0;
	}
	if (rc) {
		slurm_error("resilience: invalid --resilience: %s", err.msg);
		return -1;
	}
	if (g.spec.help) {
		fputs(rs_spec_help(), stdout);
		fflush(stdout);
		exit(0);
	}
	if (g.spec.off)
		return 0;
	if (!g.pol_ok) {
		slurm_error("resilience: this cluster's resilience plugin is "
			    "misconfigured, so --resilience cannot be honoured "
			    "(tell your administrator): %s", g.pol_err.msg);
		return -1;
	}
	if (rs_policy_check_spec(&g.pol, &g.spec, &err)) {
		slurm_error("resilience: invalid --resilience: %s", err.msg);
		return -1;
	}
	return 0;
}

/*
 * Every context (sbatch, salloc, srun, slurmstepd, slurmd, prolog).
 * Parses the site policy and registers --resilience.  Never fails: a bad
 * plugstack argument is logged here and refused later, only for jobs that
 * ask for resilience.
 */
RS_EXPORT int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	memset(&g, 0, sizeof(g));
	g.pol_ok = rs_policy_parse(ac, av, &g.pol, &g.pol_err) == 0;
	if (!g.pol_ok)
		slurm_error("resilience: plugstack.conf: bad argument for "
			    "resilience.so: %s", g.pol_err.msg);
	if (ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR ||
	    ctx == S_CTX_REMOTE) {
		spank_err_t rc = spank_option_register(sp, &rs_option);

		if (rc != ESPANK_SUCCESS)
			slurm_error("resilience: cannot register --resilience: "
				    "%s", spank_strerror(rc));
	}
	return 0;
}

/* Expand the SPEC's paths for this job and node (slurmstepd). */
static int _expand_paths(spank_t sp, rs_err_t *err)
{
	char job[32], arr_job[32], arr_task[32], node[256], name[256];
	char tmpdir[PATH_MAX];
	uint32_t aj = 0, at = 0;
	struct passwd *pw;
	uid_t uid = (uid_t)-1;
	rs_pattern_ctx_t ctx;
	int rc;

	spank_get_item(sp, S_JOB_UID, &uid);
	spank_get_item(sp, S_JOB_ARRAY_ID, &aj);
	spank_get_item(sp, S_JOB_ARRAY_TASK_ID, &at);
	snprintf(job, sizeof(job), "%u", g.job_id);
	snprintf(arr_job, sizeof(arr_job), "%u", aj ? aj : g.job_id);
	snprintf(arr_task, sizeof(arr_task), "%u", aj ? at : 0);
	/* slurmstepd puts its node's name in its own environment (several
	 * slurmd may share a host, so the host name is not the node name);
	 * the job's copy only gets it just before exec. */
	if (getenv("SLURMD_NODENAME"))
		snprintf(node, sizeof(node), "%s", getenv("SLURMD_NODENAME"));
	else if (gethostname(node, sizeof(node)))
		snprintf(node, sizeof(node), "unknown");
	if (spank_getenv(sp, "SLURM_JOB_NAME", name, sizeof(name)) !=
	    ESPANK_SUCCESS)
		name[0] = '\0';
	pw = getpwuid(uid);
	ctx.job_id = job;
	ctx.array_job_id = arr_job;
	ctx.array_task_id = arr_task;
	ctx.user = pw ? pw->pw_name : NULL;
	ctx.job_name = name;
	ctx.node = node;

	g.ckpt[0] = g.scratch[0] = '\0';
	if (g.spec.ckpt[0]) {
		rc = rs_pattern_expand(g.spec.ckpt, &ctx, g.ckpt,
				       sizeof(g.ckpt), err);
		if (rc)
			return rc;
	}
	if (g.spec.scratch[0])
		return rs_pattern_expand(g.spec.scratch, &ctx, g.scratch,
					 sizeof(g.scratch), err);
	if (spank_getenv(sp, "TMPDIR", tmpdir, sizeof(tmpdir)) ==
	    ESPANK_SUCCESS && tmpdir[0] == '/')
		snprintf(g.scratch, sizeof(g.scratch), "%s", tmpdir);
	else
		snprintf(g.scratch, sizeof(g.scratch), "/tmp");
	return 0;
}

/*
 * slurmstepd (remote), as root, after options are known; also sbatch,
 * salloc and srun.  Decides whether this job is resilient (its own SPEC,
 * or the site default unless it said `off`).  Never returns an error in
 * remote context.
 */
RS_EXPORT int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	rs_err_t err;

	(void)ac;
	(void)av;
	if (!spank_remote(sp))
		return 0;
	if (!g.opt_given) {
		if (!g.pol_ok || !g.pol.default_spec[0])
			return 0;
		if (rs_spec_parse(g.pol.default_spec, &g.spec, &err))
			return 0; /* validated by rs_policy_parse already */
	}
	if (g.spec.off)
		return 0;
	g.active = 1;
	if (g.failed) {
		slurm_error("resilience: --resilience unusable on this node: %s",
			    g.fail_err.msg);
		return 0;
	}
	if (!g.pol_ok) {
		g.failed = 1;
		rs_err_set(&g.fail_err, EINVAL,
			   "site policy is misconfigured on this node: %s",
			   g.pol_err.msg);
		return 0;
	}
	spank_get_item(sp, S_JOB_ID, &g.job_id);
	spank_get_item(sp, S_JOB_STEPID, &g.step_id);
	if (spank_get_item(sp, S_SLURM_RESTART_COUNT, &g.restart_count) !=
	    ESPANK_SUCCESS)
		g.restart_count = 0;
	if (g.step_id == RS_EXTERN_STEP) {
		g.active = 0;
		return 0;
	}
	if (_expand_paths(sp, &err)) {
		g.failed = 1;
		g.fail_err = err;
	}
	return 0;
}

/*
 * slurmstepd, as the job's user (effective uid), before tasks fork.
 * Re-checks the expanded checkpoint folder against ckpt_roots with the
 * user's privileges (symlinks resolved), and exports the job's variables.
 */
RS_EXPORT int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	char norm[RS_SPEC_MAX + 1], attempt[16];
	rs_err_t err;

	(void)ac;
	(void)av;
	if (!g.active || g.failed)
		return 0;
	if (g.ckpt[0] && rs_policy_check_ckpt_path(&g.pol, g.ckpt, &err)) {
		g.failed = 1;
		g.fail_err = err;
		slurm_error("resilience: job %u: %s", g.job_id, err.msg);
		return 0;
	}
	if (rs_spec_format(&g.spec, norm, sizeof(norm)) == 0)
		spank_setenv(sp, "RESILIENCE_SPEC", norm, 1);
	snprintf(attempt, sizeof(attempt), "%u", g.restart_count + 1);
	spank_setenv(sp, "RESILIENCE_ATTEMPT", attempt, 1);
	if (g.ckpt[0]) {
		spank_setenv(sp, "RESILIENCE_CKPT_DIR", g.ckpt, 1);
		spank_setenv(sp, "RESILIENCE_SCRATCH", g.scratch, 1);
	}
	return 0;
}

/*
 * In each task process, as the job's user, just before exec.  The only
 * place a job that asked for resilience and cannot get it is failed: with
 * the reason on the task's stderr, without touching the node's state.
 * Slurm ignores errors of `optional` plugins, so the task leaves itself,
 * exactly as slurmstepd would for a `required` one (_exit(1) before exec).
 */
RS_EXPORT int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	if (!g.active || !g.failed)
		return 0;
	fprintf(stderr, "resilience: error: %s\n", g.fail_err.msg);
	fflush(stderr);
	_exit(1);
}
