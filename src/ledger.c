/* ledger.c - the attempt history.  See ledger.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"

json_object *rs_ledger_attempts(json_object *root)
{
	json_object *a = NULL;

	if (!json_object_object_get_ex(root, "attempts", &a) ||
	    !json_object_is_type(a, json_type_array)) {
		a = json_object_new_array();
		json_object_object_add(root, "attempts", a);
	}
	return a;
}

static const char *_str(json_object *o, const char *k)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t _int(json_object *o, const char *k, int64_t dflt)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !(json_object_is_type(v, json_type_int) ||
	      json_object_is_type(v, json_type_boolean)))
		return dflt;
	return json_object_get_int64(v);
}

static int _has(json_object *o, const char *k)
{
	return json_object_object_get_ex(o, k, NULL);
}

static int _is_job(json_object *o, const char *job_id)
{
	const char *j = _str(o, "job_id");

	return j && job_id && !strcmp(j, job_id);
}

static json_object *_find(json_object *arr, const char *job_id,
			  unsigned attempt)
{
	size_t i, n = json_object_array_length(arr);

	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (_is_job(o, job_id) && _int(o, "attempt", 0) == attempt)
			return o;
	}
	return NULL;
}

static unsigned _retries_used(json_object *arr, const char *job_id)
{
	size_t i, n = json_object_array_length(arr);
	unsigned used = 0;

	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (_is_job(o, job_id) && _int(o, "retry", 0))
			used++;
	}
	return used;
}

int rs_ledger_begin(json_object *root, const char *job_id, unsigned attempt,
		    const char *nodes, int64_t start, const rs_spec_t *spec,
		    int64_t max_retries, unsigned *node_fails, rs_err_t *err)
{
	json_object *arr, *rec;
	size_t i, n;
	unsigned closed = 0, budget = spec->retries;

	if (!job_id || !attempt)
		return rs_err_set(err, EINVAL, "ledger: no job id or attempt");
	if (max_retries >= 0 && budget > max_retries)
		budget = (unsigned)max_retries;
	arr = rs_ledger_attempts(root);
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		int64_t a = _int(o, "attempt", 0);
		unsigned used;
		int retry;

		if (!_is_job(o, job_id) || a >= attempt || _has(o, "end"))
			continue;
		/* Started, never ended: the node (or slurmstepd) died and
		 * Slurm requeued the job by itself. */
		used = _retries_used(arr, job_id);
		retry = rs_spec_cause_matches(spec, RS_CAUSE_NODE_FAIL, 0) &&
			used < budget;
		json_object_object_add(o, "end", json_object_new_int64(start));
		json_object_object_add(o, "outcome",
				       json_object_new_string("node_fail"));
		json_object_object_add(o, "action", json_object_new_string(
			retry ? "requeued" : "continued"));
		json_object_object_add(o, "retry", json_object_new_boolean(retry));
		json_object_object_add(o, "retries_left", json_object_new_int64(
			budget - used - (retry ? 1 : 0)));
		json_object_object_add(o, "why", json_object_new_string(
			"never recorded its end: requeued by Slurm after a "
			"node failure"));
		closed++;
	}
	if (node_fails)
		*node_fails = closed;
	if (_find(arr, job_id, attempt))
		return 0;
	rec = json_object_new_object();
	json_object_object_add(rec, "job_id", json_object_new_string(job_id));
	json_object_object_add(rec, "attempt", json_object_new_int64(attempt));
	json_object_object_add(rec, "nodes",
			       json_object_new_string(nodes ? nodes : ""));
	json_object_object_add(rec, "start", json_object_new_int64(start));
	json_object_array_add(arr, rec);
	return 0;
}

void rs_ledger_summarize(json_object *root, const char *job_id,
			 unsigned attempt, rs_ledger_sum_t *sum)
{
	json_object *arr = rs_ledger_attempts(root), *gens = NULL;
	size_t i, n = json_object_array_length(arr);

	memset(sum, 0, sizeof(*sum));
	sum->last_gen = -1;
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		const char *act = _str(o, "action");

		if (!_is_job(o, job_id))
			continue;
		sum->attempts++;
		if (_int(o, "retry", 0))
			sum->retries_used++;
		if (act && !strcmp(act, "continued"))
			sum->continuations++;
	}
	if (!json_object_object_get_ex(root, "generations", &gens) ||
	    !json_object_is_type(gens, json_type_array))
		return;
	n = json_object_array_length(gens);
	for (i = 0; i < n; i++) {
		json_object *g = json_object_array_get_idx(gens, i);
		const char *why = _str(g, "reason");

		if (!_is_job(g, job_id) || _int(g, "attempt", 0) != attempt)
			continue;
		sum->all_checkpoints++;
		if (why && (!strcmp(why, "signal") || !strcmp(why, "lead")))
			sum->checkpoints++;
		if (_int(g, "gen", -1) > sum->last_gen) {
			json_object *secs = NULL;

			sum->last_gen = _int(g, "gen", -1);
			sum->last_bytes = (uint64_t)_int(g, "bytes", 0);
			snprintf(sum->last_reason, sizeof(sum->last_reason),
				 "%s", why ? why : "");
			sum->last_seconds =
				json_object_object_get_ex(g, "seconds", &secs)
					? json_object_get_double(secs) : 0;
		}
	}
}

int rs_ledger_end(json_object *root, const char *job_id, unsigned attempt,
		  const rs_ledger_end_t *end, rs_err_t *err)
{
	json_object *arr = rs_ledger_attempts(root);
	json_object *rec = _find(arr, job_id, attempt);
	const rs_decision_t *d = end->decision;

	if (!rec) {
		rec = json_object_new_object();
		json_object_object_add(rec, "job_id",
				       json_object_new_string(job_id));
		json_object_object_add(rec, "attempt",
				       json_object_new_int64(attempt));
		json_object_array_add(arr, rec);
	}
	if (_has(rec, "end"))
		return rs_err_set(err, EALREADY,
				  "ledger: attempt %u of job %s already ended",
				  attempt, job_id);
	json_object_object_add(rec, "end", json_object_new_int64(end->end));
	json_object_object_add(rec, "outcome", json_object_new_string(
		rs_outcome_name(end->outcome)));
	json_object_object_add(rec, "exit_code",
			       json_object_new_int64(end->exit_code));
	json_object_object_add(rec, "signal", json_object_new_int64(end->sig));
	json_object_object_add(rec, "checkpoints",
			       json_object_new_int64(end->checkpoints));
	json_object_object_add(rec, "action", json_object_new_string(
		rs_action_name(d->action)));
	json_object_object_add(rec, "delay", json_object_new_int64(d->delay));
	json_object_object_add(rec, "retry", json_object_new_boolean(
		d->action == RS_ACTION_REQUEUED));
	json_object_object_add(rec, "exhausted",
			       json_object_new_boolean(d->exhausted));
	json_object_object_add(rec, "retries_left",
			       json_object_new_int64(d->retries_left));
	json_object_object_add(rec, "why", json_object_new_string(d->why));
	return 0;
}

static void _fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !localtime_r(&tt, &tm)) {
		snprintf(buf, len, "-");
		return;
	}
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

char *rs_ledger_table(json_object *root)
{
	json_object *arr = rs_ledger_attempts(root);
	size_t i, n = json_object_array_length(arr);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	fprintf(f, "%-10s %7s %-19s %8s %-10s %-9s %5s %-10s %7s  %s\n", "JOB",
		"ATTEMPT", "START", "SECONDS", "OUTCOME", "DETAIL", "CKPTS",
		"ACTION", "RETRIES", "WHY");
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		char start[32], detail[24] = "-", secs[16] = "-", left[16] = "-";
		const char *outcome = _str(o, "outcome");
		int64_t s = _int(o, "start", 0), e = _int(o, "end", 0);

		_fmt_time(s, start, sizeof(start));
		if (e && s)
			snprintf(secs, sizeof(secs), "%lld", (long long)(e - s));
		if (_int(o, "exit_code", 0))
			snprintf(detail, sizeof(detail), "exit=%lld",
				 (long long)_int(o, "exit_code", 0));
		else if (_int(o, "signal", 0))
			snprintf(detail, sizeof(detail), "signal=%lld",
				 (long long)_int(o, "signal", 0));
		if (_has(o, "retries_left"))
			snprintf(left, sizeof(left), "%lld",
				 (long long)_int(o, "retries_left", 0));
		fprintf(f, "%-10s %7lld %-19s %8s %-10s %-9s %5lld %-10s %7s  %s\n",
			_str(o, "job_id") ? _str(o, "job_id") : "-",
			(long long)_int(o, "attempt", 0), start, secs,
			outcome ? outcome : "running", detail,
			(long long)_int(o, "checkpoints", 0),
			_str(o, "action") ? _str(o, "action") : "-", left,
			_str(o, "why") ? _str(o, "why") : "");
	}
	fclose(f);
	return buf;
}
