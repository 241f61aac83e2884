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

#include <slurm/slurm_errno.h>

#include "event.h"
#include "metrics.h"
#include "plugin_job.h"
#include "requeue.h"

/* What Slurm says about the job now; ev (may be NULL) gets the job's
 * identity for metrics. */
static int _job_state(const rs_job_t *j, rs_attempt_end_t *end,
		      int *requeue_allowed, int *batch, rs_event_t *ev)
{
	job_info_msg_t *msg;
	slurm_job_info_t *r = rs_ctld_load(j->job_id, &msg);
	uint32_t st;

	if (!r)
		return -1;
	st = r->job_state;
	/* scontrol requeue (or preemption in REQUEUE mode) leaves the job
	 * pending, or completing with the requeue flag, before we see it. */
	end->requeued = (st & JOB_STATE_BASE) == JOB_PENDING ||
			(st & (JOB_REQUEUE | JOB_REQUEUE_HOLD));
	end->timed_out = (st & JOB_STATE_BASE) == JOB_TIMEOUT;
	end->preempted = (st & JOB_STATE_BASE) == JOB_PREEMPTED;
	end->cancelled = (st & JOB_STATE_BASE) == JOB_CANCELLED;
	*requeue_allowed = r->requeue != 0;
	*batch = r->batch_flag != 0;
	if (ev) {
		struct passwd *pw = getpwuid(r->user_id);

		ev->cluster = strdup(j->pol.metrics.cluster ? j->pol.metrics.cluster
				     : r->cluster ? r->cluster : "unknown");
		ev->job_id = j->job_id;
		if (r->array_task_id != NO_VAL) {
			ev->array_job_id = r->array_job_id;
			ev->array_task_id = r->array_task_id;
		}
		ev->user = pw ? strdup(pw->pw_name) : NULL;
		ev->uid = r->user_id;
		ev->account = r->account ? strdup(r->account) : NULL;
		ev->partition = r->partition ? strdup(r->partition) : NULL;
		ev->qos = r->qos ? strdup(r->qos) : NULL;
		ev->job_name = r->name ? strdup(r->name) : NULL;
		ev->nodes = r->nodes ? strdup(r->nodes) : NULL;
		ev->num_nodes = r->num_nodes;
		ev->num_tasks = r->num_tasks;
		ev->num_cpus = r->num_cpus;
	}
	slurm_free_job_info_msg(msg);
	return 0;
}

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

static void _act(const rs_job_t *j, const rs_decision_t *d, rs_outcome_t o)
{
	int rc = 0;

	if (o == RS_OUTCOME_REQUEUED)
		return; /* Slurm did it */
	switch (d->action) {
	case RS_ACTION_REQUEUED:
	case RS_ACTION_CONTINUED:
		rc = rs_ctld_requeue(j, 0);
		if (!rc && d->delay)
			rs_ctld_begin_time(j, d->delay);
		break;
	case RS_ACTION_HELD:
		rc = rs_ctld_requeue(j, 1);
		break;
	default:
		return;
	}
	if (rc)
		slurm_error("resilience: job %u: requeue failed: %s", j->job_id,
			    slurm_strerror(errno));
}

void rs_end_attempt(rs_job_t *j, int wait_status)
{
	rs_attempt_end_t end = { 0, 0, 0, 0, 0 };
	rs_decide_in_t in;
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_event_t ev;
	char line[320];
	rs_outcome_t o;
	rs_err_t err;
	int exit_code, sig, requeue_allowed = 1, batch = 1;
	unsigned allowed;

	end.wait_status = wait_status;
	rs_event_init(&ev);
	if (_job_state(j, &end, &requeue_allowed, &batch,
		       j->metrics_ok ? &ev : NULL))
		slurm_error("resilience: job %u: cannot load job state: %s",
			    j->job_id, slurm_strerror(errno));
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

	fin.end = time(NULL);
	fin.outcome = o;
	fin.exit_code = exit_code;
	fin.sig = sig;
	fin.decision = &d;
	fin.checkpoints = j->sum.all_checkpoints;
	if (j->ledger_dir[0] && rs_history_end(j, &fin, &err))
		slurm_error("resilience: job %u: cannot record attempt %u in "
			    "%s: %s", j->job_id, j->f.restart_count + 1,
			    j->ledger_dir, err.msg);

	allowed = rs_history_retry_budget(j) + 1 +
		  (j->have_sum ? j->sum.continuations : 0) +
		  (d.action == RS_ACTION_CONTINUED);
	if (allowed < j->f.restart_count + 1)
		allowed = j->f.restart_count + 1;
	rs_requeue_summary(j->f.restart_count + 1, allowed, o, exit_code, sig,
			   &d, line, sizeof(line));
	slurm_info("%s (%s)", line, d.why);
	/* Requeue first: a job that hit its time limit is already "finished"
	 * for slurmctld and takes no update until it is pending again.
	 * Then a person reads why in scontrol/sacct, with the retry count
	 * the next attempt trusts; a completed or cancelled job needs no
	 * explanation. */
	_act(j, &d, o);
	if (d.action != RS_ACTION_COMPLETED && d.action != RS_ACTION_ENDED) {
		rs_requeue_tag_append(line, sizeof(line), in.retries_used +
				      (d.action == RS_ACTION_REQUEUED));
		rs_ctld_admin_comment(j, line);
	}
	if (j->metrics_ok && ev.job_id)
		_submit_metrics(j, &ev, o, exit_code, sig, &d, fin.end);
	rs_event_free(&ev);
}
