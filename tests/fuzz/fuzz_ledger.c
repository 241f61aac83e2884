/* libFuzzer target: the attempt ledger on a manifest the job's user wrote
 * (root reads it in slurmstepd and in `slurm-resilience status`).  Beyond
 * "no crash, no UB" (NaN, 1e300, huge integers, wrong types): the summary
 * and the table hold only printable ASCII (and the table's newlines), and
 * attempt 1 leaves exactly one record of its job. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void _check_table(json_object *root)
{
	char *t = rs_ledger_table(root);

	if (!t)
		abort();
	for (const unsigned char *p = (const unsigned char *)t; *p; p++)
		if (*p != '\n' && (*p < 0x20 || *p > 0x7e))
			abort();
	free(t);
}

static void _check_sum(json_object *root, const char *job, unsigned attempt)
{
	rs_ledger_sum_t sum;

	rs_ledger_summarize(root, job, attempt, &sum);
	if (!rs_text_is_printable(sum.last_reason) ||
	    strnlen(sum.last_reason, sizeof(sum.last_reason)) >= sizeof(sum.last_reason))
		abort();
	if (!(sum.last_seconds >= 0) || sum.last_gen < -1)
		abort();
	if (sum.checkpoints > sum.all_checkpoints ||
	    sum.retries_used > sum.attempts || sum.continuations > sum.attempts)
		abort();
}

static size_t _records(json_object *root, const char *job)
{
	json_object *arr = rs_ledger_attempts(root), *v;
	size_t n = 0;

	for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
		if (json_object_object_get_ex(json_object_array_get_idx(arr, i),
					      "job_id", &v) &&
		    json_object_is_type(v, json_type_string) &&
		    !strcmp(json_object_get_string(v), job))
			n++;
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_tokener *tok = json_tokener_new();
	json_object *root;
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_spec_t spec;
	rs_err_t e;
	unsigned nf;

	if (!tok)
		return 0;
	root = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!root)
		return 0;
	if (rs_spec_parse("retries=2,requeue_on=node_fail", &spec, NULL))
		abort();
	memset(&d, 0, sizeof(d));
	d.action = RS_ACTION_REQUEUED;
	d.retries_left = 1;
	strcpy(d.why, "exit 3 matches requeue_on");
	fin = (rs_ledger_end_t){ 1700000100, RS_OUTCOME_FAILED, 3, 0, &d, 1, size & 1 ? "requeue pending (controller unreachable)" : NULL };

	_check_sum(root, "42", 1);
	_check_sum(root, "42", 2);
	_check_table(root);
	if (rs_ledger_begin(root, "42", 2, "n[1-2]", 1700000000, &spec, 1, &nf, &e) == 0) {
		_check_sum(root, "42", 2);
		rs_ledger_end(root, "42", 2, &fin, &e);
		_check_sum(root, "42", 2);
		_check_table(root);
	}
	if (rs_ledger_begin(root, "42", 1, "n1", 1700000200, &spec, -1, &nf, &e) == 0) {
		if (_records(root, "42") != 1)
			abort();
		_check_sum(root, "42", 1);
		if (rs_ledger_end(root, "42", 1, &fin, &e) != 0)
			abort();
		_check_table(root);
	} else if (json_object_is_type(root, json_type_object)) {
		abort();
	}
	json_object_put(root);
	return 0;
}
