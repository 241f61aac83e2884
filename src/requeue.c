/*
 * requeue.c - the requeue policy.  See requeue.h.
 *
 * Order of the rules matters and is the documented contract
 * (docs/requeue.md): success, then things that are never requeued
 * (cancelled, interactive, --no-requeue), then the site's total cap,
 * then continuation (a checkpoint was saved in answer to the warning and
 * the attempt then hit its limit or was preempted), then retries by cause.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "requeue.h"

static const char *const outcome_names[RS_OUTCOME_COUNT] = {
	"completed", "failed", "signaled", "timeout", "cancelled",
	"preempted", "node_fail", "requeued",
};

static const char *const action_names[RS_ACTION_COUNT] = {
	"completed", "requeued", "continued", "held", "failed", "ended",
};

const char *rs_outcome_name(rs_outcome_t o)
{
	return (unsigned)o < RS_OUTCOME_COUNT ? outcome_names[o] : NULL;
}

int rs_outcome_parse(const char *s)
{
	int i;

	for (i = 0; s && i < RS_OUTCOME_COUNT; i++)
		if (!strcmp(s, outcome_names[i]))
			return i;
	return -1;
}

const char *rs_action_name(rs_action_t a)
{
	return (unsigned)a < RS_ACTION_COUNT ? action_names[a] : NULL;
}

int rs_action_parse(const char *s)
{
	int i;

	for (i = 0; s && i < RS_ACTION_COUNT; i++)
		if (!strcmp(s, action_names[i]))
			return i;
	return -1;
}

rs_outcome_t rs_requeue_classify(const rs_attempt_end_t *end, int *exit_code,
				 int *sig)
{
	int st = end->wait_status;

	*exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 0;
	*sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
	/* Slurm's own verdicts first: at a time limit, preemption or scancel
	 * the script dies of Slurm's SIGTERM/SIGKILL, which says nothing. */
	if (end->requeued)
		return RS_OUTCOME_REQUEUED;
	if (end->preempted)
		return RS_OUTCOME_PREEMPTED;
	if (end->timed_out)
		return RS_OUTCOME_TIMEOUT;
	if (end->cancelled)
		return RS_OUTCOME_CANCELLED;
	if (*sig)
		return RS_OUTCOME_SIGNALED;
	if (*exit_code)
		return RS_OUTCOME_FAILED;
	return RS_OUTCOME_COMPLETED;
}

static unsigned _cause_of(rs_outcome_t o)
{
	switch (o) {
	case RS_OUTCOME_FAILED: return RS_CAUSE_EXIT;
	case RS_OUTCOME_SIGNALED: return RS_CAUSE_SIGNAL;
	case RS_OUTCOME_TIMEOUT: return RS_CAUSE_TIMEOUT;
	case RS_OUTCOME_NODE_FAIL: return RS_CAUSE_NODE_FAIL;
	default: return 0;
	}
}

uint32_t rs_requeue_backoff(const rs_spec_t *spec, unsigned retry,
			    int64_t max_backoff)
{
	double d = spec->backoff;
	const double year = 366.0 * 86400;
	unsigned i;

	for (i = 1; i < retry && d < year; i++)
		d = d * spec->backoff_factor_milli / 1000.0;
	if (d > year)
		d = year;
	if (max_backoff >= 0 && d > (double)max_backoff)
		d = (double)max_backoff;
	return (uint32_t)(d + 0.5);
}

static unsigned _budget(const rs_decide_in_t *in)
{
	unsigned r = in->spec->retries;

	if (in->max_retries >= 0 && r > in->max_retries)
		r = (unsigned)in->max_retries;
	return r;
}

void rs_requeue_decide(const rs_decide_in_t *in, rs_decision_t *out)
{
	unsigned budget = _budget(in), cause = _cause_of(in->outcome);

	memset(out, 0, sizeof(*out));
	out->retries_left = in->retries_used < budget
				    ? budget - in->retries_used : 0;
#define WHY(...) snprintf(out->why, sizeof(out->why), __VA_ARGS__)
	if (in->outcome == RS_OUTCOME_COMPLETED) {
		out->action = RS_ACTION_COMPLETED;
		WHY("completed");
		return;
	}
	if (in->outcome == RS_OUTCOME_REQUEUED) {
		/* Slurm (an admin, or preemption) requeued it already: no
		 * retry used, nothing for us to do. */
		out->action = RS_ACTION_CONTINUED;
		WHY("requeued by Slurm: no retry used");
		return;
	}
	if (in->outcome == RS_OUTCOME_CANCELLED) {
		out->action = RS_ACTION_ENDED;
		WHY("cancelled by a user or admin: never requeued");
		return;
	}
	if (!in->batch) {
		out->action = RS_ACTION_ENDED;
		WHY("interactive job: never requeued");
		return;
	}
	if (!in->requeue_allowed) {
		out->action = RS_ACTION_FAILED;
		WHY("submitted with --no-requeue");
		return;
	}
	if (in->max_requeues >= 0 && in->requeues >= in->max_requeues) {
		out->action = RS_ACTION_FAILED;
		WHY("site cap max_requeues=%lld reached",
		    (long long)in->max_requeues);
		return;
	}
	if (in->warned_ckpt && (in->outcome == RS_OUTCOME_TIMEOUT ||
				in->outcome == RS_OUTCOME_PREEMPTED)) {
		out->action = RS_ACTION_CONTINUED;
		WHY("checkpointed before %s: continues, no retry used",
		    in->outcome == RS_OUTCOME_TIMEOUT ? "its time limit"
						       : "preemption");
		return;
	}
	if (in->outcome == RS_OUTCOME_PREEMPTED) {
		/* Not the job's fault: run it again, without using a retry. */
		out->action = RS_ACTION_CONTINUED;
		WHY("preempted: requeued, no retry used");
		return;
	}
	if (!cause || !rs_spec_cause_matches(in->spec, cause, in->exit_code)) {
		out->action = RS_ACTION_FAILED;
		WHY("%s does not match requeue_on",
		    in->outcome == RS_OUTCOME_FAILED ? "exit code" :
		    rs_outcome_name(in->outcome));
		return;
	}
	if (budget == 0) {
		/* A job that asked for checkpoints but no retries is not
		 * "exhausted": it ends as it would have without us. */
		out->action = RS_ACTION_FAILED;
		WHY("no retries requested (retries=0)");
		return;
	}
	if (out->retries_left == 0) {
		out->exhausted = 1;
		out->action = in->spec->exhausted == RS_EXHAUSTED_HOLD
				      ? RS_ACTION_HELD : RS_ACTION_FAILED;
		WHY("retries exhausted (%u used)", in->retries_used);
		return;
	}
	out->action = RS_ACTION_REQUEUED;
	out->retries_left--;
	out->delay = rs_requeue_backoff(in->spec, in->retries_used + 1,
					in->max_backoff);
	WHY("retry %u of %u", in->retries_used + 1, budget);
#undef WHY
}

int rs_requeue_summary(unsigned attempt, unsigned allowed, rs_outcome_t o,
		       int exit_code, int sig, const rs_decision_t *d,
		       char *buf, size_t len)
{
	char detail[32] = "", tail[256];
	int n;

	if (o == RS_OUTCOME_FAILED)
		snprintf(detail, sizeof(detail), " exit=%d", exit_code);
	else if (o == RS_OUTCOME_SIGNALED)
		snprintf(detail, sizeof(detail), " signal=%d", sig);
	/* The line is complete: the reason is in it once (d->why), and a
	 * continuation says what really happened (a checkpoint before the
	 * limit, a preemption, a requeue by Slurm), never a checkpoint the
	 * attempt did not take. */
	switch (d->action) {
	case RS_ACTION_REQUEUED:
		if (d->delay) {
			char dur[32];

			rs_format_duration(d->delay, dur, sizeof(dur));
			snprintf(tail, sizeof(tail), "%s, requeued in %s",
				 d->why, dur);
		} else {
			snprintf(tail, sizeof(tail), "%s, requeued", d->why);
		}
		break;
	case RS_ACTION_HELD:
		snprintf(tail, sizeof(tail), "%s, held for an operator", d->why);
		break;
	case RS_ACTION_FAILED:
		snprintf(tail, sizeof(tail), "%s, not requeued", d->why);
		break;
	case RS_ACTION_COMPLETED:
		snprintf(tail, sizeof(tail), "done");
		break;
	default: /* continued, ended: d->why says it all */
		snprintf(tail, sizeof(tail), "%s", d->why);
	}
	n = snprintf(buf, len, "resilience: attempt %u/%u %s%s, %s", attempt,
		     allowed, rs_outcome_name(o), detail, tail);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

#define RS_TAG "[retries_used="

int rs_requeue_tag_append(char *buf, size_t len, unsigned retries_used)
{
	size_t n = strlen(buf);
	int w = snprintf(buf + n, len > n ? len - n : 0, " " RS_TAG "%u]",
			 retries_used);

	return w < 0 || n + (size_t)w >= len ? -ENOSPC : 0;
}

int rs_requeue_tag_parse(const char *comment, unsigned *used)
{
	const char *p, *last = NULL;
	unsigned long v;
	char *end;

	if (!comment)
		return -ENOENT;
	/* The last tag counts: an operator may have kept an old one in
	 * front of a comment of their own. */
	for (p = strstr(comment, RS_TAG); p; p = strstr(p + 1, RS_TAG))
		last = p;
	if (!last)
		return -ENOENT;
	p = last + strlen(RS_TAG);
	if (*p < '0' || *p > '9')
		return -ENOENT;
	errno = 0;
	v = strtoul(p, &end, 10);
	if (errno || *end != ']' || v > 1000000)
		return -ENOENT;
	*used = (unsigned)v;
	return 0;
}
