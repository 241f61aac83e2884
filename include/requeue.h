/*
 * requeue.h - the requeue policy: how did an attempt end, and what now.
 * Pure functions: the SPANK glue gathers the facts (wait status, Slurm's
 * job state, the ledger) and acts on the decision.
 */
#ifndef RS_REQUEUE_H
#define RS_REQUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "spec.h"

typedef enum rs_outcome {
	RS_OUTCOME_COMPLETED = 0, /* exit 0 */
	RS_OUTCOME_FAILED,        /* non-zero exit code */
	RS_OUTCOME_SIGNALED,      /* killed by a signal (not Slurm's) */
	RS_OUTCOME_TIMEOUT,       /* reached its time limit */
	RS_OUTCOME_CANCELLED,     /* scancel by a user or admin */
	RS_OUTCOME_PREEMPTED,     /* preempted */
	RS_OUTCOME_NODE_FAIL,     /* started, never recorded its end */
	RS_OUTCOME_REQUEUED,      /* Slurm requeued it (scontrol requeue,
				   * preemption in REQUEUE mode) */
	RS_OUTCOME_COUNT
} rs_outcome_t;

typedef enum rs_action {
	RS_ACTION_COMPLETED = 0,  /* succeeded: nothing to do */
	RS_ACTION_REQUEUED,       /* retry: uses one of `retries` */
	RS_ACTION_CONTINUED,      /* continuation: requeued, no retry used */
	RS_ACTION_HELD,           /* retries exhausted: requeued held */
	RS_ACTION_FAILED,         /* ends failed, not requeued */
	RS_ACTION_ENDED,          /* ends as Slurm says (cancelled, ...) */
	RS_ACTION_COUNT
} rs_action_t;

/* "completed", "failed", "signaled", "timeout", "cancelled", "preempted",
 * "node_fail", "requeued"; NULL if out of range.  rs_outcome_parse: -1 if unknown. */
const char *rs_outcome_name(rs_outcome_t o);
int rs_outcome_parse(const char *s);
/* "completed", "requeued", "continued", "held", "failed", "ended". */
const char *rs_action_name(rs_action_t a);
int rs_action_parse(const char *s);

/* What the glue knows when the batch script has ended. */
typedef struct rs_attempt_end {
	int wait_status;   /* raw status of the batch script (waitpid form) */
	int timed_out;     /* Slurm says TIMEOUT */
	int cancelled;     /* Slurm says CANCELLED (and not preempted) */
	int preempted;     /* Slurm says PREEMPTED */
	int requeued;      /* Slurm has already requeued the job */
} rs_attempt_end_t;

/* Classify; *exit_code / *sig get the exit code or signal (0 if none). */
rs_outcome_t rs_requeue_classify(const rs_attempt_end_t *end, int *exit_code,
				 int *sig);

typedef struct rs_decide_in {
	const rs_spec_t *spec;
	int64_t max_retries;       /* site caps, -1 = none */
	int64_t max_requeues;
	int64_t max_backoff;
	rs_outcome_t outcome;
	int exit_code;
	unsigned retries_used;     /* retries consumed by earlier attempts */
	unsigned requeues;         /* all requeues so far (Slurm restarts) */
	int warned_ckpt;           /* this attempt saved a checkpoint in answer
				    * to the warning (signal or lead) */
	int requeue_allowed;       /* job is requeueable (not --no-requeue) */
	int batch;                 /* a batch job (salloc/srun never requeue) */
} rs_decide_in_t;

typedef struct rs_decision {
	rs_action_t action;
	uint32_t delay;            /* seconds before the next attempt */
	int exhausted;             /* retries used up: page the operator */
	unsigned retries_left;     /* after this decision */
	char why[160];             /* one phrase: "exit 3 matches requeue_on" */
} rs_decision_t;

/* Decide what to do with an attempt that ended.  Never fails. */
void rs_requeue_decide(const rs_decide_in_t *in, rs_decision_t *out);

/* Backoff before retry number `retry` (1 = first retry): base *
 * factor^(retry-1), capped by max_backoff (-1 = no cap) and by one year. */
uint32_t rs_requeue_backoff(const rs_spec_t *spec, unsigned retry,
			    int64_t max_backoff);

/*
 * One-line summary for AdminComment and the slurmd log, complete (the
 * decision's reason included once), e.g.
 *   "resilience: attempt 3/4 failed exit=3, retry 2 of 3, requeued in 1m"
 * `allowed` is the number of attempts the budget allows so far (1 +
 * retries + continuations).  Returns 0, or -ENOSPC (buf then truncated).
 */
int rs_requeue_summary(unsigned attempt, unsigned allowed, rs_outcome_t o,
		       int exit_code, int sig, const rs_decision_t *d,
		       char *buf, size_t len);

/*
 * The retries a job has used, kept where its user cannot write: at the
 * end of AdminComment (only Slurm's operators and the plugin, as root,
 * may set it), as " [retries_used=N]".  The ledger in the checkpoint
 * folder is the user's and can be edited; the decision takes the larger
 * of the two counts (docs/security.md).
 * rs_requeue_tag_append: append the tag to buf (which holds the summary);
 * 0 or -ENOSPC.  rs_requeue_tag_parse: the count in an AdminComment
 * (NULL allowed); 0 and *used, or -ENOENT if there is no well-formed tag.
 */
int rs_requeue_tag_append(char *buf, size_t len, unsigned retries_used);
int rs_requeue_tag_parse(const char *comment, unsigned *used);

#endif
