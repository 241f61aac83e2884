/* ledger.c - the attempt history.  See ledger.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger.h"
#include "manifest.h"
#include "text.h"

json_object *rs_ledger_attempts(json_object *root)
{
	json_object *a = NULL;

	if (!root || !json_object_is_type(root, json_type_object))
		return NULL;
	if (!json_object_object_get_ex(root, "attempts", &a) ||
	    !json_object_is_type(a, json_type_array)) {
		a = json_object_new_array();
		if (!a || json_object_object_add(root, "attempts", a)) {
			json_object_put(a);
			return NULL;
		}
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

/* Times, counts, codes: anything a real ledger holds fits in +-2^53. */
#define NUM_MAX RS_MANIFEST_NUM_MAX

static int64_t _num(json_object *o, const char *k, int64_t dflt, int64_t lo,
		    int64_t hi)
{
	return rs_manifest_num(o, k, dflt, lo, hi);
}

static int64_t _int(json_object *o, const char *k, int64_t dflt)
{
	return _num(o, k, dflt, -NUM_MAX, NUM_MAX);
}

/* A duration in seconds from the ledger: finite, 0..NUM_MAX, else 0. */
static double _seconds(json_object *o, const char *k)
{
	return rs_manifest_seconds(o, k, (double)NUM_MAX);
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

/* Attempt 1 of job_id begins: whatever the ledger holds for that job id
 * is someone else's history (job ids restart; another job used this
 * folder), except this very attempt recorded by an earlier call. */
static void _drop_stale(json_object *arr, const char *job_id, int64_t start)
{
	size_t i, n = json_object_array_length(arr), keep = n;

	for (i = 0; i < n && keep == n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);

		if (_is_job(o, job_id) && _int(o, "attempt", 0) == 1 &&
		    !_has(o, "end") && _int(o, "start", 0) == start)
			keep = i;
	}
	for (i = n; i-- > 0;)
		if (i != keep && _is_job(json_object_array_get_idx(arr, i), job_id))
			json_object_array_del_idx(arr, i, 1);
}

int rs_ledger_begin(json_object *root, const char *job_id, unsigned attempt,
		    const char *nodes, int64_t start, const rs_spec_t *spec,
		    int64_t max_retries, unsigned *node_fails, rs_err_t *err)
{
	json_object *arr, *rec;
	size_t i, n;
	unsigned closed = 0, budget = spec->retries;

	if (node_fails)
		*node_fails = 0;
	if (!job_id || !attempt)
		return rs_err_set(err, EINVAL, "ledger: no job id or attempt");
	if (max_retries >= 0 && budget > max_retries)
		budget = (unsigned)max_retries;
	arr = rs_ledger_attempts(root);
	if (!arr)
		return rs_err_set(err, EINVAL, "ledger: the manifest is not a "
				  "JSON object");
	if (attempt == 1)
		_drop_stale(arr, job_id, start);
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
		/* used may exceed budget (the site lowered max_retries). */
		json_object_object_add(o, "retries_left", json_object_new_int64(
			used >= budget ? 0 : (int64_t)budget - used - (retry ? 1 : 0)));
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
	/* The first generation number this attempt can get: with it the
	 * summary counts checkpoints that `keep` pruned since. */
	json_object_object_add(rec, "gen_base", json_object_new_int64(
		_num(root, "next_gen", 1, 1, NUM_MAX)));
	json_object_array_add(arr, rec);
	return 0;
}

void rs_ledger_summarize(json_object *root, const char *job_id,
			 unsigned attempt, rs_ledger_sum_t *sum)
{
	json_object *arr = rs_ledger_attempts(root), *gens = NULL, *me = NULL;
	size_t i, n = arr ? json_object_array_length(arr) : 0;
	unsigned others = 0;

	memset(sum, 0, sizeof(*sum));
	sum->last_gen = -1;
	if (!arr)
		return;
	for (i = 0; i < n; i++) {
		json_object *o = json_object_array_get_idx(arr, i);
		const char *act = _str(o, "action");

		if (!_is_job(o, job_id))
			continue;
		if (_int(o, "attempt", 0) == attempt)
			me = o;
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

		if (!_is_job(g, job_id) || _int(g, "attempt", 0) != attempt) {
			others++;
			continue;
		}
		sum->all_checkpoints++;
		if (why && (!strcmp(why, "signal") || !strcmp(why, "lead")))
			sum->checkpoints++;
		if (_num(g, "gen", -1, 0, NUM_MAX) > sum->last_gen) {
			sum->last_gen = _num(g, "gen", -1, 0, NUM_MAX);
			sum->last_bytes = (uint64_t)_num(g, "bytes", 0, 0,
							 INT64_MAX - 1);
			/* The summary goes to a log line and an event:
			 * printable, bounded. */
			rs_text_escape_str(sum->last_reason,
					   sizeof(sum->last_reason), why);
			sum->last_seconds = _seconds(g, "seconds");
		}
	}
	/* `keep` prunes the oldest records first: this attempt lost some
	 * only if every record left is its own.  Generation numbers are
	 * consecutive (a save that crashed before its commit burns one), so
	 * those since gen_base are this attempt's. */
	if (!others && me && _has(me, "gen_base") && sum->last_gen >= 0) {
		int64_t base = _num(me, "gen_base", -1, 1, NUM_MAX);

		if (base > 0 && sum->last_gen >= base &&
		    sum->last_gen - base + 1 > sum->all_checkpoints &&
		    sum->last_gen - base + 1 <= UINT32_MAX)
			sum->all_checkpoints = (unsigned)(sum->last_gen - base + 1);
	}
}

int rs_ledger_end(json_object *root, const char *job_id, unsigned attempt,
		  const rs_ledger_end_t *end, rs_err_t *err)
{
	json_object *arr = rs_ledger_attempts(root);
	json_object *rec;
	const rs_decision_t *d = end->decision;

	if (!job_id || !attempt || !d)
		return rs_err_set(err, EINVAL, "ledger: no job id, attempt or "
				  "decision");
	if (!arr)
		return rs_err_set(err, EINVAL, "ledger: the manifest is not a "
				  "JSON object");
	rec = _find(arr, job_id, attempt);
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
	if (end->pending && end->pending[0])
		json_object_object_add(rec, "pending", json_object_new_string(end->pending));
	return 0;
}

static void _fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	/* Up to the end of year 9999: the column is 19 wide. */
	if (t <= 0 || t > 253402300799LL || !localtime_r(&tt, &tm) ||
	    !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "-");
}

/* String k of o for a terminal: escaped, bounded; dflt if absent. */
static const char *_show(json_object *o, const char *k, const char *dflt,
			 char *buf, size_t len)
{
	const char *v = _str(o, k);

	return v ? rs_text_escape_str(buf, len, v) : dflt;
}

/*
 * Everything printed comes from a file the job's user can write: strings
 * are escaped (no terminal escape sequence or forged line reaches the
 * reader's terminal) and cut to a column's worth, numbers are those _int()
 * accepts.
 */
char *rs_ledger_table(json_object *root)
{
	json_object *arr = rs_ledger_attempts(root);
	size_t i, n = arr ? json_object_array_length(arr) : 0;
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
		char start[32], detail[32] = "-", secs[24] = "-", left[24] = "-";
		char job[64], outcome[32], action[32], why[256], pend[96];
		int64_t s = _int(o, "start", 0), e = _int(o, "end", 0), d;

		_fmt_time(s, start, sizeof(start));
		/* Checked even though _int() bounds both to +-2^53. */
		if (e && s && !__builtin_sub_overflow(e, s, &d))
			snprintf(secs, sizeof(secs), "%lld", (long long)d);
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
			_show(o, "job_id", "-", job, sizeof(job)),
			(long long)_int(o, "attempt", 0), start, secs,
			_show(o, "outcome", "running", outcome, sizeof(outcome)),
			detail, (long long)_int(o, "checkpoints", 0),
			_show(o, "action", "-", action, sizeof(action)), left,
			_show(o, "why", "", why, sizeof(why)));
		/* Still pending only while no later attempt shows it held. */
		if (i + 1 == n && _has(o, "pending"))
			fprintf(f, "%-10s %7s  %s\n", "", "",
				_show(o, "pending", "", pend, sizeof(pend)));
	}
	fclose(f);
	return buf;
}
