/*
 * ledger.h - the attempt history of a job: the "attempts" array of a
 * manifest (CKPT_DIR/manifest.json when the job has ckpt=, else
 * STATE_DIR/<job id>/manifest.json).  Readers that do not know it ignore
 * it (include/manifest.h).
 *
 * Each attempt is one object:
 *   { "job_id": "42", "attempt": 2, "nodes": "n[1-3]", "start": 1700000000,
 *     "end": 1700000100, "outcome": "failed", "exit_code": 3, "signal": 0,
 *     "checkpoints": 1, "action": "requeued", "delay": 60,
 *     "retry": true, "retries_left": 1, "why": "retry 1 of 2" }
 * "end" and the fields after it are absent until the attempt ends.
 *
 * The rs_ledger_* functions on a json root are pure (no I/O).
 * Return convention: 0 / -errno with err filled.
 *
 * The manifest lives in a folder the job's user owns and may edit, and
 * root reads it: nothing here trusts it.  A number that is not a JSON
 * number, not finite (NaN, inf), or beyond +-2^53 (a negative size, a
 * negative or huge generation) counts as absent: 0 or the field's default.
 * No value read from the file is converted out of range or overflows
 * arithmetic.  Strings read from it reach a summary or a table only
 * escaped (text.h): printable ASCII, bounded.  A root that is not a JSON
 * object has no attempts (begin and end: -EINVAL).
 */
#ifndef RS_LEDGER_H
#define RS_LEDGER_H

#include <stdint.h>
#include <json-c/json.h>

#include "err.h"
#include "requeue.h"

typedef struct rs_ledger_sum {
	unsigned attempts;        /* attempts recorded for this job */
	unsigned retries_used;    /* attempts whose action used a retry */
	unsigned continuations;   /* attempts that continued */
	unsigned checkpoints;     /* generations of the given attempt whose
				   * reason answers the warning (signal, lead) */
	unsigned all_checkpoints; /* all generations of the given attempt,
				   * those `keep` pruned included (counted
				   * from the attempt's "gen_base") */
	int64_t last_gen;         /* newest generation of the given attempt */
	uint64_t last_bytes;      /* its size (bytes of data) */
	double last_seconds;      /* how long it took to save */
	char last_reason[16];     /* why: "signal", "lead", "periodic" */
} rs_ledger_sum_t;

/*
 * Record that `attempt` of job_id started at `start` on `nodes`.  Earlier
 * attempts of this job that never recorded an end are closed as node_fail
 * (Slurm requeued them itself); each such attempt uses a retry when
 * node_fail is in spec's requeue_on and retries remain.  Idempotent: a
 * second call for the same attempt changes nothing.  *node_fails (may be
 * NULL) gets the number of attempts closed that way.
 *
 * attempt == 1 starts a new history for job_id: every record with that
 * job_id is dropped first (a ledger left by an earlier job with the same
 * id after Slurm's job ids restarted, or by another job that used the
 * same checkpoint folder), so a new job never inherits another job's
 * retries or node failures.  Only an unended attempt-1 record with the
 * same start is kept: that is this attempt, recorded by an earlier call.
 * -EINVAL if job_id is NULL, attempt 0, or root not a JSON object.
 */
int rs_ledger_begin(json_object *root, const char *job_id, unsigned attempt,
		    const char *nodes, int64_t start, const rs_spec_t *spec,
		    int64_t max_retries, unsigned *node_fails, rs_err_t *err);

/* Everything the requeue policy needs about job_id, and the checkpoints
 * taken during `attempt` (from the manifest's "generations").
 * last_reason is escaped (printable ASCII, NUL-terminated, "..." if cut);
 * last_seconds is finite and >= 0; last_gen is -1 or 0..2^53. */
void rs_ledger_summarize(json_object *root, const char *job_id,
			 unsigned attempt, rs_ledger_sum_t *sum);

typedef struct rs_ledger_end {
	int64_t end;
	rs_outcome_t outcome;
	int exit_code, sig;
	const rs_decision_t *decision;
	unsigned checkpoints;
	const char *pending;    /* the decision is recorded but slurmctld has
				 * not taken it yet: why ("" or NULL: it has) */
} rs_ledger_end_t;

/* Close `attempt` of job_id (creating its record if begin was missed).
 * -EALREADY if it already has an end. */
int rs_ledger_end(json_object *root, const char *job_id, unsigned attempt,
		  const rs_ledger_end_t *end, rs_err_t *err);

/* The "attempts" array (created empty if absent).  Borrowed reference;
 * NULL if root is not a JSON object (or on allocation failure). */
json_object *rs_ledger_attempts(json_object *root);

/* Human table of the attempts (for `slurm-resilience status`): malloc'd,
 * caller frees.  NULL on allocation failure.  Every string from the
 * ledger is escaped (text.h): the table holds only printable ASCII and
 * its newlines, whatever the file holds. */
char *rs_ledger_table(json_object *root);

#endif
