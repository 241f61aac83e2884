/*
 * plugin.c - the SPANK hooks.  Each says where it runs and is a short
 * list of calls into the modules (include/plugin_job.h lists them).
 *
 * Rules that keep the node safe (docs/design.md, docs/security.md):
 *  - No hook ever returns an error in a context where that could drain the
 *    node (slurmd, remote init/init_post_opt/exit).  A job that asked for
 *    resilience and cannot get it is failed from slurm_spank_task_init,
 *    with the reason on its stderr.
 *  - A job without --resilience (and no site default) returns from every
 *    hook after one flag test (job_epilog: one look at RUNDIR).
 *  - Every symbol is hidden except the plugin identity and the hooks: the
 *    plugin is loaded into sbatch/srun/slurmstepd, which have globals of
 *    their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/spank.h>

#include "plugin_job.h"
#include "plugin_submit.h"
#include "privsep.h"
#include "rundir.h"
#include "spec.h"

#define RS_EXPORT __attribute__((visibility("default")))

RS_EXPORT const char plugin_name[] = "resilience";
RS_EXPORT const char plugin_type[] = "spank";
RS_EXPORT const unsigned int plugin_version = SLURM_VERSION_NUMBER;

#if HAVE_SPANK_INIT_FAILURE_MODE
/* Slurm 25.11+: should slurm_spank_init of a `required` resilience.so
 * ever fail, fail the job rather than drain the node (the default).  It
 * never fails today; this keeps the rule "never drain a node" if it
 * does.  Older releases do not look the symbol up. */
RS_EXPORT int slurm_spank_init_failure_mode = ESPANK_JOB_FAILURE;
#endif

/* All plugin state: one per process that loads the plugin. */
static rs_job_t g;

static int _opt_cb(int val, const char *arg, int remote);

static struct spank_option rs_option = {
	"resilience", "SPEC",
	"Survive time limits, preemption and failures: checkpoint, requeue, "
	"report. --resilience=help prints the grammar.",
	1, 0, _opt_cb
};

/*
 * Option callback.  Runs in sbatch/salloc (allocator), srun (local) and
 * slurmstepd (remote, with the value the job carries).  Refusing here
 * makes sbatch exit non-zero before anything is queued; in remote context
 * it never refuses (that could drain the node): init_post_opt checks the
 * site policy again there, whatever the submit side did.
 */
static int _opt_cb(int val, const char *arg, int remote)
{
	rs_err_t err;
	int rc;

	(void)val;
	g.opt_given = 1;
	rc = rs_spec_parse(arg, &g.spec, &err);
	if (remote) {
		if (rc)
			rs_job_fail(&g, &err);
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
	if (rs_policy_check_spec(&g.pol, &g.spec, &err) ||
	    rs_spec_check_time_limit(&g.spec, rs_submit_time_limit(), &err)) {
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
	g.st_pipe[0] = g.st_pipe[1] = -1;
	g.restored_gen = -1;
	g.pol_ok = rs_policy_parse(ac, av, &g.pol, &g.pol_err) == 0;
	if (!g.pol_ok)
		slurm_error("resilience: plugstack.conf: bad argument for "
			    "resilience.so: %s", g.pol_err.msg);
	/* slurmd runs slurm_spank_init once at its start (S_CTX_SLURMD):
	 * one line in its log says which plugin and for which Slurm. */
	if (ctx == S_CTX_SLURMD)
		slurm_info("resilience: spank-resilience %s (built for Slurm "
			   "%d.%02d.%d)", RS_VERSION,
			   SLURM_VERSION_MAJOR(SLURM_VERSION_NUMBER),
			   SLURM_VERSION_MINOR(SLURM_VERSION_NUMBER),
			   SLURM_VERSION_MICRO(SLURM_VERSION_NUMBER));
	/* A job submitted from inside a job asks for resilience itself. */
	if (ctx == S_CTX_ALLOCATOR)
		rs_submit_forget_inherited();
	if (ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR ||
	    ctx == S_CTX_REMOTE) {
		spank_err_t rc = spank_option_register(sp, &rs_option);

		if (rc != ESPANK_SUCCESS)
			slurm_error("resilience: cannot register --resilience: "
				    "%s", spank_strerror(rc));
	}
	return 0;
}

/* The job's facts: the batch step asks slurmctld (it decides the
 * requeue: its facts must be exact), so does the first step of an
 * attempt on each node; later srun steps read what it kept (facts.h).
 * Slurm 22.05 never fills S_SLURM_RESTART_COUNT for the batch step. */
static void _facts(spank_t sp)
{
	char v[32], cluster[sizeof(g.f.cluster)], path[PATH_MAX];
	uint32_t restart = 0;
	rs_facts_t f;
	rs_err_t err;

	if (g.step_id != RS_BATCH_STEP &&
	    rs_job_cluster(sp, cluster, sizeof(cluster)) == 0) {
		/* The attempt from the step's environment (the batch
		 * script's SLURM_RESTART_COUNT, which srun passes on): if it
		 * is off, the file is not found and the step asks. */
		if (spank_getenv(sp, "SLURM_RESTART_COUNT", v, sizeof(v)) ==
		    ESPANK_SUCCESS)
			restart = (uint32_t)strtoul(v, NULL, 10);
		if (!rs_facts_path(RS_RUNDIR, cluster, g.job_id, restart, path,
				   sizeof(path)) &&
		    !rs_facts_load(path, 0, g.uid, restart, time(NULL), &f,
				   NULL) &&
		    !strcmp(f.cluster, cluster)) {
			g.f = f;
			return;
		}
	}
	if (rs_ctld_facts(&g) == 0) {
		g.facts_fresh = 1;
		g.f.uid = g.uid;
		if (rs_facts_store(RS_RUNDIR, g.job_id, &g.f, &err))
			slurm_debug("resilience: job %u: %s", g.job_id, err.msg);
		return;
	}
	slurm_error("resilience: job %u: cannot load the job's state: %s",
		    g.job_id, slurm_strerror(errno));
	if (spank_get_item(sp, S_SLURM_RESTART_COUNT, &g.f.restart_count) !=
	    ESPANK_SUCCESS)
		g.f.restart_count = 0;
}

/* Metrics are the batch step's: root-owned secret files are checked
 * here, as root; a bad one costs the job its metrics, never the job. */
static void _metrics_setup(void)
{
	char cli[PATH_MAX];
	rs_err_t err;

	if (rs_metrics_conf_check(&g.pol.metrics, &err))
		slurm_error("resilience: job %u: metrics disabled: %s",
			    g.job_id, err.msg);
	else
		g.metrics_ok = 1;
	/* The detached sender execs the CLI (libcurl lives there). */
	rs_job_find_helper("slurm-resilience", RS_BINDIR, cli, sizeof(cli));
	if (cli[0])
		g.pol.metrics.flush_cmd = strdup(cli);
	g.have_energy = !rs_event_energy_sample(NULL, &g.energy0, NULL);
}

/* The job's own groups for children as the user, as its tasks get them
 * (setgroups: no NSS lookup in slurmstepd). */
static void _groups(spank_t sp)
{
	gid_t *gids = NULL;
	int ngids = 0;

	if (spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &gids, &ngids) ==
	    ESPANK_SUCCESS && gids && ngids > 0)
		rs_privsep_set_groups(gids, ngids);
}

/* Whether this process serves a resilient job (remote context). */
static int _resilient(void)
{
	rs_err_t err;

	if (!g.opt_given) {
		if (!g.pol_ok || !g.pol.default_spec[0] ||
		    rs_spec_parse(g.pol.default_spec, &g.spec, &err))
			return 0;
	}
	return !g.spec.off;
}

/*
 * slurmstepd (remote), as root, after options are known; also sbatch,
 * salloc and srun.  Decides whether this job is resilient, enforces the
 * site policy on what slurmstepd received, learns the job's facts and
 * prepares root's side of its folders.  Never returns an error in remote
 * context.
 */
RS_EXPORT int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	rs_err_t err;
	char v[64];

	(void)ac;
	(void)av;
	if (spank_context() == S_CTX_ALLOCATOR && g.opt_given && !g.spec.off &&
	    g.spec.retries && (getenv("SBATCH_NO_REQUEUE") ||
				rs_submit_option("--no-requeue", 0, v, sizeof(v))))
		slurm_info("resilience: warning: the job is submitted with "
			   "--no-requeue, so retries=%u will not be used",
			   g.spec.retries);
	if (!spank_remote(sp) || !_resilient())
		return 0;
	g.active = 1;
	spank_get_item(sp, S_JOB_ID, &g.job_id);
	spank_get_item(sp, S_JOB_STEPID, &g.step_id);
	if (g.step_id == RS_EXTERN_STEP) {
		g.active = 0;
		return 0;
	}
	if (g.failed) {
		slurm_error("resilience: --resilience unusable on this node: %s",
			    g.fail_err.msg);
		return 0;
	}
	if (!g.pol_ok) {
		rs_err_set(&err, EINVAL, "site policy is misconfigured on this "
			   "node: %s", g.pol_err.msg);
		rs_job_fail(&g, &err);
		return 0;
	}
	/* The SPEC may have reached the node without sbatch's checks (the
	 * job's environment carries SPANK options): the site's caps hold
	 * here too. */
	if (rs_policy_check_spec(&g.pol, &g.spec, &err)) {
		rs_err_t why;

		rs_err_set(&why, EPERM, "--resilience refused by the site's "
			   "policy: %s", err.msg);
		rs_job_fail(&g, &why);
		return 0;
	}
	if (rs_job_load_jsonc(&err)) {
		rs_job_fail(&g, &err);
		slurm_error("resilience: job %u: %s", g.job_id, err.msg);
		return 0;
	}
	spank_get_item(sp, S_JOB_UID, &g.uid);
	spank_get_item(sp, S_JOB_GID, &g.gid);
	_groups(sp);
	_facts(sp);
	snprintf(g.job_str, sizeof(g.job_str), "%u", g.job_id);
	g.start = time(NULL);
	if (rs_prepare_paths(&g, sp, &err) || rs_prepare_root(&g, &err)) {
		rs_job_fail(&g, &err);
		return 0;
	}
	if (g.facts_fresh)
		rs_rundir_sweep(RS_RUNDIR, g.start);
	if (g.step_id == RS_BATCH_STEP && g.spec.metrics &&
	    (g.pol.metrics.url || g.pol.metrics.alert_url))
		_metrics_setup();
	return 0;
}

/* The job's variables for its tasks. */
static void _export(spank_t sp)
{
	char norm[RS_SPEC_MAX + 1], num[16];
	unsigned used = rs_history_retries_used(&g);
	unsigned budget = rs_history_retry_budget(&g);

	if (rs_spec_format(&g.spec, norm, sizeof(norm)) == 0)
		spank_setenv(sp, "RESILIENCE_SPEC", norm, 1);
	snprintf(num, sizeof(num), "%u", g.f.restart_count + 1);
	spank_setenv(sp, "RESILIENCE_ATTEMPT", num, 1);
	snprintf(num, sizeof(num), "%u", used < budget ? budget - used : 0);
	spank_setenv(sp, "RESILIENCE_RETRIES_LEFT", num, 1);
	if (g.ckpt[0]) {
		spank_setenv(sp, "RESILIENCE_CKPT_DIR", g.ckpt, 1);
		spank_setenv(sp, "RESILIENCE_SCRATCH", g.scratch, 1);
		spank_setenv(sp, "RESILIENCE_CKPT_READY", g.ready, 1);
	}
}

/*
 * slurmstepd, as the job's user (effective uid), before tasks fork.
 * The user's side of the paths (bounded child), the attempt's history
 * (batch step), the job's variables, restore, the supervisor.
 */
RS_EXPORT int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	rs_err_t err;

	(void)ac;
	(void)av;
	if (!g.active || g.failed)
		return 0;
	if (g.ckpt[0]) {
		if (rs_prepare_user(&g, &err)) {
			rs_job_fail(&g, &err);
			slurm_error("resilience: job %u: %s", g.job_id, err.msg);
			return 0;
		}
		/* The saver's status lines come back through a pipe that
		 * slurmstepd drains when the task ends: no file, no child. */
		if (rs_job_step_saves(&g) &&
		    pipe2(g.st_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
			slurm_error("resilience: job %u: status pipe: %s",
				    g.job_id, strerror(errno));
			g.st_pipe[0] = g.st_pipe[1] = -1;
		}
	}
	/* Only the batch step opens an attempt: srun steps inside the job
	 * inherit the batch script's RESILIENCE_* variables, and a job
	 * without a batch step (salloc, srun) is never requeued. */
	if (g.ledger_dir[0] && g.step_id == RS_BATCH_STEP) {
		char nodes[1024] = "";

		spank_getenv(sp, "SLURM_JOB_NODELIST", nodes, sizeof(nodes));
		if (rs_history_begin(&g, nodes, &err))
			slurm_error("resilience: job %u: attempt history in %s: "
				    "%s", g.job_id, g.ledger_dir, err.msg);
	}
	_export(sp);
	if (!g.ckpt[0])
		return 0;
	if (g.spec.restore && g.f.restart_count > 0)
		rs_restore_node(&g, sp);
	rs_job_find_helper("resilience-supervisor", RS_LIBEXECDIR,
			   g.supervisor, sizeof(g.supervisor));
	if (g.f.end_time && rs_job_step_saves(&g) &&
	    rs_spec_effective_lead(&g.spec, g.f.time_limit))
		rs_poller_spawn(&g);
	if (!g.supervisor[0]) {
		rs_err_set(&err, ENOENT, "resilience-supervisor not found beside "
			   "resilience.so nor in %s", RS_LIBEXECDIR);
		rs_job_fail(&g, &err);
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
	(void)ac;
	(void)av;
	if (!g.active)
		return 0;
	if (g.failed) {
		fprintf(stderr, "resilience: error: %s\n", g.fail_err.msg);
		fflush(stderr);
		_exit(1);
	}
	if (g.ckpt[0]) {
		if (g.st_pipe[0] >= 0)
			close(g.st_pipe[0]);
		rs_launch_supervisor(&g, sp);
	}
	return 0;
}

/*
 * slurmstepd, as root, when a task ends.  The saver's status lines go to
 * the slurmd log (bounded); for the batch script, the end of the attempt.
 */
RS_EXPORT int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
	int status = 0, local = -1;

	(void)ac;
	(void)av;
	if (!g.active || g.failed)
		return 0;
	spank_get_item(sp, S_TASK_ID, &local);
	if (g.ckpt[0] && local == 0)
		rs_status_drain(&g);
	if (g.step_id != RS_BATCH_STEP)
		return 0;
	spank_get_item(sp, S_TASK_EXIT_STATUS, &status);
	rs_end_attempt(&g, status);
	return 0;
}

/*
 * slurmd's epilog (root), on every node of the job, when it ends there
 * (also before a requeue).  The job's node-local files go: its facts, its
 * ready and end-time files.  Cheap for any job: one look at RUNDIR.
 */
RS_EXPORT int slurm_spank_job_epilog(spank_t sp, int ac, char **av)
{
	char cluster[64] = "";
	uint32_t job = 0;
	uid_t uid = (uid_t)-1;

	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_UID, &uid) != ESPANK_SUCCESS)
		return 0;
	rs_job_cluster(NULL, cluster, sizeof(cluster));
	rs_rundir_job_end(RS_RUNDIR, uid, cluster, job);
	rs_end_epilog(ac, av);
	return 0;
}
