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
#include "send.h"
#include "spool.h"

#define TMP_MAX_AGE_S 3600 /* a .tmp- file older than this is a crash's */
#define MIN_REQUEST_MS 50  /* below this much budget, do not start a send */

static const char *const format_names[] = { "json", "clickhouse", "prometheus" };
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

static void _log(const rs_metrics_conf_t *conf, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void _log(const rs_metrics_conf_t *conf, int level, const char *fmt, ...)
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

static int _open_spool(const rs_metrics_conf_t *conf, int create, rs_spool_t **sp,
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
	rc = _open_spool(conf, 1, &sp, err);
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

/* Reset what a background process inherits from slurmstepd (or any
 * caller): signal dispositions and mask, open files, cwd. */
static void _detach_process(void)
{
	struct sigaction sa;
	sigset_t all;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL); /* fails harmlessly for KILL/STOP/RT */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL); /* a receiver closing on us is an error code */
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	/* Keep nothing of the host's open: sockets to slurmd, the job's
	 * files, pipes whose other end waits for EOF. */
	if (close_range(3U, ~0U, 0) != 0) {
		struct rlimit rl;
		long max = 65536;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    (long)rl.rlim_cur < max)
			max = (long)rl.rlim_cur;
		for (long i = 3; i < max; i++)
			close((int)i);
	}
	if (chdir("/") != 0) {
		/* nothing to do: the flusher uses absolute paths only */
	}
}

static void _syslog_fn(void *arg, int level, const char *msg)
{
	(void)arg;
	syslog(level, "%s", msg);
}

int rs_metrics_spawn_flush(const rs_metrics_conf_t *conf, rs_err_t *err)
{
	pid_t pid, w;
	int status;

	pid = fork();
	if (pid < 0)
		return rs_err_set(err, errno, "metrics: background send not started (fork: %s); "
				  "the spool keeps the event for the next flush", strerror(errno));
	if (pid == 0) {
		/* First child: new session (no controlling terminal, out of the
		 * caller's process group so a signal to the group misses it),
		 * fork again so the flusher is not our child (no zombie left
		 * in the caller, nobody waits for it) and leave at once. */
		setsid();
		pid = fork();
		if (pid != 0)
			_exit(pid < 0 ? 1 : 0);
		rs_metrics_conf_t c = *conf;
		rs_metrics_flush_stats_t st;
		rs_err_t e;
		long budget = conf->budget_ms > 0 ? conf->budget_ms : RS_METRICS_DEFAULT_BUDGET_MS;

		_detach_process();
		/* The backstop: whatever blocks, SIGALRM's default action ends
		 * the process 2 s after the budget. */
		alarm((unsigned)((budget + 999) / 1000 + 2));
		openlog("slurm-resilience", LOG_PID, LOG_DAEMON);
		c.log = _syslog_fn;
		c.log_arg = NULL;
		if (rs_metrics_flush(&c, budget, 0, &st, &e) != 0 && e.msg[0])
			syslog(LOG_WARNING, "metrics flush: %s", e.msg);
		_exit(0);
	}
	/* Reap the first child, which exits right after its fork.  ECHILD:
	 * the host reaped it first (slurmstepd may wait for any child). */
	do {
		w = waitpid(pid, &status, 0);
	} while (w < 0 && errno == EINTR);
	if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0)
		return rs_err_set(err, EAGAIN, "metrics: background send not started (fork "
				  "failed); the spool keeps the event for the next flush");
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
	rc = _open_spool(conf, 0, &sp, err);
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
			_log(conf, LOG_ERR, "metrics: %s", e2.msg);
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
		if (!kind && strcmp(e.format, format_names[conf->format]) != 0) {
			char why[128];
			snprintf(why, sizeof(why), "spooled as %s, but metrics_format is now %s",
				 e.format, format_names[conf->format]);
			if (rs_spool_dead(sp, &e, why, &e2) && e2.msg[0])
				_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			_log(conf, LOG_ERR, "metrics %s: dead letter: %s", e.event_id, why);
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
			_log(conf, LOG_ERR, "metrics %s: %s", e.event_id, e2.msg);
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
				_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			_log(conf, LOG_INFO, "%s %s delivered (%.0f ms)", kind ? "alert" : "metrics",
			     e.event_id, res.seconds * 1000);
			st.sent++;
			break;
		case RS_SEND_REJECT:
			_log(conf, LOG_ERR, "%s %s refused by the receiver, moved to %s/dead: %s",
			     kind ? "alert" : "metrics", e.event_id, rs_spool_dir(sp), res.message);
			if (rs_spool_dead(sp, &e, res.message, &e2))
				_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			st.dead++;
			break;
		default:
			down[kind] = 1;
			if (rs_spool_retry(sp, &e, (int64_t)time(NULL) +
					   rs_metrics_backoff_s(e.attempts + 1), res.message, &e2))
				_log(conf, LOG_ERR, "metrics: %s", e2.msg);
			_log(conf, LOG_WARNING, "%s %s not delivered (attempt %u), kept in %s: %s",
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
