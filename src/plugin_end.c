/*
 * plugin_end.c - the end of an attempt, in the batch step's task_exit
 * (slurmstepd, root): how did it end (slurmctld), what now (requeue
 * policy), record it (ledger), act (requeue/hold), tell the person
 * (AdminComment) and report (metrics spool).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <slurm/slurm_errno.h>

#include "event.h"
#include "metrics.h"
#include "plugin_job.h"
#include "requeue.h"
#include "decision.h"
#include "privsep.h"
#include "text.h"

/* Spool this attempt's event (and the retries-exhausted alert) and let a
 * detached process deliver it: the job's end never waits for a receiver. */
static void _submit_metrics(rs_job_t *j, rs_event_t *ev, rs_outcome_t o,
			    int exit_code, int sig, const rs_decision_t *d,
			    time_t end)
{
	rs_energy_sample_t e1;
	rs_err_t err;

	ev->attempt = j->f.restart_count + 1;
	ev->restart_count = j->f.restart_count;
	ev->outcome = o;
	ev->exit_code = exit_code;
	ev->signal = sig;
	ev->action = d->action;
	ev->start_time = j->start;
	ev->end_time = end;
	ev->duration_seconds = difftime(end, j->start);
	ev->checkpoints = j->sum.all_checkpoints;
	ev->last_ckpt_generation = j->sum.last_gen;
	ev->last_ckpt_bytes = j->sum.last_bytes;
	ev->last_ckpt_seconds = j->sum.last_seconds;
	ev->last_ckpt_reason = j->sum.last_reason[0] ? strdup(j->sum.last_reason)
						     : NULL;
	ev->restored_from_generation = j->restored_gen;
	ev->ckpt_dir = j->ckpt[0] ? strdup(j->ckpt) : NULL;
	if (j->have_energy && !rs_event_energy_sample(NULL, &e1, NULL) &&
	    !rs_event_energy_joules(&j->energy0, &e1, &ev->energy_joules, NULL))
		ev->has_energy = 1;
	if (rs_metrics_submit(&j->pol.metrics, ev, d->exhausted, &err))
		slurm_error("resilience: job %u: metrics: %s", j->job_id, err.msg);
}

/* slurmctld did not answer: the script was killed by a signal, and only
 * the clock can tell a time limit (end time reached) from the rest, which
 * stay "killed by a signal".  Cancel and preemption need slurmctld, so
 * they seldom end an attempt while it is away. */
static void _guess_end(const rs_job_t *j, rs_attempt_end_t *end)
{
	slurm_error("resilience: job %u: slurmctld did not answer (%s): the "
		    "attempt's end is judged from the clock", j->job_id,
		    slurm_strerror(errno));
	if (j->f.end_time && time(NULL) + 5 >= j->f.end_time)
		end->timed_out = 1;
}

/* The folder of recorded decisions (decision.h). */
static void _decision_dir(const rs_policy_t *pol, char *dir, size_t len)
{
	char cluster[64] = "";

	rs_job_cluster(NULL, cluster, sizeof(cluster));
	if (rs_decision_dir(pol->metrics.spool_dir ? pol->metrics.spool_dir
			    : RS_METRICS_DEFAULT_SPOOL, cluster, dir, len))
		dir[0] = '\0';
}

/* Start the applier (detached): it carries out what waits in dir, and
 * keeps trying while slurmctld does not answer. */
static int _spawn_applier(const char *cli, const char *dir)
{
	char for_s[16];
	char *argv[] = { "slurm-resilience", "apply", "--dir", (char *)dir,
			 "--for", for_s, "--quiet", NULL };

	snprintf(for_s, sizeof(for_s), "%d", RS_DECISION_DEFAULT_TIMEOUT);
	return rs_privsep_spawn_detached(cli, argv, RS_DECISION_DEFAULT_TIMEOUT + 60);
}

/* Record the decision durably, then have it carried out: requeue or
 * hold, AdminComment, begin time.  Returns the word for the log:
 * "" (done, or nothing to do), or why it is still pending. */
static const char *_carry_out(rs_job_t *j, const rs_decision_t *d, rs_outcome_t o,
			      const char *comment, int ctld_down)
{
	char dir[PATH_MAX], name[96], cli[PATH_MAX];
	rs_pending_t p;
	rs_err_t err;
	int waited, rc;

	memset(&p, 0, sizeof(p));
	p.job_id = j->job_id;
	snprintf(p.job_str, sizeof(p.job_str), "%s", rs_ctld_job_name(j));
	p.restart = j->f.restart_count;
	p.action = d->action;
	p.delay = d->delay;
	/* Slurm requeued it itself: only the AdminComment is left. */
	p.requeue_done = o == RS_OUTCOME_REQUEUED;
	p.deadline = (int64_t)time(NULL) + RS_DECISION_DEFAULT_TIMEOUT;
	if (comment)
		rs_text_escape_str(p.comment, sizeof(p.comment), comment);
	if (p.requeue_done || !rs_pending_requeues(&p))
		p.delay = 0;
	if (!p.comment[0] && (p.requeue_done || !rs_pending_requeues(&p)))
		return "";
	_decision_dir(&j->pol, dir, sizeof(dir));
	rs_job_find_helper("slurm-resilience", RS_BINDIR, cli, sizeof(cli));
	if (!dir[0] || rs_decision_record(dir, &p, name, sizeof(name), &err)) {
		/* The node's spool is broken: the requeue (or hold) once, now,
		 * without AdminComment or delay; the ledger keeps the count. */
		slurm_error("resilience: job %u: decision NOT recorded (%s): requeue "
			    "or hold sent once, now; no AdminComment, no delay", j->job_id,
			    dir[0] ? err.msg : "spool_dir too long");
		rc = rs_pending_requeues(&p) && !p.requeue_done
			     ? rs_ctld_requeue(j, p.action == RS_ACTION_HELD) : 0;
		return rc ? "failed" : "";
	}
	if (!cli[0] || _spawn_applier(cli, dir)) {
		slurm_error("resilience: job %u: decision recorded in %s, but its applier "
			    "did not start; the next job end or flush on this node carries "
			    "it out", j->job_id, dir);
		return "pending (applier not started)";
	}
	/* Only to say in the log whether it holds already: the decision is
	 * durable, the applier goes on without us.  Not at all when
	 * slurmctld just did not answer. */
	for (waited = 0; !ctld_down && waited < RS_DECISION_WAIT_MS; waited += 20) {
		if (!rs_decision_waiting(dir, name))
			return "";
		usleep(20000);
	}
	return "pending (controller unreachable)";
}

void rs_end_attempt(rs_job_t *j, int wait_status)
{
	rs_attempt_end_t end = { 0, 0, 0, 0, 0 };
	rs_decide_in_t in;
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_event_t ev;
	char line[320], comment[RS_DECISION_COMMENT_MAX], pend[96] = "";
	const char *pending;
	rs_outcome_t o;
	rs_err_t err;
	int exit_code, sig, requeue_allowed = 1, batch = 1; /* the batch step */
	int ctld_down = 0;
	unsigned allowed;
	struct timespec t0, t1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	end.wait_status = wait_status;
	/* The identity came with the attempt's one lookup, at its start. */
	ev = j->ident;
	rs_event_init(&j->ident);
	if (j->facts_fresh)
		requeue_allowed = j->requeue_allowed;
	/* An exit code needs no question to slurmctld; a signal may be
	 * Slurm's (time limit, scancel, preemption, requeue). */
	if (WIFSIGNALED(wait_status) &&
	    rs_ctld_end_state(j, &end, &requeue_allowed)) {
		_guess_end(j, &end);
		ctld_down = 1;
	}
	o = rs_requeue_classify(&end, &exit_code, &sig);

	/* Checkpoints taken during this attempt: re-read, the supervisor
	 * saved them after the attempt began. */
	memset(&in, 0, sizeof(in));
	if (j->ledger_dir[0] && rs_history_read(j, &err) == 0)
		in.warned_ckpt = j->sum.checkpoints > 0;
	in.spec = &j->spec;
	in.max_retries = j->pol.max_retries;
	in.max_requeues = j->pol.max_requeues;
	in.max_backoff = j->pol.max_backoff;
	in.outcome = o;
	in.exit_code = exit_code;
	in.retries_used = rs_history_retries_used(j);
	in.requeues = j->f.restart_count;
	in.requeue_allowed = requeue_allowed;
	in.batch = batch;
	rs_requeue_decide(&in, &d);

	allowed = rs_history_retry_budget(j) + 1 +
		  (j->have_sum ? j->sum.continuations : 0) +
		  (d.action == RS_ACTION_CONTINUED);
	if (allowed < j->f.restart_count + 1)
		allowed = j->f.restart_count + 1;
	rs_requeue_summary(j->f.restart_count + 1, allowed, o, exit_code, sig,
			   &d, line, sizeof(line));
	/* The AdminComment: why, for a person (scontrol/sacct), with the
	 * retry count the next attempt trusts; a completed or cancelled job
	 * needs no explanation.  It is set after the requeue: a job that hit
	 * its time limit takes no update until it is pending again. */
	snprintf(comment, sizeof(comment), "%s", line);
	if (d.action != RS_ACTION_COMPLETED && d.action != RS_ACTION_ENDED)
		rs_requeue_tag_append(comment, sizeof(comment), in.retries_used +
				      (d.action == RS_ACTION_REQUEUED));
	else
		comment[0] = '\0';
	/* Recorded before any RPC; carried out until it holds. */
	pending = _carry_out(j, &d, o, comment, ctld_down);
	if (*pending)
		snprintf(pend, sizeof(pend), "%s %s",
			 d.action == RS_ACTION_HELD ? "hold"
			 : (d.action == RS_ACTION_REQUEUED ||
			    d.action == RS_ACTION_CONTINUED) && o != RS_OUTCOME_REQUEUED
				 ? "requeue" : "AdminComment",
			 pending);
	/* The history, with what is still pending. */
	fin.end = time(NULL);
	fin.outcome = o;
	fin.exit_code = exit_code;
	fin.sig = sig;
	fin.decision = &d;
	fin.checkpoints = j->sum.all_checkpoints;
	fin.pending = pend;
	if (j->ledger_dir[0] && rs_history_end(j, &fin, &err))
		slurm_error("resilience: job %u: cannot record attempt %u in "
			    "%s: %s", j->job_id, j->f.restart_count + 1,
			    j->ledger_dir, err.msg);

	/* The line already says why (rs_requeue_summary). */
	if (pend[0])
		slurm_info("%s; %s", line, pend);
	else
		slurm_info("%s", line);
	if (j->metrics_ok && ev.job_id)
		_submit_metrics(j, &ev, o, exit_code, sig, &d, fin.end);
	rs_event_free(&ev);
	/* The hook's budget (docs/performance.md): say when it ran long. */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (ms > 1000)
		slurm_info("resilience: job %u: end of attempt took %ld ms", j->job_id, ms);
}

void rs_end_epilog(int ac, char **av)
{
	char dir[PATH_MAX], cli[PATH_MAX];
	rs_policy_t pol;
	rs_err_t err;

	rs_policy_defaults(&pol);
	if (rs_policy_parse(ac, av, &pol, &err) == 0 &&
	    (_decision_dir(&pol, dir, sizeof(dir)), dir[0]) &&
	    rs_decision_count(dir) > 0) {
		rs_job_find_helper("slurm-resilience", RS_BINDIR, cli, sizeof(cli));
		if (cli[0] && _spawn_applier(cli, dir))
			slurm_error("resilience: decisions wait in %s, and their "
				    "applier did not start", dir);
	}
	rs_policy_free(&pol);
}
