/* metrics.c - see include/metrics.h */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "metrics_int.h"
#include "privsep.h"
#include "send.h"
#include "spool.h"


static const char *const format_names[] = { "json", "clickhouse", "prometheus" };

const char *rs_metrics_format_name(rs_metrics_format_t f)
{
	return (unsigned)f < 3 ? format_names[f] : "?";
}
static const char *const alert_names[] = { "alertmanager", "json" };

void rs_metrics_conf_init(rs_metrics_conf_t *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->format = RS_METRICS_JSON;
	conf->timeout_ms = RS_SEND_DEFAULT_TIMEOUT_MS;
	conf->alert_format = RS_ALERT_ALERTMANAGER;
	conf->spool_max_entries = RS_SPOOL_DEFAULT_MAX_ENTRIES;
	conf->spool_max_bytes = RS_SPOOL_DEFAULT_MAX_BYTES;
	conf->budget_ms = RS_METRICS_DEFAULT_BUDGET_MS;
}

void rs_metrics_conf_free(rs_metrics_conf_t *conf)
{
	if (!conf)
		return;
	free(conf->flush_cmd);
	free(conf->url);
	free(conf->clickhouse_table);
	free(conf->token_file);
	free(conf->clickhouse_credentials);
	free(conf->spool_dir);
	free(conf->alert_url);
	free(conf->cluster);
	rs_metrics_conf_init(conf);
}

static const char *const keys[] = {
	"metrics_url", "metrics_format", "clickhouse_table", "token_file",
	"clickhouse_credentials", "spool_dir", "timeout_ms", "alert_url",
	"alert_format", "cluster", "spool_max_entries", "spool_max_bytes",
	"flush_budget_ms",
};

int rs_metrics_conf_is_key(const char *key)
{
	for (size_t i = 0; key && i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return 1;
	return 0;
}

/* Replace *slot with a copy of value (NULL for an empty value). */
int rs_metrics_conf_args(const rs_metrics_conf_t *conf, char **argv, int max,
			 char *buf, size_t len)
{
	static const char *const afmt[] = { "alertmanager", "json" };
	size_t used = 0;
	int n = 0;

#define ARG(...) do { \
	int w_ = snprintf(buf + used, len - used, __VA_ARGS__); \
	if (w_ < 0 || (size_t)w_ >= len - used || n + 1 >= max) \
		return -ENOSPC; \
	argv[n++] = buf + used; \
	used += (size_t)w_ + 1; \
} while (0)
	if (conf->url)
		ARG("metrics_url=%s", conf->url);
	ARG("metrics_format=%s", format_names[conf->format]);
	if (conf->clickhouse_table)
		ARG("clickhouse_table=%s", conf->clickhouse_table);
	if (conf->token_file)
		ARG("token_file=%s", conf->token_file);
	if (conf->clickhouse_credentials)
		ARG("clickhouse_credentials=%s", conf->clickhouse_credentials);
	if (conf->spool_dir)
		ARG("spool_dir=%s", conf->spool_dir);
	ARG("timeout_ms=%ld", conf->timeout_ms);
	if (conf->alert_url)
		ARG("alert_url=%s", conf->alert_url);
	ARG("alert_format=%s", afmt[conf->alert_format]);
	if (conf->cluster)
		ARG("cluster=%s", conf->cluster);
	ARG("spool_max_entries=%lu", conf->spool_max_entries);
	ARG("spool_max_bytes=%" PRIu64, conf->spool_max_bytes);
	if (conf->budget_ms > 0)
		ARG("flush_budget_ms=%ld", conf->budget_ms);
#undef ARG
	argv[n] = NULL;
	return n;
}

static int _set_str(char **slot, const char *value, const char *key, rs_err_t *err)
{
	char *copy = NULL;

	if (value[0]) {
		copy = strdup(value);
		if (!copy)
			return rs_err_set(err, ENOMEM, "%s: out of memory", key);
	}
	free(*slot);
	*slot = copy;
	return 0;
}

/* An http(s) URL without user info, spaces or control characters.  The
 * value is never echoed: if it held a password, the message must not. */
static int _check_url(const char *key, const char *v, rs_err_t *err)
{
	const char *auth, *end;

	if (!v[0])
		return 0;
	if (strncmp(v, "http://", 7) == 0)
		auth = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		auth = v + 8;
	else
		return rs_err_set(err, EINVAL, "%s: expected an http:// or https:// URL", key);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return rs_err_set(err, EINVAL, "%s: the URL has a space or control "
					  "character", key);
	end = auth + strcspn(auth, "/?#");
	if (end == auth)
		return rs_err_set(err, EINVAL, "%s: the URL has no host", key);
	if (memchr(auth, '@', (size_t)(end - auth)))
		return rs_err_set(err, EINVAL, "%s: user info in the URL is refused "
				  "(plugstack.conf is readable by every user); put the "
				  "secret in token_file= or clickhouse_credentials=", key);
	/* ClickHouse also takes ?password=: same reason. */
	for (const char *q = strchr(end, '?'); q && *q && *q != '#'; q = strchr(q + 1, '&')) {
		if (strncasecmp(q + 1, "password=", 9) == 0)
			return rs_err_set(err, EINVAL, "%s: a password in the URL is refused "
					  "(plugstack.conf is readable by every user); put it in "
					  "clickhouse_credentials=", key);
		if (!strchr(q + 1, '&'))
			break;
	}
	return 0;
}

static int _check_abs(const char *key, const char *v, rs_err_t *err)
{
	if (v[0] && v[0] != '/')
		return rs_err_set(err, EINVAL, "%s: expected an absolute path, got '%s'", key, v);
	if (strpbrk(v, "\r\n"))
		return rs_err_set(err, EINVAL, "%s: the path has a newline", key);
	return 0;
}

/* Unsigned decimal in [lo, hi] with an optional K/M/G suffix (x1024^n)
 * when suffix != 0. */
static int _parse_num(const char *key, const char *v, uint64_t lo, uint64_t hi,
		      int suffix, uint64_t *out, rs_err_t *err)
{
	char *end = NULL;
	unsigned long long x;
	uint64_t mul = 1;

	if (!v[0] || v[0] == '-' || v[0] == '+' || v[0] == ' ')
		goto bad;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || end == v)
		goto bad;
	if (suffix && *end) {
		if (strcmp(end, "K") == 0 || strcmp(end, "k") == 0)
			mul = 1ULL << 10;
		else if (strcmp(end, "M") == 0)
			mul = 1ULL << 20;
		else if (strcmp(end, "G") == 0)
			mul = 1ULL << 30;
		else
			goto bad;
	} else if (*end) {
		goto bad;
	}
	if (x > hi / mul || x * mul < lo || x * mul > hi)
		goto bad;
	*out = x * mul;
	return 0;
bad:
	return rs_err_set(err, EINVAL, "%s: '%s' is not a number in %" PRIu64 "..%" PRIu64 "%s",
			  key, v, lo, hi, suffix ? " (suffix K, M or G allowed)" : "");
}

int rs_metrics_conf_set(rs_metrics_conf_t *conf, const char *key, const char *value,
			rs_err_t *err)
{
	uint64_t n = 0;
	int rc;

	if (!key || !value)
		return rs_err_set(err, EINVAL, "metrics option: key and value required");
	if (strcmp(key, "metrics_url") == 0 || strcmp(key, "alert_url") == 0) {
		rc = _check_url(key, value, err);
		if (rc)
			return rc;
		return _set_str(key[0] == 'm' ? &conf->url : &conf->alert_url, value, key, err);
	}
	if (strcmp(key, "metrics_format") == 0) {
		for (size_t i = 0; i < 3; i++) {
			if (strcmp(value, format_names[i]) == 0) {
				conf->format = (rs_metrics_format_t)i;
				return 0;
			}
		}
		return rs_err_set(err, EINVAL, "metrics_format: '%s' is not json, clickhouse "
				  "or prometheus", value);
	}
	if (strcmp(key, "alert_format") == 0) {
		for (size_t i = 0; i < 2; i++) {
			if (strcmp(value, alert_names[i]) == 0) {
				conf->alert_format = (rs_alert_format_t)i;
				return 0;
			}
		}
		return rs_err_set(err, EINVAL, "alert_format: '%s' is not alertmanager or json",
				  value);
	}
	if (strcmp(key, "clickhouse_table") == 0) {
		/* Goes into the INSERT query: identifiers only, db.table at most. */
		size_t len = strlen(value);
		const char *dot = strchr(value, '.');
		int ok = len > 0 && len <= 128 && strspn(value, "abcdefghijklmnopqrstuvwxyz"
			 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") == len &&
			 value[0] != '.' && value[len - 1] != '.' &&
			 (!dot || !strchr(dot + 1, '.'));
		if (!ok)
			return rs_err_set(err, EINVAL, "clickhouse_table: '%s' is not [db.]table "
					  "(letters, digits, _)", value);
		return _set_str(&conf->clickhouse_table, value, key, err);
	}
	if (strcmp(key, "token_file") == 0 || strcmp(key, "clickhouse_credentials") == 0 ||
	    strcmp(key, "spool_dir") == 0) {
		char **slot = key[0] == 't' ? &conf->token_file
			    : key[0] == 'c' ? &conf->clickhouse_credentials : &conf->spool_dir;
		rc = _check_abs(key, value, err);
		if (rc)
			return rc;
		return _set_str(slot, value, key, err);
	}
	if (strcmp(key, "timeout_ms") == 0) {
		rc = _parse_num(key, value, 1, RS_SEND_MAX_TIMEOUT_MS, 0, &n, err);
		if (!rc)
			conf->timeout_ms = (long)n;
		return rc;
	}
	if (strcmp(key, "flush_budget_ms") == 0) {
		rc = _parse_num(key, value, 100, 600000, 0, &n, err);
		if (!rc)
			conf->budget_ms = (long)n;
		return rc;
	}
	if (strcmp(key, "spool_max_entries") == 0) {
		rc = _parse_num(key, value, 1, 10000000, 0, &n, err);
		if (!rc)
			conf->spool_max_entries = (unsigned long)n;
		return rc;
	}
	if (strcmp(key, "spool_max_bytes") == 0) {
		rc = _parse_num(key, value, 4096, 64ULL << 30, 1, &n, err);
		if (!rc)
			conf->spool_max_bytes = n;
		return rc;
	}
	if (strcmp(key, "cluster") == 0) {
		size_t len = strlen(value);
		if (len == 0 || len > 64 ||
		    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789._-") != len)
			return rs_err_set(err, EINVAL, "cluster: '%s' is not 1-64 letters, digits, "
					  "'.', '_' or '-'", value);
		return _set_str(&conf->cluster, value, key, err);
	}
	return rs_err_set(err, ENOENT, "unknown metrics option '%s'", key);
}

int rs_metrics_conf_check(const rs_metrics_conf_t *conf, rs_err_t *err)
{
	char secret[RS_SEND_SECRET_MAX], user[256], pass[RS_SEND_SECRET_MAX];
	int rc;

	if (conf->clickhouse_credentials && conf->format != RS_METRICS_CLICKHOUSE)
		return rs_err_set(err, EINVAL, "clickhouse_credentials= is set but "
				  "metrics_format is %s, not clickhouse",
				  format_names[conf->format]);
	if (conf->token_file) {
		rc = rs_send_read_secret(conf->token_file, "token_file", secret, sizeof(secret), err);
		explicit_bzero(secret, sizeof(secret));
		if (rc)
			return rc;
	}
	if (conf->clickhouse_credentials) {
		rc = rs_send_read_credentials(conf->clickhouse_credentials,
					      "clickhouse_credentials", user, sizeof(user),
					      pass, sizeof(pass), err);
		explicit_bzero(pass, sizeof(pass));
		if (rc)
			return rc;
	}
	return 0;
}

int rs_metrics_enabled(const rs_metrics_conf_t *conf, int is_exhausted_alert)
{
	return conf && (conf->url || (is_exhausted_alert && conf->alert_url));
}

long rs_metrics_backoff_s(unsigned attempts)
{
	long s = 30;

	for (unsigned i = 1; i < attempts && s < 3600; i++)
		s *= 2;
	return s > 3600 ? 3600 : s;
}

/* ------------------------------------------------------------- logging --- */

void rs_metrics_log(const rs_metrics_conf_t *conf, int level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!conf->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf->log(conf->log_arg, level, msg);
}

static const char *_spool_dir(const rs_metrics_conf_t *conf)
{
	return conf->spool_dir ? conf->spool_dir : RS_METRICS_DEFAULT_SPOOL;
}

int rs_metrics_open_spool(const rs_metrics_conf_t *conf, int create, rs_spool_t **sp,
			  rs_err_t *err)
{
	rs_spool_limits_t lim = { conf->spool_max_entries, conf->spool_max_bytes };

	return rs_spool_open(_spool_dir(conf), &lim, create, sp, err);
}

/* -------------------------------------------------------------- submit --- */

int rs_metrics_spool_event(const rs_metrics_conf_t *conf, const rs_event_t *ev,
			   int is_exhausted_alert, rs_err_t *err)
{
	rs_spool_t *sp = NULL;
	rs_spool_entry_t e;
	rs_event_t copy;
	char *payload = NULL, *path = NULL;
	int rc = 0, rc2;

	if (!rs_metrics_enabled(conf, is_exhausted_alert))
		return 0;
	if (!ev)
		return rs_err_set(err, EINVAL, "metrics: no event");
	/* The site's cluster name wins over what the caller filled in; the
	 * copy borrows the strings, it is not freed. */
	copy = *ev;
	if (conf->cluster)
		copy.cluster = conf->cluster;
	rc = rs_event_validate(&copy, err);
	if (rc)
		return rc;
	rc = rs_metrics_open_spool(conf, 1, &sp, err);
	if (rc)
		return rc;
	if (conf->url) {
		memset(&e, 0, sizeof(e));
		e.kind = RS_SPOOL_METRICS;
		snprintf(e.format, sizeof(e.format), "%s", format_names[conf->format]);
		rs_event_id(&copy, e.event_id, sizeof(e.event_id));
		switch (conf->format) {
		case RS_METRICS_CLICKHOUSE:
			rc = rs_event_to_clickhouse(&copy, &payload, err);
			break;
		case RS_METRICS_PROMETHEUS:
			rc = rs_event_to_prometheus(&copy, &payload, err);
			if (!rc)
				rc = rs_event_pushgateway_path(&copy, &path, err);
			if (!rc)
				snprintf(e.path, sizeof(e.path), "%s", path);
			break;
		default:
			rc = rs_event_to_json(&copy, &payload, err);
			break;
		}
		if (rc)
			goto out;
		e.payload = payload;
		e.len = strlen(payload);
		rc = rs_spool_put(sp, &e, err);
		free(payload);
		payload = NULL;
		/* Go on with the alert even if the metrics entry failed. */
	}
	if (is_exhausted_alert && conf->alert_url) {
		rs_err_t err2;

		memset(&e, 0, sizeof(e));
		e.kind = RS_SPOOL_ALERT;
		snprintf(e.format, sizeof(e.format), "%s", alert_names[conf->alert_format]);
		rs_event_id(&copy, e.event_id, sizeof(e.event_id));
		if (conf->alert_format == RS_ALERT_JSON)
			rc2 = rs_event_to_alert_json(&copy, &payload, &err2);
		else
			rc2 = rs_event_to_alertmanager(&copy, &payload, &err2);
		if (!rc2) {
			e.payload = payload;
			e.len = strlen(payload);
			rc2 = rs_spool_put(sp, &e, &err2);
		}
		if (rc2 && !rc) {
			rc = rc2;
			if (err)
				*err = err2;
		}
	}
out:
	free(payload);
	free(path);
	rs_spool_close(sp);
	return rc;
}

int rs_metrics_spawn_flush(const rs_metrics_conf_t *conf, rs_err_t *err)
{
	long budget = conf->budget_ms > 0 ? conf->budget_ms : RS_METRICS_DEFAULT_BUDGET_MS;
	char *argv[40], buf[8192], b[32];
	const char *cmd = conf->flush_cmd ? conf->flush_cmd : RS_BINDIR "/slurm-resilience";
	int rc;

	snprintf(b, sizeof(b), "%ld", budget);
	argv[0] = "slurm-resilience";
	argv[1] = "flush";
	argv[2] = "--quiet";
	argv[3] = "--budget-ms";
	argv[4] = b;
	if (rs_metrics_conf_args(conf, argv + 5, 35, buf, sizeof(buf)) < 0)
		return rs_err_set(err, EINVAL, "metrics: background send not started (its "
				  "arguments do not fit); the spool keeps the event for the next flush");
	/* Detached, out of the job's cgroups (proctrack/cgroup would kill it
	 * at the step's end), and the backstop survives exec: whatever
	 * blocks, SIGALRM's default action ends the sender 2 s after the
	 * budget.  The sender is the CLI: libcurl is loaded there, never in
	 * srun or slurmstepd. */
	rc = rs_privsep_spawn_detached(cmd, argv, (unsigned)((budget + 999) / 1000 + 2));
	if (rc)
		return rs_err_set(err, -rc, "metrics: background send not started (%s); "
				  "the spool keeps the event for the next flush", strerror(-rc));
	return 0;
}

int rs_metrics_submit(const rs_metrics_conf_t *conf, const rs_event_t *ev,
		      int is_exhausted_alert, rs_err_t *err)
{
	int rc;

	if (!rs_metrics_enabled(conf, is_exhausted_alert))
		return 0;
	rc = rs_metrics_spool_event(conf, ev, is_exhausted_alert, err);
	if (rc == -EINVAL)
		return rc; /* a bad event: nothing was spooled */
	/* Even if one of the two entries failed (full spool), the other and
	 * older entries may be waiting. */
	{
		rs_err_t e2;
		int rc2 = rs_metrics_conf_check(conf, &e2);
		if (rc2) {
			if (!rc) {
				rs_event_t copy = *ev;
				char id[512];

				if (conf->cluster)
					copy.cluster = conf->cluster;
				rs_event_id(&copy, id, sizeof(id));
				rs_err_set(err, -rc2, "%s spooled, not sent: %.900s", id, e2.msg);
			}
			return rc ? rc : rc2;
		}
		rc2 = rs_metrics_spawn_flush(conf, &e2);
		if (rc2 && !rc) {
			if (err)
				*err = e2;
			rc = rc2;
		}
	}
	return rc;
}

