/*
 * metrics_flush.c - delivering the spool (libcurl).  Used by the CLI
 * (`slurm-resilience flush`, which the plugin's detached sender execs),
 * never linked into resilience.so: loading libcurl and its ~30 libraries
 * into srun and every slurmstepd cost each job step ~20 ms (bench/steps.sh).
 * See metrics.h.
 */
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
#include "send.h"
#include "spool.h"

/* --------------------------------------------------------------- flush --- */

static long _now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Percent-encode s for a query string. */
static char *_urlencode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

typedef struct secrets {
	char token[RS_SEND_SECRET_MAX];
	char ch_user[256];
	char ch_key[RS_SEND_SECRET_MAX];
	int have_token, have_ch;
} secrets_t;

/* The URL and headers for entry e under conf.  *url is malloc'd. */
static int _build_request(const rs_metrics_conf_t *conf, const rs_spool_entry_t *e,
			  const secrets_t *sec, rs_send_req_t *req, char **url, rs_err_t *err)
{
	char *q = NULL;
	const char *base;
	int n = -1;

	memset(req, 0, sizeof(*req));
	*url = NULL;
	req->method = "POST";
	req->content_type = "application/json";
	req->body = e->payload;
	req->len = e->len;
	req->timeout_ms = conf->timeout_ms;
	req->bearer = sec->have_token ? sec->token : NULL;
	if (e->kind == RS_SPOOL_ALERT) {
		base = conf->alert_url;
		if (strcmp(e->format, "alertmanager") == 0) {
			size_t bl = strlen(base);
			const char *suffix = "/api/v2/alerts";
			int has = bl >= strlen(suffix) && strcmp(base + bl - strlen(suffix), suffix) == 0;
			while (!has && bl > 0 && base[bl - 1] == '/')
				bl--;
			n = has ? asprintf(url, "%s", base)
				: asprintf(url, "%.*s%s", (int)bl, base, suffix);
		} else {
			n = asprintf(url, "%s", base);
		}
	} else if (strcmp(e->format, "clickhouse") == 0) {
		char query[256];

		snprintf(query, sizeof(query), "INSERT INTO %s FORMAT JSONEachRow",
			 conf->clickhouse_table ? conf->clickhouse_table : RS_METRICS_DEFAULT_TABLE);
		q = _urlencode(query);
		if (!q)
			return rs_err_set(err, ENOMEM, "metrics: out of memory");
		/* input_format_skip_unknown_fields: a field added to the event
		 * (same schema version) must not make an older table refuse
		 * every row; the new field is just not stored there. */
		n = asprintf(url, "%s%sinput_format_skip_unknown_fields=1&query=%s", conf->url,
			     strchr(conf->url, '?') ? "&" : "?", q);
		free(q);
		req->content_type = NULL;
		req->clickhouse = 1;
		/* ClickHouse takes X-ClickHouse-User/Key or basic auth, never
		 * both, and answers 500 to a Bearer header: with credentials,
		 * the token is for a proxy only if there are none. */
		if (sec->have_ch) {
			req->ch_user = sec->ch_user;
			req->ch_key = sec->ch_key;
			req->bearer = NULL;
		}
	} else if (strcmp(e->format, "prometheus") == 0) {
		size_t bl = strlen(conf->url);
		while (bl > 0 && conf->url[bl - 1] == '/')
			bl--;
		/* PUT replaces the job's whole group: metrics of an earlier
		 * attempt that this one lacks (energy, restore) disappear. */
		req->method = "PUT";
		req->content_type = "text/plain; version=0.0.4";
		n = asprintf(url, "%.*s%s", (int)bl, conf->url, e->path);
	} else {
		n = asprintf(url, "%s", conf->url);
	}
	if (n < 0) {
		*url = NULL;
		return rs_err_set(err, ENOMEM, "metrics: out of memory");
	}
	req->url = *url;
	return 0;
}

static int _read_secrets(const rs_metrics_conf_t *conf, secrets_t *sec, rs_err_t *err)
{
	int rc;

	memset(sec, 0, sizeof(*sec));
	if (conf->token_file) {
		rc = rs_send_read_secret(conf->token_file, "token_file", sec->token,
					 sizeof(sec->token), err);
		if (rc)
			return rc;
		sec->have_token = 1;
	}
	if (conf->clickhouse_credentials) {
		rc = rs_send_read_credentials(conf->clickhouse_credentials,
					      "clickhouse_credentials", sec->ch_user,
					      sizeof(sec->ch_user), sec->ch_key,
					      sizeof(sec->ch_key), err);
		if (rc)
			return rc;
		sec->have_ch = 1;
	}
	return 0;
}

int rs_metrics_flush(const rs_metrics_conf_t *conf, long budget_ms, unsigned flags,
		     rs_metrics_flush_stats_t *stats, rs_err_t *err)
{
	rs_metrics_flush_stats_t st = { 0 };
	rs_spool_t *sp = NULL;
	rs_send_t *snd = NULL;
	secrets_t *sec = NULL;
	char **names = NULL;
	size_t n = 0;
	long deadline = _now_ms() + budget_ms, left;
	int down[2] = { 0, 0 }; /* metrics, alert: failed to answer this run */
	int rc;

	rs_err_clear(err);
	if (budget_ms <= 0) {
		budget_ms = RS_METRICS_DEFAULT_BUDGET_MS;
		deadline = _now_ms() + budget_ms;
	}
	rc = rs_metrics_open_spool(conf, 0, &sp, err);
	if (rc == -ENOENT) {
		/* Nothing was ever spooled on this node. */
		rs_err_clear(err);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	rc = rs_spool_lock(sp, budget_ms, err);
	if (rc)
		goto out;
	rs_spool_clean_tmp(sp, TMP_MAX_AGE_S, NULL);
	sec = calloc(1, sizeof(*sec));
	if (!sec) {
		rc = rs_err_set(err, ENOMEM, "metrics: out of memory");
		goto out;
	}
	rc = _read_secrets(conf, sec, err);
	if (rc)
		goto out;
	rc = rs_spool_list(sp, 0, &names, &n, err);
	if (rc)
		goto out;
	if (n) {
		rc = rs_send_new(&snd, err);
		if (rc)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rs_spool_entry_t e;
		rs_send_req_t req;
		rs_send_result_t res;
		rs_err_t e2;
		char *url = NULL;
		int kind;

		left = deadline - _now_ms();
		if (left < MIN_REQUEST_MS) {
			st.out_of_time = 1;
			break;
		}
		rc = rs_spool_read(sp, names[i], 0, &e, &e2);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc == -ENOMEM) {
			if (err)
				*err = e2;
			goto out;
		}
		if (rc) {
			/* Malformed, planted symlink, foreign owner, I/O error: not
			 * ours to send, kept for a person to look at, and it must
			 * not block the entries behind it. */
			rs_metrics_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			rc = 0;
			st.skipped++;
			continue;
		}
		kind = e.kind == RS_SPOOL_ALERT;
		if (down[kind] || (!(flags & RS_METRICS_FLUSH_ALL) && e.next_try > time(NULL)) ||
		    (kind ? !conf->alert_url : !conf->url)) {
			st.skipped++;
			rs_spool_entry_free(&e);
			continue;
		}
		if (!kind && strcmp(e.format, rs_metrics_format_name(conf->format)) != 0) {
			char why[128];
			snprintf(why, sizeof(why), "spooled as %s, but metrics_format is now %s",
				 e.format, rs_metrics_format_name(conf->format));
			if (rs_spool_dead(sp, &e, why, &e2) && e2.msg[0])
				rs_metrics_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			rs_metrics_log(conf, LOG_ERR, "metrics %s: dead letter: %s", e.event_id, why);
			st.dead++;
			rs_spool_entry_free(&e);
			continue;
		}
		rc = _build_request(conf, &e, sec, &req, &url, err);
		if (rc) {
			rs_spool_entry_free(&e);
			goto out;
		}
		if (req.timeout_ms > left)
			req.timeout_ms = left;
		rc = rs_send_request(snd, &req, &res, &e2);
		free(url);
		if (rc) {
			/* A request we cannot even make: keep the entry. */
			rs_metrics_log(conf, LOG_ERR, "metrics %s: %s", e.event_id, e2.msg);
			rs_spool_retry(sp, &e, (int64_t)time(NULL) + rs_metrics_backoff_s(e.attempts + 1),
				       e2.msg, NULL);
			st.retry++;
			rs_spool_entry_free(&e);
			rc = 0;
			continue;
		}
		switch (res.verdict) {
		case RS_SEND_DONE:
			if (rs_spool_done(sp, e.name, &e2))
				rs_metrics_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			rs_metrics_log(conf, LOG_INFO, "%s %s delivered (%.0f ms)", kind ? "alert" : "metrics",
			     e.event_id, res.seconds * 1000);
			st.sent++;
			break;
		case RS_SEND_REJECT:
			rs_metrics_log(conf, LOG_ERR, "%s %s refused by the receiver, moved to %s/dead: %s",
			     kind ? "alert" : "metrics", e.event_id, rs_spool_dir(sp), res.message);
			if (rs_spool_dead(sp, &e, res.message, &e2))
				rs_metrics_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			st.dead++;
			break;
		default:
			down[kind] = 1;
			if (rs_spool_retry(sp, &e, (int64_t)time(NULL) +
					   rs_metrics_backoff_s(e.attempts + 1), res.message, &e2))
				rs_metrics_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			rs_metrics_log(conf, LOG_WARNING, "%s %s not delivered (attempt %u), kept in %s: %s",
			     kind ? "alert" : "metrics", e.event_id, e.attempts, rs_spool_dir(sp),
			     res.message);
			st.retry++;
			break;
		}
		rs_spool_entry_free(&e);
	}
	rc = 0;
out:
	if (sp) {
		uint64_t bytes = 0;
		char **dn = NULL;
		size_t dcount = 0;

		if (rs_spool_usage(sp, &st.left, &bytes, NULL) == 0 &&
		    rs_spool_list(sp, 1, &dn, &dcount, NULL) == 0)
			st.dead_total = dcount;
		rs_spool_names_free(dn, dcount);
	}
	if (sec)
		explicit_bzero(sec, sizeof(*sec));
	free(sec);
	rs_spool_names_free(names, n);
	rs_send_free(snd);
	rs_spool_close(sp);
	if (stats)
		*stats = st;
	return rc;
}
