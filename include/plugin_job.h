/*
 * plugin_job.h - what the plugin knows about the job, in one process that
 * loaded it (sbatch, srun, slurmstepd), and the modules that act on it in
 * slurmstepd.
 *
 * src/plugin.c holds the SPANK hooks, each a short list of calls into the
 * src/plugin_*.c modules below.  Those modules are linked into
 * resilience.so only (they call Slurm's API, whose symbols resolve from
 * the host process); the pure logic they use lives in the library
 * (spec, policy, requeue, ledger, ckpt, facts, rundir, ...).
 *
 * Who runs what, as whom, with which bound: docs/security.md.
 * Return convention: 0 / -errno with err filled.
 */
#ifndef RS_PLUGIN_JOB_H
#define RS_PLUGIN_JOB_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "err.h"
#include "event.h"
#include "facts.h"
#include "ledger.h"
#include "policy.h"
#include "requeue.h"
#include "spec.h"

/* Step ids with a special meaning (slurm.h names differ across versions). */
#define RS_BATCH_STEP  0xfffffffbu
#define RS_EXTERN_STEP 0xfffffffcu

typedef struct rs_job {
	rs_policy_t pol;
	int pol_ok;                 /* plugstack arguments parsed cleanly */
	rs_err_t pol_err;
	int opt_given;              /* --resilience seen in this process */
	rs_spec_t spec;             /* effective SPEC (user's or default) */
	int active;                 /* this job asked for resilience */
	int failed;                 /* asked, but cannot be honoured here */
	rs_err_t fail_err;
	char ckpt[PATH_MAX];        /* expanded paths */
	char scratch[PATH_MAX];
	char ledger_dir[PATH_MAX];  /* where the attempt history lives, or "" */
	int ledger_root;            /* the ledger is root's (state_dir) */
	uint32_t job_id, step_id;
	uid_t uid;
	gid_t gid;
	char job_str[32];           /* job id as the ledger keys it */
	rs_ledger_sum_t sum;        /* what the ledger said */
	int have_sum;
	unsigned trusted_retries;   /* retries used, from AdminComment */
	time_t start;
	rs_facts_t f;               /* the job's facts (facts.h) */
	int facts_fresh;            /* this step asked slurmctld */
	char privdir[PATH_MAX];     /* RUNDIR/u<uid> (rundir.h) */
	char ready[PATH_MAX];       /* RESILIENCE_CKPT_READY */
	char endfile[PATH_MAX];     /* the attempt's end time, kept current */
	int st_pipe[2];             /* the saver supervisor's status lines */
	char supervisor[PATH_MAX];  /* resilience-supervisor, or "" */
	int metrics_ok;             /* site metrics configured and usable */
	long restored_gen;          /* generation restored this attempt, -1 */
	rs_energy_sample_t energy0; /* RAPL counters at attempt start */
	int have_energy;
	int requeue_allowed;        /* not --no-requeue (slurmctld, at start) */
	rs_event_t ident;           /* the job's identity for metrics (the
				     * same load); job_id 0 if unknown */
} rs_job_t;

/* Mark the job as asked-for-but-impossible: it is failed from task_init
 * with this reason on its stderr (never an error that drains a node). */
void rs_job_fail(rs_job_t *j, const rs_err_t *why);

/* Bounds on work on user paths (site policy file_timeout/restore_timeout). */
int rs_job_file_timeout_ms(const rs_job_t *j);
int rs_job_restore_timeout_ms(const rs_job_t *j);

/* Whether this step's local task 0 saves this node's part (one saver per
 * node and job; docs/design.md). */
int rs_job_step_saves(const rs_job_t *j);

/* The cluster this node belongs to (slurmstepd's configuration, else the
 * step's environment; sp may be NULL).  0 if found. */
int rs_job_cluster(spank_t sp, char *buf, size_t len);

/* A program of ours: beside resilience.so (a build tree), else in dir
 * (where `make install` puts it); out gets "" if neither exists. */
void rs_job_find_helper(const char *name, const char *dir, char *out,
			size_t len);

/*
 * json-c, for a resilient job only.  resilience.so is not linked against
 * it: SPANK loads the plugin into every srun and slurmstepd, whether the
 * job wants resilience or not, and a NEEDED json-c cost each of them its
 * load (~0.3 ms a step, bench/steps.sh).  Slurm dlopens plugins RTLD_LAZY,
 * so the plugin's calls into json-c bind at their first call, by which
 * time this has put the library in the global scope.  Call before any
 * fork: children inherit it.
 */
int rs_job_load_jsonc(rs_err_t *err);

/* ---- plugin_ctld.c: slurmctld, one RPC per call, bounded by Slurm's
 * MessageTimeout ---- */

/* The job's facts from slurmctld into j->f (and j->trusted_retries from
 * AdminComment, j->requeue_allowed, j->ident).  0 / -1 (errno from
 * libslurm).  The only lookup of a plain attempt: its end needs none
 * unless the script was killed by a signal (rs_ctld_end_state). */
int rs_ctld_facts(rs_job_t *j);
/* How Slurm ended the attempt (timeout, cancel, preemption, requeue)
 * into end, and *requeue_allowed.  0 / -1 (errno). */
int rs_ctld_end_state(const rs_job_t *j, rs_attempt_end_t *end, int *requeue_allowed);
/* The job as an update names it: "ID", "ARRAY_ID_TASK" or "HET+OFFSET". */
const char *rs_ctld_job_name(const rs_job_t *j);
/* Requeue (hold: JOB_REQUEUE_HOLD); 0 / -1 (errno). */
int rs_ctld_requeue(const rs_job_t *j, int hold);

/* ---- plugin_prepare.c: paths and the user's folders ---- */

/* Expand the SPEC's paths for this job and node; default scratch. */
int rs_prepare_paths(rs_job_t *j, spank_t sp, rs_err_t *err);
/* As root (init_post_opt): the private folder in RUNDIR, state_dir. */
int rs_prepare_root(rs_job_t *j, rs_err_t *err);
/* As the user, in a bounded child: ckpt_roots, scratch (user_init). */
int rs_prepare_user(rs_job_t *j, rs_err_t *err);

/* ---- plugin_history.c: the attempt history (ledger.h) ---- */

/* Open this attempt (batch step, user_init).  Fills j->sum. */
int rs_history_begin(rs_job_t *j, const char *nodes, rs_err_t *err);
/* Re-read the summary (checkpoints taken since the attempt began). */
int rs_history_read(rs_job_t *j, rs_err_t *err);
/* Close the attempt; also drops the ready file and restore claims. */
int rs_history_end(rs_job_t *j, const rs_ledger_end_t *fin, rs_err_t *err);
/* Retries used so far, as the decision counts them: the larger of the
 * ledger's count and the one the user cannot edit (AdminComment); Slurm's
 * restart count without a ledger. */
unsigned rs_history_retries_used(const rs_job_t *j);
/* The job's retry budget under the site cap. */
unsigned rs_history_retry_budget(const rs_job_t *j);

/* ---- plugin_end.c: the end of an attempt ---- */

/* Batch step, task_exit: classify, decide, record (ledger, decision
 * spool), carry out (detached applier), report (metrics). */
void rs_end_attempt(rs_job_t *j, int wait_status);
/* Job epilog (any job, root): decisions still waiting on this node
 * (their applier was killed, or slurmctld was away) get a new applier. */
void rs_end_epilog(int ac, char **av);

/* ---- plugin_restore.c ---- */

/* Restore this node's part of the latest generation into scratch, once
 * per attempt and node; sets RESILIENCE_RESTORED_FROM only when this
 * node's scratch really holds it. */
void rs_restore_node(rs_job_t *j, spank_t sp);

/* ---- plugin_status.c: the saver's status pipe ---- */

/* Bounds on what task_exit reads from a status pipe (the job's user can
 * write to it too): bytes read, lines logged. */
#define RS_STATUS_MAX_BYTES (64 * 1024)
#define RS_STATUS_MAX_LINES 16
/* Drain what the saver wrote, within those bounds, into the slurmd log
 * (escaped), then close the pipe. */
void rs_status_drain(rs_job_t *j);

/* ---- plugin_poller.c: the attempt's end time for the supervisors ---- */

/* Write the end-time file (as the user: temp + rename). */
void rs_poller_write_end(const rs_job_t *j, time_t end);
/* Detached poller that follows `scontrol update TimeLimit`, one per
 * saving step, gone with it. */
void rs_poller_spawn(const rs_job_t *j);

/* ---- plugin_launch.c ---- */

/* Put the supervisor in front of this task (task_init, as the user). */
void rs_launch_supervisor(rs_job_t *j, spank_t sp);

#endif
