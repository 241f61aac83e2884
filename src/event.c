/* event.c - see include/event.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "event.h"

#define ALERT_NAME "SlurmJobRetriesExhausted"
#define JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void rs_event_init(rs_event_t *ev)
{
	memset(ev, 0, sizeof(*ev));
	ev->schema_version = RS_EVENT_SCHEMA_VERSION;
	ev->last_ckpt_generation = -1;
	ev->restored_from_generation = -1;
}

void rs_event_free(rs_event_t *ev)
{
	if (!ev)
		return;
	free(ev->cluster);
	free(ev->user);
	free(ev->account);
	free(ev->partition);
	free(ev->qos);
	free(ev->job_name);
	free(ev->nodes);
	free(ev->ckpt_dir);
	free(ev->last_ckpt_reason);
	rs_event_init(ev);
}

const char *rs_event_outcome_name(rs_event_outcome_t o)
{
	return rs_outcome_name(o);
}

const char *rs_event_action_name(rs_event_action_t a)
{
	return rs_action_name(a);
}

int rs_event_outcome_parse(const char *s, rs_event_outcome_t *o, rs_err_t *err)
{
	int i = rs_outcome_parse(s);

	if (i < 0)
		return rs_err_set(err, EINVAL, "outcome '%s': expected completed, "
				  "failed, signaled, timeout, cancelled, "
				  "preempted, node_fail or requeued", s ? s : "(null)");
	*o = (rs_event_outcome_t)i;
	return 0;
}

int rs_event_action_parse(const char *s, rs_event_action_t *a, rs_err_t *err)
{
	int i = rs_action_parse(s);

	if (i < 0)
		return rs_err_set(err, EINVAL, "action '%s': expected completed, "
				  "requeued, continued, held, failed or ended",
				  s ? s : "(null)");
	*a = (rs_event_action_t)i;
	return 0;
}

static size_t _utf8_seq(const unsigned char *s, size_t n);

/* 1 if s is valid UTF-8 without control characters. */
static int _utf8_ident(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	while (n) {
		size_t len = _utf8_seq(p, n);
		if (len == 0 || (len == 1 && (*p < 0x20 || *p == 0x7f)))
			return 0;
		p += len;
		n -= len;
	}
	return 1;
}

int rs_event_validate(const rs_event_t *ev, rs_err_t *err)
{
	if (!ev)
		return rs_err_set(err, EINVAL, "event: none given");
	if (ev->schema_version != RS_EVENT_SCHEMA_VERSION)
		return rs_err_set(err, EINVAL, "event: schema_version %u, this build writes %u",
				  ev->schema_version, RS_EVENT_SCHEMA_VERSION);
	if (!ev->cluster || !ev->cluster[0])
		return rs_err_set(err, EINVAL, "event: cluster is empty");
	/* Slurm's ClusterName is a short identifier; a bound keeps event_id
	 * whole, and valid UTF-8 keeps it the same after serialising (it is
	 * the deduplication key). */
	if (strlen(ev->cluster) > RS_EVENT_CLUSTER_MAX)
		return rs_err_set(err, EINVAL, "event: cluster name longer than %d bytes",
				  RS_EVENT_CLUSTER_MAX);
	if (!_utf8_ident(ev->cluster))
		return rs_err_set(err, EINVAL, "event: cluster name is not valid UTF-8 or has a "
				  "control character");
	if (ev->job_id == 0)
		return rs_err_set(err, EINVAL, "event: job_id is 0");
	if (ev->attempt == 0)
		return rs_err_set(err, EINVAL, "event %s job %" PRIu32 ": attempt is 0 (attempts count from 1)",
				  ev->cluster, ev->job_id);
	if (!rs_event_outcome_name(ev->outcome))
		return rs_err_set(err, EINVAL, "event: outcome %d out of range", (int)ev->outcome);
	if (!rs_event_action_name(ev->action))
		return rs_err_set(err, EINVAL, "event: action %d out of range", (int)ev->action);
	if (ev->start_time < 0 || ev->end_time < ev->start_time)
		return rs_err_set(err, EINVAL, "event %s job %" PRIu32 ": end_time %" PRId64
				  " before start_time %" PRId64, ev->cluster, ev->job_id,
				  ev->end_time, ev->start_time);
	if (!isfinite(ev->duration_seconds) || ev->duration_seconds < 0)
		return rs_err_set(err, EINVAL, "event: duration_seconds must be finite and >= 0");
	if (ev->last_ckpt_generation >= 0 &&
	    (!isfinite(ev->last_ckpt_seconds) || ev->last_ckpt_seconds < 0))
		return rs_err_set(err, EINVAL, "event: last_ckpt_seconds must be finite and >= 0");
	if (ev->last_ckpt_generation < -1 || ev->restored_from_generation < -1)
		return rs_err_set(err, EINVAL, "event: a generation below -1 means nothing");
	if (ev->has_energy && (!isfinite(ev->energy_joules) || ev->energy_joules < 0))
		return rs_err_set(err, EINVAL, "event: energy_joules must be finite and >= 0");
	return 0;
}

int rs_event_id(const rs_event_t *ev, char *buf, size_t size)
{
	if (!ev || !ev->cluster || !ev->cluster[0] || !ev->job_id || !ev->attempt)
		return -EINVAL;
	return snprintf(buf, size, "%s:%" PRIu32 ":%" PRIu32, ev->cluster, ev->job_id,
			ev->attempt);
}

/* ------------------------------------------------------------ strings --- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if the
 * bytes there are not one (overlong forms, surrogates and code points past
 * U+10FFFF included). */
static size_t _utf8_seq(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* A copy of s (NULL -> "") where every invalid UTF-8 byte is U+FFFD:
 * receivers (ClickHouse, Go's Pushgateway and Alertmanager, Python
 * webhooks) refuse or mangle invalid UTF-8, and a job name is whatever
 * bytes the user typed.  NULL on ENOMEM. */
static char *_utf8_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p), o = 0;
	char *out = malloc(n * 3 + 1); /* each bad byte grows to 3 */

	if (!out)
		return NULL;
	while (*p) {
		size_t len = _utf8_seq(p, n);

		if (len == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			len = 1;
		} else {
			memcpy(out + o, p, len);
			o += len;
		}
		p += len;
		n -= len;
	}
	out[o] = '\0';
	return out;
}

/* Growable string for the text formats. */
typedef struct strbuf {
	char *s;
	size_t len, cap;
	int oom;
} strbuf_t;

static void _sb_add(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void _sb_add(strbuf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if (b->s && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = (b->cap ? b->cap : 256);
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *ns = realloc(b->s, cap);
		if (!ns) {
			b->oom = 1;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
}

/* Hand the buffer to *out: 0, or -ENOMEM with err filled. */
static int _sb_finish(strbuf_t *b, char **out, rs_err_t *err, const char *what)
{
	if (b->oom || !b->s) {
		free(b->s);
		b->s = NULL;
		return rs_err_set(err, ENOMEM, "%s: out of memory", what);
	}
	*out = b->s;
	b->s = NULL;
	return 0;
}

/* ---------------------------------------------------------------- JSON --- */

/* A JSON number for a double with at most 15 significant digits, so that
 * 0.1 is sent as 0.1 (json-c writes 17 digits: 0.10000000000000001). */
static json_object *_jdouble(double d)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.15g", d);
	return json_object_new_double_s(d, buf);
}

static int _jadd(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int _jadd_str(json_object *o, const char *key, const char *s)
{
	char *clean = _utf8_clean(s);
	int rc;

	if (!clean)
		return -ENOMEM;
	rc = _jadd(o, key, json_object_new_string(clean));
	free(clean);
	return rc;
}

/* Add a JSON null: json-c stores a NULL value as null. */
static int _jadd_null(json_object *o, const char *key)
{
	return json_object_object_add(o, key, NULL) ? -ENOMEM : 0;
}

/* The event as a json-c object; the one place the field list lives for
 * the JSON formats (ClickHouse row included, so the two cannot drift). */
static int _event_object(const rs_event_t *ev, json_object **out, rs_err_t *err)
{
	json_object *o = NULL;
	char id[512];
	int rc;

	rc = rs_event_validate(ev, err);
	if (rc)
		return rc;
	rs_event_id(ev, id, sizeof(id));
	o = json_object_new_object();
	if (!o)
		return rs_err_set(err, ENOMEM, "event: out of memory");
	rc = 0;
	rc |= _jadd(o, "schema_version", json_object_new_int(ev->schema_version));
	rc |= _jadd_str(o, "event_id", id);
	rc |= _jadd_str(o, "cluster", ev->cluster);
	rc |= _jadd(o, "job_id", json_object_new_int64(ev->job_id));
	if (ev->array_job_id) {
		rc |= _jadd(o, "array_job_id", json_object_new_int64(ev->array_job_id));
		rc |= _jadd(o, "array_task_id", json_object_new_int64(ev->array_task_id));
	} else {
		rc |= _jadd_null(o, "array_job_id");
		rc |= _jadd_null(o, "array_task_id");
	}
	rc |= _jadd_str(o, "user", ev->user);
	rc |= _jadd(o, "uid", json_object_new_int64(ev->uid));
	rc |= _jadd_str(o, "account", ev->account);
	rc |= _jadd_str(o, "partition", ev->partition);
	rc |= _jadd_str(o, "qos", ev->qos);
	rc |= _jadd_str(o, "job_name", ev->job_name);
	rc |= _jadd_str(o, "nodes", ev->nodes);
	rc |= _jadd(o, "num_nodes", json_object_new_int64(ev->num_nodes));
	rc |= _jadd(o, "num_tasks", json_object_new_int64(ev->num_tasks));
	rc |= _jadd(o, "num_cpus", json_object_new_int64(ev->num_cpus));
	rc |= _jadd(o, "attempt", json_object_new_int64(ev->attempt));
	rc |= _jadd(o, "restart_count", json_object_new_int64(ev->restart_count));
	rc |= _jadd_str(o, "outcome", rs_event_outcome_name(ev->outcome));
	rc |= _jadd(o, "exit_code", json_object_new_int(ev->exit_code));
	rc |= _jadd(o, "signal", json_object_new_int(ev->signal));
	rc |= _jadd_str(o, "action", rs_event_action_name(ev->action));
	rc |= _jadd(o, "start_time", json_object_new_int64(ev->start_time));
	rc |= _jadd(o, "end_time", json_object_new_int64(ev->end_time));
	rc |= _jadd(o, "duration_seconds", _jdouble(ev->duration_seconds));
	rc |= _jadd(o, "checkpoints", json_object_new_int64(ev->checkpoints));
	if (ev->last_ckpt_generation >= 0) {
		rc |= _jadd(o, "last_ckpt_generation", json_object_new_int64(ev->last_ckpt_generation));
		rc |= _jadd(o, "last_ckpt_bytes", json_object_new_uint64(ev->last_ckpt_bytes));
		rc |= _jadd(o, "last_ckpt_seconds", _jdouble(ev->last_ckpt_seconds));
		if (ev->last_ckpt_reason)
			rc |= _jadd_str(o, "last_ckpt_reason", ev->last_ckpt_reason);
		else
			rc |= _jadd_null(o, "last_ckpt_reason");
	} else {
		rc |= _jadd_null(o, "last_ckpt_generation");
		rc |= _jadd_null(o, "last_ckpt_bytes");
		rc |= _jadd_null(o, "last_ckpt_seconds");
		rc |= _jadd_null(o, "last_ckpt_reason");
	}
	if (ev->restored_from_generation >= 0)
		rc |= _jadd(o, "restored_from_generation",
			    json_object_new_int64(ev->restored_from_generation));
	else
		rc |= _jadd_null(o, "restored_from_generation");
	if (ev->has_energy)
		rc |= _jadd(o, "energy_joules", _jdouble(ev->energy_joules));
	else
		rc |= _jadd_null(o, "energy_joules");
	rc |= _jadd_str(o, "ckpt_dir", ev->ckpt_dir);
	if (rc) {
		json_object_put(o);
		return rs_err_set(err, ENOMEM, "event: out of memory");
	}
	*out = o;
	return 0;
}

/* Serialise o (consumed) with a suffix appended into a malloc'd string. */
static int _json_finish(json_object *o, const char *suffix, char **out, rs_err_t *err)
{
	const char *s = json_object_to_json_string_ext(o, JSON_FLAGS);
	int rc = 0;

	if (!s || asprintf(out, "%s%s", s, suffix) < 0) {
		*out = NULL;
		rc = rs_err_set(err, ENOMEM, "event: out of memory");
	}
	json_object_put(o);
	return rc;
}

int rs_event_to_json(const rs_event_t *ev, char **out, rs_err_t *err)
{
	json_object *o = NULL;
	int rc = _event_object(ev, &o, err);

	if (rc)
		return rc;
	return _json_finish(o, "", out, err);
}

int rs_event_to_clickhouse(const rs_event_t *ev, char **out, rs_err_t *err)
{
	json_object *o = NULL;
	int rc = _event_object(ev, &o, err);

	if (rc)
		return rc;
	/* JSONEachRow: one object per line.  The JSON writer never emits a raw
	 * newline (strings escape it), so the row is exactly one line. */
	return _json_finish(o, "\n", out, err);
}

/* The alert's labels and annotations, shared by both alert formats. */
static int _alert_parts(const rs_event_t *ev, json_object **labels,
			json_object **annotations, rs_err_t *err)
{
	json_object *l = NULL, *a = NULL;
	char id[512], job[16], summary[600], attempts[16];
	int rc;

	rc = rs_event_validate(ev, err);
	if (rc)
		return rc;
	rs_event_id(ev, id, sizeof(id));
	snprintf(job, sizeof(job), "%" PRIu32, ev->job_id);
	snprintf(attempts, sizeof(attempts), "%" PRIu32, ev->attempt);
	snprintf(summary, sizeof(summary),
		 "Slurm job %" PRIu32 " on %s used up its retries after %" PRIu32
		 " attempt%s; last outcome %s", ev->job_id, ev->cluster, ev->attempt,
		 ev->attempt == 1 ? "" : "s", rs_event_outcome_name(ev->outcome));
	l = json_object_new_object();
	a = json_object_new_object();
	if (!l || !a) {
		rc = -ENOMEM;
		goto out;
	}
	rc |= _jadd_str(l, "alertname", ALERT_NAME);
	rc |= _jadd_str(l, "cluster", ev->cluster);
	rc |= _jadd_str(l, "job_id", job);
	rc |= _jadd_str(l, "user", ev->user);
	rc |= _jadd_str(l, "account", ev->account);
	rc |= _jadd_str(l, "partition", ev->partition);
	rc |= _jadd_str(a, "summary", summary);
	rc |= _jadd_str(a, "last_outcome", rs_event_outcome_name(ev->outcome));
	rc |= _jadd_str(a, "attempts", attempts);
	rc |= _jadd_str(a, "ckpt_dir", ev->ckpt_dir);
	rc |= _jadd_str(a, "event_id", id);
out:
	if (rc) {
		json_object_put(l);
		json_object_put(a);
		return rs_err_set(err, ENOMEM, "alert: out of memory");
	}
	*labels = l;
	*annotations = a;
	return 0;
}

int rs_event_to_alertmanager(const rs_event_t *ev, char **out, rs_err_t *err)
{
	json_object *arr = NULL, *alert = NULL, *l = NULL, *a = NULL;
	int rc;

	rc = _alert_parts(ev, &l, &a, err);
	if (rc)
		return rc;
	arr = json_object_new_array();
	alert = json_object_new_object();
	if (!arr || !alert) {
		json_object_put(l);
		json_object_put(a);
		rc = -ENOMEM;
		goto out;
	}
	/* No startsAt/endsAt: Alertmanager stamps startsAt on arrival and
	 * resolves after its resolve_timeout, which is what a one-shot alert
	 * from a node that will not re-send it wants. */
	rc |= _jadd(alert, "labels", l);
	rc |= _jadd(alert, "annotations", a);
	if (!rc && json_object_array_add(arr, alert) == 0)
		alert = NULL;
	else
		rc = -ENOMEM;
out:
	json_object_put(alert);
	if (rc) {
		json_object_put(arr);
		return rs_err_set(err, ENOMEM, "alert: out of memory");
	}
	return _json_finish(arr, "", out, err);
}

int rs_event_to_alert_json(const rs_event_t *ev, char **out, rs_err_t *err)
{
	json_object *o = NULL, *l = NULL, *a = NULL, *evo = NULL;
	int rc;

	rc = _alert_parts(ev, &l, &a, err);
	if (rc)
		return rc;
	rc = _event_object(ev, &evo, err);
	if (rc)
		goto out;
	o = json_object_new_object();
	if (!o) {
		rc = -ENOMEM;
		goto out;
	}
	/* Flat: a webhook that knows nothing of Alertmanager reads
	 * o["alert"], o["job_id"], o["last_outcome"] directly. */
	json_object_object_foreach(l, lk, lv) {
		const char *k = strcmp(lk, "alertname") == 0 ? "alert" : lk;
		rc |= _jadd(o, k, json_object_get(lv));
	}
	json_object_object_foreach(a, ak, av)
		rc |= _jadd(o, ak, json_object_get(av));
	rc |= _jadd(o, "event", evo);
	evo = NULL;
	if (rc) {
		rc = rs_err_set(err, ENOMEM, "alert: out of memory");
		goto out;
	}
	rc = _json_finish(o, "", out, err);
	o = NULL;
out:
	json_object_put(o);
	json_object_put(evo);
	json_object_put(l);
	json_object_put(a);
	return rc;
}

/* ---------------------------------------------------------- Prometheus --- */

/* A label value: valid UTF-8 with \, " and newline escaped, other control
 * characters (CR, tab, ...) turned into spaces. */
static void _sb_label(strbuf_t *b, const char *name, const char *value, int first)
{
	char *clean = _utf8_clean(value);

	if (!clean) {
		b->oom = 1;
		return;
	}
	_sb_add(b, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = clean; *p; p++) {
		if (*p == '\\')
			_sb_add(b, "\\\\");
		else if (*p == '"')
			_sb_add(b, "\\\"");
		else if (*p == '\n')
			_sb_add(b, "\\n");
		else if ((unsigned char)*p < 0x20 || *p == 0x7f)
			_sb_add(b, " "); /* a raw CR would break "LF only" */
		else
			_sb_add(b, "%c", *p);
	}
	_sb_add(b, "\"");
	free(clean);
}

static void _sb_metric(strbuf_t *b, const char *name, const char *type,
		       const char *help, const char *value)
{
	_sb_add(b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type,
		name, value);
}

int rs_event_to_prometheus(const rs_event_t *ev, char **out, rs_err_t *err)
{
	strbuf_t b = { 0 };
	char v[64], attempt[16];
	int rc;

	rc = rs_event_validate(ev, err);
	if (rc)
		return rc;
	/* HELP and TYPE texts are constants: the Pushgateway refuses a push
	 * whose HELP/TYPE differ from what another group already has. */
	_sb_add(&b, "# HELP slurm_resilience_attempt_info Labels of the job's latest "
		"attempt; the value is always 1.\n"
		"# TYPE slurm_resilience_attempt_info gauge\n"
		"slurm_resilience_attempt_info{");
	snprintf(attempt, sizeof(attempt), "%" PRIu32, ev->attempt);
	_sb_label(&b, "user", ev->user, 1);
	_sb_label(&b, "account", ev->account, 0);
	_sb_label(&b, "partition", ev->partition, 0);
	_sb_label(&b, "qos", ev->qos, 0);
	_sb_label(&b, "job_name", ev->job_name, 0);
	_sb_label(&b, "attempt", attempt, 0);
	_sb_label(&b, "outcome", rs_event_outcome_name(ev->outcome), 0);
	_sb_label(&b, "action", rs_event_action_name(ev->action), 0);
	_sb_add(&b, "} 1\n");

	snprintf(v, sizeof(v), "%" PRIu32, ev->attempt);
	_sb_metric(&b, "slurm_resilience_attempts_total", "counter",
		   "Attempts of the job so far, the latest included.", v);
	snprintf(v, sizeof(v), "%" PRIu32, ev->restart_count);
	_sb_metric(&b, "slurm_resilience_restarts_total", "counter",
		   "Slurm restart count of the job at the latest attempt.", v);
	snprintf(v, sizeof(v), "%.15g", ev->duration_seconds);
	_sb_metric(&b, "slurm_resilience_attempt_duration_seconds", "gauge",
		   "Wall time of the latest attempt.", v);
	snprintf(v, sizeof(v), "%" PRId64, ev->start_time);
	_sb_metric(&b, "slurm_resilience_attempt_start_timestamp_seconds", "gauge",
		   "Start of the latest attempt, unix time.", v);
	snprintf(v, sizeof(v), "%" PRId64, ev->end_time);
	_sb_metric(&b, "slurm_resilience_attempt_end_timestamp_seconds", "gauge",
		   "End of the latest attempt, unix time.", v);
	snprintf(v, sizeof(v), "%" PRId32, ev->exit_code);
	_sb_metric(&b, "slurm_resilience_attempt_exit_code", "gauge",
		   "Exit status of the latest attempt (0 if it was signalled).", v);
	snprintf(v, sizeof(v), "%" PRId32, ev->signal);
	_sb_metric(&b, "slurm_resilience_attempt_signal", "gauge",
		   "Signal that ended the latest attempt, 0 if none.", v);
	snprintf(v, sizeof(v), "%" PRIu32, ev->checkpoints);
	_sb_metric(&b, "slurm_resilience_checkpoints_total", "counter",
		   "Checkpoints taken during the latest attempt.", v);
	snprintf(v, sizeof(v), "%d", ev->action == RS_ACTION_FAILED ? 1 : 0);
	_sb_metric(&b, "slurm_resilience_job_failed", "gauge",
		   "1 if the plugin gave up on the job (no retry left or not retryable).", v);
	if (ev->last_ckpt_generation >= 0) {
		snprintf(v, sizeof(v), "%" PRId64, ev->last_ckpt_generation);
		_sb_metric(&b, "slurm_resilience_last_checkpoint_generation", "gauge",
			   "Generation number of the latest checkpoint.", v);
		snprintf(v, sizeof(v), "%" PRIu64, ev->last_ckpt_bytes);
		_sb_metric(&b, "slurm_resilience_last_checkpoint_bytes", "gauge",
			   "Bytes written by the latest checkpoint.", v);
		snprintf(v, sizeof(v), "%.15g", ev->last_ckpt_seconds);
		_sb_metric(&b, "slurm_resilience_last_checkpoint_seconds", "gauge",
			   "Wall time of the latest checkpoint.", v);
	}
	if (ev->restored_from_generation >= 0) {
		snprintf(v, sizeof(v), "%" PRId64, ev->restored_from_generation);
		_sb_metric(&b, "slurm_resilience_restored_generation", "gauge",
			   "Checkpoint generation the latest attempt started from.", v);
	}
	if (ev->has_energy) {
		snprintf(v, sizeof(v), "%.15g", ev->energy_joules);
		_sb_metric(&b, "slurm_resilience_attempt_energy_joules", "gauge",
			   "RAPL package+DRAM energy of the whole node(s) during the latest attempt.", v);
	}
	return _sb_finish(&b, out, err, "prometheus text");
}

static const char b64url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* "/<label>/<value>" or "/<label>@base64/<encoded>" into b. */
static void _sb_group(strbuf_t *b, const char *label, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;
	size_t n = strlen(value);
	int plain = n > 0;

	for (size_t i = 0; i < n && plain; i++)
		plain = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
			(p[i] >= '0' && p[i] <= '9') || p[i] == '.' || p[i] == '_' ||
			p[i] == '-';
	/* "." and ".." are path segments a proxy may resolve away. */
	if (plain && (strcmp(value, ".") == 0 || strcmp(value, "..") == 0))
		plain = 0;
	if (plain) {
		_sb_add(b, "/%s/%s", label, value);
		return;
	}
	_sb_add(b, "/%s@base64/", label);
	if (n == 0) {
		/* The Pushgateway spells the empty value as a lone "=". */
		_sb_add(b, "=");
		return;
	}
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		_sb_add(b, "%c%c%c%c", b64url[(v >> 18) & 63], b64url[(v >> 12) & 63],
			left > 1 ? b64url[(v >> 6) & 63] : '=',
			left > 2 ? b64url[v & 63] : '=');
	}
}

int rs_event_pushgateway_path(const rs_event_t *ev, char **out, rs_err_t *err)
{
	strbuf_t b = { 0 };
	char job[16];
	int rc;

	rc = rs_event_validate(ev, err);
	if (rc)
		return rc;
	snprintf(job, sizeof(job), "%" PRIu32, ev->job_id);
	_sb_add(&b, "/metrics/job/slurm_resilience");
	_sb_group(&b, "cluster", ev->cluster);
	_sb_group(&b, "job_id", job);
	return _sb_finish(&b, out, err, "pushgateway path");
}

/* ------------------------------------------------------------- parsing --- */

enum ftype { F_STR, F_U32, F_I32, F_I64, F_U64, F_DBL, F_OUTCOME, F_ACTION };

struct field {
	const char *name;
	enum ftype type;
	size_t off;
	int nullable;
};

#define FLD(n, t, m, nl) { n, t, offsetof(rs_event_t, m), nl }
static const struct field fields[] = {
	FLD("cluster", F_STR, cluster, 0),
	FLD("job_id", F_U32, job_id, 0),
	FLD("array_job_id", F_U32, array_job_id, 1),
	FLD("array_task_id", F_U32, array_task_id, 1),
	FLD("user", F_STR, user, 0),
	FLD("uid", F_U32, uid, 0),
	FLD("account", F_STR, account, 0),
	FLD("partition", F_STR, partition, 0),
	FLD("qos", F_STR, qos, 0),
	FLD("job_name", F_STR, job_name, 0),
	FLD("nodes", F_STR, nodes, 0),
	FLD("num_nodes", F_U32, num_nodes, 0),
	FLD("num_tasks", F_U32, num_tasks, 0),
	FLD("num_cpus", F_U32, num_cpus, 0),
	FLD("attempt", F_U32, attempt, 0),
	FLD("restart_count", F_U32, restart_count, 0),
	FLD("outcome", F_OUTCOME, outcome, 0),
	FLD("exit_code", F_I32, exit_code, 0),
	FLD("signal", F_I32, signal, 0),
	FLD("action", F_ACTION, action, 0),
	FLD("start_time", F_I64, start_time, 0),
	FLD("end_time", F_I64, end_time, 0),
	FLD("duration_seconds", F_DBL, duration_seconds, 0),
	FLD("checkpoints", F_U32, checkpoints, 0),
	FLD("last_ckpt_generation", F_I64, last_ckpt_generation, 1),
	FLD("last_ckpt_bytes", F_U64, last_ckpt_bytes, 1),
	FLD("last_ckpt_seconds", F_DBL, last_ckpt_seconds, 1),
	FLD("last_ckpt_reason", F_STR, last_ckpt_reason, 1),
	FLD("restored_from_generation", F_I64, restored_from_generation, 1),
	FLD("energy_joules", F_DBL, energy_joules, 1),
	FLD("ckpt_dir", F_STR, ckpt_dir, 0),
};

/* An integer JSON value within [lo, hi]: json-c parses integers into
 * int64 (or uint64 when larger), so check the type and range here rather
 * than trust json_object_get_int's clamping. */
static int _get_int(json_object *v, int64_t lo, uint64_t hi, uint64_t *u, int64_t *s)
{
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	int64_t i = json_object_get_int64(v);
	if (i == INT64_MAX) {
		uint64_t x = json_object_get_uint64(v);
		if (x > hi)
			return -ERANGE;
		*u = x;
		*s = INT64_MAX;
		return 0;
	}
	if (i < lo || (i >= 0 && (uint64_t)i > hi))
		return -ERANGE;
	*s = i;
	*u = (uint64_t)i;
	return 0;
}

static int _set_field(rs_event_t *ev, const struct field *f, json_object *v, rs_err_t *err)
{
	char *base = (char *)ev + f->off;
	uint64_t u = 0;
	int64_t s = 0;
	int rc = 0;

	if (json_object_is_type(v, json_type_null)) {
		if (!f->nullable)
			return rs_err_set(err, EINVAL, "event field %s: null not allowed", f->name);
		/* null = the init sentinel, already in place */
		if (strcmp(f->name, "energy_joules") == 0)
			ev->has_energy = 0;
		return 0;
	}
	switch (f->type) {
	case F_STR:
		if (!json_object_is_type(v, json_type_string))
			return rs_err_set(err, EINVAL, "event field %s: expected a string", f->name);
		free(*(char **)base);
		*(char **)base = strdup(json_object_get_string(v));
		if (!*(char **)base)
			return rs_err_set(err, ENOMEM, "event field %s: out of memory", f->name);
		return 0;
	case F_OUTCOME:
	case F_ACTION:
		if (!json_object_is_type(v, json_type_string))
			return rs_err_set(err, EINVAL, "event field %s: expected a string", f->name);
		if (f->type == F_OUTCOME)
			return rs_event_outcome_parse(json_object_get_string(v),
						      (rs_event_outcome_t *)base, err);
		return rs_event_action_parse(json_object_get_string(v),
					     (rs_event_action_t *)base, err);
	case F_DBL:
		if (!json_object_is_type(v, json_type_double) &&
		    !json_object_is_type(v, json_type_int))
			return rs_err_set(err, EINVAL, "event field %s: expected a number", f->name);
		*(double *)base = json_object_get_double(v);
		if (strcmp(f->name, "energy_joules") == 0)
			ev->has_energy = 1;
		return 0;
	case F_U32:
		rc = _get_int(v, 0, UINT32_MAX, &u, &s);
		if (!rc)
			*(uint32_t *)base = (uint32_t)u;
		break;
	case F_I32:
		rc = _get_int(v, INT32_MIN, INT32_MAX, &u, &s);
		if (!rc)
			*(int32_t *)base = (int32_t)s;
		break;
	case F_I64:
		rc = _get_int(v, f->nullable ? -1 : 0, INT64_MAX, &u, &s);
		if (!rc)
			*(int64_t *)base = s;
		break;
	case F_U64:
		rc = _get_int(v, 0, UINT64_MAX, &u, &s);
		if (!rc)
			*(uint64_t *)base = u;
		break;
	}
	if (rc == -ERANGE)
		return rs_err_set(err, EINVAL, "event field %s: number out of range", f->name);
	if (rc)
		return rs_err_set(err, EINVAL, "event field %s: expected an integer", f->name);
	return 0;
}

int rs_event_from_json(const char *text, rs_event_t *ev, rs_err_t *err)
{
	json_tokener *tok = NULL;
	json_object *root = NULL;
	const char *given_id = NULL;
	char id[512];
	size_t end;
	int rc = 0;

	rs_event_init(ev);
	if (!text)
		return rs_err_set(err, EINVAL, "event JSON: none given");
	tok = json_tokener_new();
	if (!tok)
		return rs_err_set(err, ENOMEM, "event JSON: out of memory");
	root = json_tokener_parse_ex(tok, text, (int)strlen(text));
	if (!root || json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error je = json_tokener_get_error(tok);
		/* "continue" is json-c's word for a document cut short. */
		rc = rs_err_set(err, EINVAL, "event JSON: %s",
				je == json_tokener_continue ? "unexpected end of input"
							    : json_tokener_error_desc(je));
		goto out;
	}
	/* Whitespace after the object is fine; a second document is not. */
	end = json_tokener_get_parse_end(tok);
	if (text[end + strspn(text + end, " \t\r\n")] != '\0') {
		rc = rs_err_set(err, EINVAL, "event JSON: trailing data after the object");
		goto out;
	}
	if (!json_object_is_type(root, json_type_object)) {
		rc = rs_err_set(err, EINVAL, "event JSON: expected an object");
		goto out;
	}
	json_object_object_foreach(root, key, val) {
		const struct field *f = NULL;

		if (strcmp(key, "schema_version") == 0) {
			if (!json_object_is_type(val, json_type_int) ||
			    json_object_get_int64(val) != RS_EVENT_SCHEMA_VERSION) {
				rc = rs_err_set(err, EINVAL, "event field schema_version: "
						"this build reads version %d only",
						RS_EVENT_SCHEMA_VERSION);
				goto out;
			}
			continue;
		}
		if (strcmp(key, "event_id") == 0) {
			if (!json_object_is_type(val, json_type_string)) {
				rc = rs_err_set(err, EINVAL, "event field event_id: expected a string");
				goto out;
			}
			given_id = json_object_get_string(val);
			continue;
		}
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(key, fields[i].name) == 0)
				f = &fields[i];
		if (!f) {
			rc = rs_err_set(err, EINVAL, "event JSON: unknown field '%s'", key);
			goto out;
		}
		rc = _set_field(ev, f, val, err);
		if (rc)
			goto out;
	}
	rc = rs_event_validate(ev, err);
	if (rc)
		goto out;
	rs_event_id(ev, id, sizeof(id));
	if (given_id && strcmp(given_id, id) != 0) {
		rc = rs_err_set(err, EINVAL, "event field event_id: '%s' does not match "
				"cluster:job_id:attempt '%s'", given_id, id);
		goto out;
	}
out:
	if (rc)
		rs_event_free(ev);
	json_object_put(root);
	json_tokener_free(tok);
	return rc;
}

/* -------------------------------------------------------------- energy --- */

/* Read one unsigned decimal from dir/name/file.  0 or -errno. */
static int _read_u64(int dfd, const char *zone, const char *file, uint64_t *v)
{
	char path[160], buf[64], *end = NULL;
	ssize_t n;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", zone, file);
	fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	buf[n] = '\0';
	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (errno || end == buf || (*end && *end != '\n'))
		rc = -EINVAL;
out:
	close(fd);
	return rc;
}

static int _zone_cmp(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

int rs_event_energy_sample(const char *root, rs_energy_sample_t *s, rs_err_t *err)
{
	DIR *d = NULL;
	struct dirent *de;
	int dfd, rc = 0;

	if (!root)
		root = "/sys/class/powercap";
	memset(s, 0, sizeof(*s));
	d = opendir(root);
	if (!d) {
		int e = errno;
		return rs_err_set(err, e, "energy: %s: %s", root, strerror(e));
	}
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		char name[64], path[160];
		ssize_t n;
		int fd;

		if (strncmp(de->d_name, "intel-rapl:", 11) != 0 ||
		    strlen(de->d_name) >= sizeof(s->zone[0].name))
			continue;
		snprintf(path, sizeof(path), "%s/name", de->d_name);
		fd = openat(dfd, path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, name, sizeof(name) - 1);
		close(fd);
		if (n <= 0)
			continue;
		name[n] = '\0';
		name[strcspn(name, "\n")] = '\0';
		/* package-N holds cores+uncore; dram is beside it; psys would
		 * count the packages twice. */
		if (strncmp(name, "package-", 8) != 0 && strcmp(name, "dram") != 0)
			continue;
		if (s->nzones == RS_ENERGY_MAX_ZONES)
			break;
		unsigned z = s->nzones;
		snprintf(s->zone[z].name, sizeof(s->zone[z].name), "%s", de->d_name);
		rc = _read_u64(dfd, de->d_name, "energy_uj", &s->zone[z].uj);
		if (!rc)
			rc = _read_u64(dfd, de->d_name, "max_energy_range_uj", &s->zone[z].max_uj);
		if (rc) {
			rs_err_set(err, -rc, "energy: %s/%s: %s", root, de->d_name, strerror(-rc));
			goto out;
		}
		s->nzones++;
	}
	if (s->nzones == 0) {
		rc = rs_err_set(err, ENOENT, "energy: no RAPL package or dram zone under %s", root);
		goto out;
	}
	/* readdir order is arbitrary; pair zones by name later. */
	qsort(s->zone, s->nzones, sizeof(s->zone[0]), _zone_cmp);
out:
	closedir(d);
	return rc;
}

int rs_event_energy_joules(const rs_energy_sample_t *begin,
			   const rs_energy_sample_t *end, double *joules, rs_err_t *err)
{
	uint64_t total = 0;

	if (!begin || !end || begin->nzones != end->nzones || begin->nzones == 0)
		return rs_err_set(err, EINVAL, "energy: the two samples have different zones");
	for (unsigned i = 0; i < begin->nzones; i++) {
		uint64_t a = begin->zone[i].uj, b = end->zone[i].uj, max = end->zone[i].max_uj;

		if (strcmp(begin->zone[i].name, end->zone[i].name) != 0)
			return rs_err_set(err, EINVAL, "energy: zone %s missing from the second sample",
					  begin->zone[i].name);
		if (b >= a)
			total += b - a;
		else if (max >= a)
			total += (max - a) + b; /* wrapped once */
		else
			return rs_err_set(err, EINVAL, "energy: zone %s: counter %" PRIu64
					  " above its range %" PRIu64, begin->zone[i].name, a, max);
	}
	*joules = (double)total / 1e6;
	return 0;
}
