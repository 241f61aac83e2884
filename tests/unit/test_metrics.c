/* test_metrics.c - site options, spooling an event, flushing the spool to
 * a loopback stub (delivered / retried later / dead letter), and the time
 * rs_metrics_submit() takes when the receiver hangs. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "metrics.h"
#include "spool.h"
#include "http_stub.h"

static char base[64];
static char spool[128];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/rs-metrics-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(spool, sizeof(spool), "%s/spool", base);
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static void set(rs_metrics_conf_t *c, const char *k, const char *v)
{
	rs_err_t err;
	ck_assert_msg(rs_metrics_conf_set(c, k, v, &err) == 0, "%s=%s: %s", k, v, err.msg);
}

static void sample(rs_event_t *ev, unsigned job, unsigned attempt)
{
	rs_event_init(ev);
	ev->cluster = strdup("alpha");
	ev->job_id = job;
	ev->attempt = attempt;
	ev->user = strdup("alice");
	ev->account = strdup("physics");
	ev->partition = strdup("batch");
	ev->outcome = RS_OUTCOME_FAILED;
	ev->action = RS_ACTION_REQUEUED;
	ev->start_time = 1700000000;
	ev->end_time = 1700000060;
	ev->duration_seconds = 60;
	ev->ckpt_dir = strdup("/ckpt/42");
}

static size_t entries(int dead)
{
	rs_spool_t *sp = NULL;
	char **names = NULL;
	size_t n = 0;
	rs_err_t err;

	if (rs_spool_open(spool, NULL, 0, &sp, &err))
		return 0;
	ck_assert_int_eq(rs_spool_list(sp, dead, &names, &n, &err), 0);
	rs_spool_names_free(names, n);
	rs_spool_close(sp);
	return n;
}

/* The first live (or dead) entry, read back. */
static void first_entry(int dead, rs_spool_entry_t *e)
{
	rs_spool_t *sp = NULL;
	char **names = NULL;
	size_t n = 0;
	rs_err_t err;

	ck_assert_int_eq(rs_spool_open(spool, NULL, 0, &sp, &err), 0);
	ck_assert_int_eq(rs_spool_list(sp, dead, &names, &n, &err), 0);
	ck_assert_uint_ge(n, 1);
	ck_assert_int_eq(rs_spool_read(sp, names[0], dead, e, &err), 0);
	rs_spool_names_free(names, n);
	rs_spool_close(sp);
}

static void conf_for(rs_metrics_conf_t *c, stub_t *st, const char *format)
{
	char url[128];

	rs_metrics_conf_init(c);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", st ? st->port : 1);
	set(c, "metrics_url", url);
	set(c, "metrics_format", format);
	set(c, "spool_dir", spool);
	set(c, "timeout_ms", "1000");
	/* The detached sender execs the CLI: the one just built. */
	if (getenv("RS_BUILD")) {
		char cmd[4096];

		snprintf(cmd, sizeof(cmd), "%s/slurm-resilience", getenv("RS_BUILD"));
		c->flush_cmd = strdup(cmd);
	}
}

/* ------------------------------------------------------------ options --- */

START_TEST(test_metrics_conf_defaults)
{
	rs_metrics_conf_t c;

	rs_metrics_conf_init(&c);
	ck_assert_ptr_null(c.url);
	ck_assert_ptr_null(c.alert_url);
	ck_assert_int_eq(c.format, RS_METRICS_JSON);
	ck_assert_int_eq(c.alert_format, RS_ALERT_ALERTMANAGER);
	ck_assert_int_eq(c.timeout_ms, 2000);
	ck_assert_uint_eq(c.spool_max_entries, 10000);
	ck_assert_uint_eq(c.spool_max_bytes, 64ULL << 20);
	ck_assert_int_eq(c.budget_ms, 10000);
	ck_assert_int_eq(rs_metrics_enabled(&c, 1), 0);
	ck_assert_int_eq(rs_metrics_enabled(NULL, 1), 0);
	rs_metrics_conf_free(&c);
	rs_metrics_conf_free(NULL);
}
END_TEST

START_TEST(test_metrics_conf_set_accepts_every_key)
{
	rs_metrics_conf_t c;

	rs_metrics_conf_init(&c);
	set(&c, "metrics_url", "https://ch.example:8443/");
	set(&c, "metrics_format", "clickhouse");
	set(&c, "clickhouse_table", "slurm.events_v1");
	set(&c, "token_file", "/etc/slurm/metrics.token");
	set(&c, "clickhouse_credentials", "/etc/slurm/ch.cred");
	set(&c, "spool_dir", "/var/spool/x");
	set(&c, "timeout_ms", "1500");
	set(&c, "alert_url", "http://am:9093");
	set(&c, "alert_format", "json");
	set(&c, "cluster", "alpha-2.b_c");
	set(&c, "spool_max_entries", "500");
	set(&c, "spool_max_bytes", "8M");
	set(&c, "flush_budget_ms", "3000");
	ck_assert_str_eq(c.url, "https://ch.example:8443/");
	ck_assert_int_eq(c.format, RS_METRICS_CLICKHOUSE);
	ck_assert_str_eq(c.clickhouse_table, "slurm.events_v1");
	ck_assert_str_eq(c.token_file, "/etc/slurm/metrics.token");
	ck_assert_str_eq(c.clickhouse_credentials, "/etc/slurm/ch.cred");
	ck_assert_str_eq(c.spool_dir, "/var/spool/x");
	ck_assert_int_eq(c.timeout_ms, 1500);
	ck_assert_str_eq(c.alert_url, "http://am:9093");
	ck_assert_int_eq(c.alert_format, RS_ALERT_JSON);
	ck_assert_str_eq(c.cluster, "alpha-2.b_c");
	ck_assert_uint_eq(c.spool_max_entries, 500);
	ck_assert_uint_eq(c.spool_max_bytes, 8ULL << 20);
	ck_assert_int_eq(c.budget_ms, 3000);
	ck_assert_int_eq(rs_metrics_enabled(&c, 0), 1);
	/* later values replace earlier ones; empty URL turns it off */
	set(&c, "metrics_url", "");
	ck_assert_ptr_null(c.url);
	ck_assert_int_eq(rs_metrics_enabled(&c, 0), 0);
	ck_assert_int_eq(rs_metrics_enabled(&c, 1), 1);
	set(&c, "spool_max_bytes", "4096");
	ck_assert_uint_eq(c.spool_max_bytes, 4096);
	set(&c, "spool_max_bytes", "2G");
	ck_assert_uint_eq(c.spool_max_bytes, 2ULL << 30);
	set(&c, "timeout_ms", "60000");
	ck_assert_int_eq(c.timeout_ms, 60000);
	ck_assert_int_eq(rs_metrics_conf_is_key("alert_format"), 1);
	ck_assert_int_eq(rs_metrics_conf_is_key("retries"), 0);
	ck_assert_int_eq(rs_metrics_conf_is_key(NULL), 0);
	rs_metrics_conf_free(&c);
	ck_assert_ptr_null(c.url);
}
END_TEST

START_TEST(test_metrics_conf_set_rejects_bad_values)
{
	static const struct {
		const char *k, *v, *msg;
	} t[] = {
		{ "metrics_format", "influx", "metrics_format: 'influx' is not json, clickhouse or prometheus" },
		{ "alert_format", "slack", "alert_format: 'slack' is not alertmanager or json" },
		{ "metrics_url", "ftp://h/", "metrics_url: expected an http:// or https:// URL" },
		{ "metrics_url", "http:///x", "metrics_url: the URL has no host" },
		{ "alert_url", "http://h/a b", "alert_url: the URL has a space or control character" },
		{ "timeout_ms", "0", "timeout_ms: '0' is not a number in 1..60000" },
		{ "timeout_ms", "60001", "timeout_ms: '60001' is not a number in 1..60000" },
		{ "timeout_ms", "-5", "timeout_ms: '-5' is not a number in 1..60000" },
		{ "timeout_ms", "12ms", "timeout_ms: '12ms' is not a number in 1..60000" },
		{ "timeout_ms", "", "timeout_ms: '' is not a number in 1..60000" },
		{ "timeout_ms", "99999999999999999999999", "timeout_ms: '99999999999999999999999' is not a number in 1..60000" },
		{ "spool_max_entries", "0", "spool_max_entries: '0' is not a number in 1..10000000" },
		{ "spool_max_bytes", "1T", "spool_max_bytes: '1T' is not a number in 4096..68719476736 (suffix K, M or G allowed)" },
		{ "spool_max_bytes", "100", "spool_max_bytes: '100' is not a number in 4096..68719476736 (suffix K, M or G allowed)" },
		{ "spool_max_bytes", "65G", "spool_max_bytes: '65G' is not a number in 4096..68719476736 (suffix K, M or G allowed)" },
		{ "flush_budget_ms", "50", "flush_budget_ms: '50' is not a number in 100..600000" },
		{ "clickhouse_table", "t; DROP TABLE x", "clickhouse_table: 't; DROP TABLE x' is not [db.]table (letters, digits, _)" },
		{ "clickhouse_table", "a.b.c", "clickhouse_table: 'a.b.c' is not [db.]table (letters, digits, _)" },
		{ "clickhouse_table", ".t", "clickhouse_table: '.t' is not [db.]table (letters, digits, _)" },
		{ "clickhouse_table", "", "clickhouse_table: '' is not [db.]table (letters, digits, _)" },
		{ "token_file", "relative/token", "token_file: expected an absolute path, got 'relative/token'" },
		{ "spool_dir", "spool", "spool_dir: expected an absolute path, got 'spool'" },
		{ "cluster", "a/b", "cluster: 'a/b' is not 1-64 letters, digits, '.', '_' or '-'" },
		{ "cluster", "", "cluster: '' is not 1-64 letters, digits, '.', '_' or '-'" },
	};
	rs_metrics_conf_t c;
	rs_err_t err;

	rs_metrics_conf_init(&c);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err.msg[0] = '\0';
		ck_assert_msg(rs_metrics_conf_set(&c, t[i].k, t[i].v, &err) == -EINVAL, "%s=%s",
			      t[i].k, t[i].v);
		ck_assert_str_eq(err.msg, t[i].msg);
	}
	/* the defaults are untouched by refused values */
	ck_assert_int_eq(c.timeout_ms, 2000);
	ck_assert_ptr_null(c.clickhouse_table);
	ck_assert_int_eq(rs_metrics_conf_set(&c, "metrics_urll", "http://h/", &err), -ENOENT);
	ck_assert_str_eq(err.msg, "unknown metrics option 'metrics_urll'");
	ck_assert_int_eq(rs_metrics_conf_set(&c, NULL, "x", &err), -EINVAL);
	ck_assert_int_eq(rs_metrics_conf_set(&c, "cluster", NULL, &err), -EINVAL);
	rs_metrics_conf_free(&c);
}
END_TEST

START_TEST(test_metrics_conf_refuses_password_in_url_without_echo)
{
	rs_metrics_conf_t c;
	rs_err_t err;

	rs_metrics_conf_init(&c);
	ck_assert_int_eq(rs_metrics_conf_set(&c, "metrics_url",
					     "http://writer:Hunter2-SECRET@ch:8123/", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "metrics_url: user info in the URL is refused (plugstack.conf "
			 "is readable by every user); put the secret in token_file= or "
			 "clickhouse_credentials=");
	ck_assert_ptr_null(strstr(err.msg, "Hunter2"));
	ck_assert_ptr_null(c.url);
	/* ClickHouse's ?password= is refused the same way, anywhere in the query */
	ck_assert_int_eq(rs_metrics_conf_set(&c, "metrics_url",
					     "http://ch:8123/?user=w&PASSWORD=Hunter2-SECRET", &err), -EINVAL);
	ck_assert_str_eq(err.msg, "metrics_url: a password in the URL is refused (plugstack.conf "
			 "is readable by every user); put it in clickhouse_credentials=");
	ck_assert_int_eq(rs_metrics_conf_set(&c, "metrics_url",
					     "http://ch:8123/?password=x", &err), -EINVAL);
	ck_assert_ptr_null(c.url);
	/* an '@' after the host is fine (path or query), and so are other
	 * parameters, even one ending in "password" */
	set(&c, "metrics_url", "http://ch:8123/a@b?x=@&database=slurm&nopassword=1#password=x");
	rs_metrics_conf_free(&c);
}
END_TEST

START_TEST(test_metrics_conf_check_secret_files)
{
	rs_metrics_conf_t c;
	rs_err_t err;
	char tok[160], cred[160];
	int fd;

	snprintf(tok, sizeof(tok), "%s/token", base);
	snprintf(cred, sizeof(cred), "%s/cred", base);
	fd = open(tok, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_eq(write(fd, "SECRET-TOKEN\n", 13), 13);
	close(fd);
	chmod(tok, 0644);
	rs_metrics_conf_init(&c);
	set(&c, "token_file", tok);
	ck_assert_int_eq(rs_metrics_conf_check(&c, &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, tok));
	ck_assert_ptr_null(strstr(err.msg, "SECRET-TOKEN"));
	chmod(tok, 0600);
	ck_assert_int_eq(rs_metrics_conf_check(&c, &err), 0);
	/* credentials are for ClickHouse only */
	fd = open(cred, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, "u:p\n", 4), 4);
	close(fd);
	set(&c, "clickhouse_credentials", cred);
	ck_assert_int_eq(rs_metrics_conf_check(&c, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "clickhouse_credentials= is set but metrics_format is json, "
			 "not clickhouse");
	set(&c, "metrics_format", "clickhouse");
	ck_assert_int_eq(rs_metrics_conf_check(&c, &err), 0);
	chmod(cred, 0640);
	ck_assert_int_eq(rs_metrics_conf_check(&c, &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "clickhouse_credentials"));
	rs_metrics_conf_free(&c);
}
END_TEST

START_TEST(test_metrics_backoff_doubles_to_an_hour)
{
	ck_assert_int_eq(rs_metrics_backoff_s(0), 30);
	ck_assert_int_eq(rs_metrics_backoff_s(1), 30);
	ck_assert_int_eq(rs_metrics_backoff_s(2), 60);
	ck_assert_int_eq(rs_metrics_backoff_s(3), 120);
	ck_assert_int_eq(rs_metrics_backoff_s(7), 1920);
	ck_assert_int_eq(rs_metrics_backoff_s(8), 3600);
	ck_assert_int_eq(rs_metrics_backoff_s(1000000), 3600);
}
END_TEST

/* ------------------------------------------------------ spool + flush --- */

START_TEST(test_metrics_flush_delivers_json_and_empties_spool)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	char h[128];

	conf_for(&c, st, "json");
	set(&c, "cluster", "site1"); /* the site's name wins over the event's */
	sample(&ev, 42, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_uint_eq(entries(0), 1);
	ck_assert_int_eq(stub_requests(st), 0); /* spooling sends nothing */
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 1);
	ck_assert_uint_eq(fs.retry, 0);
	ck_assert_uint_eq(fs.dead, 0);
	ck_assert_uint_eq(fs.left, 0);
	ck_assert_int_eq(stub_requests(st), 1);
	ck_assert_str_eq(st->method, "POST");
	ck_assert_str_eq(st->target, "/");
	ck_assert_ptr_nonnull(strstr(st->req_body, "\"event_id\":\"site1:42:1\",\"cluster\":\"site1\""));
	ck_assert_str_eq(stub_header(st, "Content-Type", h, sizeof(h)), "application/json");
	ck_assert_uint_eq(entries(0), 0);
	/* a second flush has nothing to do */
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 0);
	ck_assert_int_eq(stub_requests(st), 1);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_clickhouse_query_and_headers)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	char cred[160], tok[160], h[128];
	int fd;

	snprintf(cred, sizeof(cred), "%s/cred", base);
	fd = open(cred, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, "writer:pw\n", 10), 10);
	close(fd);
	snprintf(tok, sizeof(tok), "%s/tok", base);
	fd = open(tok, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, "TKN\n", 4), 4);
	close(fd);
	conf_for(&c, st, "clickhouse");
	set(&c, "clickhouse_table", "db.events");
	set(&c, "clickhouse_credentials", cred);
	set(&c, "token_file", tok);
	sample(&ev, 7, 2);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 1);
	ck_assert_str_eq(st->target, "/?input_format_skip_unknown_fields=1&query=INSERT%20INTO%20"
			 "db.events%20FORMAT%20JSONEachRow");
	ck_assert_str_eq(stub_header(st, "X-ClickHouse-User", h, sizeof(h)), "writer");
	ck_assert_str_eq(stub_header(st, "X-ClickHouse-Key", h, sizeof(h)), "pw");
	/* never both: no bearer to ClickHouse when it has credentials */
	ck_assert_ptr_null(stub_header(st, "Authorization", h, sizeof(h)));
	ck_assert_int_eq(st->req_body[st->req_len - 1], '\n');
	ck_assert_ptr_nonnull(strstr(st->req_body, "\"event_id\":\"alpha:7:2\""));
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_prometheus_puts_to_job_group)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	char url[128], h[128];

	conf_for(&c, st, "prometheus");
	snprintf(url, sizeof(url), "http://127.0.0.1:%d///", st->port); /* slashes trimmed */
	set(&c, "metrics_url", url);
	sample(&ev, 42, 3);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 1);
	ck_assert_str_eq(st->method, "PUT");
	ck_assert_str_eq(st->target, "/metrics/job/slurm_resilience/cluster/alpha/job_id/42");
	ck_assert_str_eq(stub_header(st, "Content-Type", h, sizeof(h)), "text/plain; version=0.0.4");
	ck_assert_ptr_nonnull(strstr(st->req_body, "\nslurm_resilience_attempts_total 3\n"));
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_alert_to_alertmanager_path)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	char url[128], h[128];

	rs_metrics_conf_init(&c);
	set(&c, "spool_dir", spool);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", st->port);
	set(&c, "alert_url", url);
	sample(&ev, 42, 3);
	/* not exhausted: no alert, and no metrics_url: nothing at all */
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_uint_eq(entries(0), 0);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 1, &err), 0);
	ck_assert_uint_eq(entries(0), 1);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 1);
	ck_assert_str_eq(st->target, "/api/v2/alerts");
	ck_assert_str_eq(stub_header(st, "Content-Type", h, sizeof(h)), "application/json");
	ck_assert_ptr_nonnull(strstr(st->req_body, "\"alertname\":\"SlurmJobRetriesExhausted\""));
	/* json alerts go to the URL as given */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hooks/slurm", st->port);
	set(&c, "alert_url", url);
	set(&c, "alert_format", "json");
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 1, &err), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_str_eq(st->target, "/hooks/slurm");
	ck_assert_ptr_nonnull(strstr(st->req_body, "{\"alert\":\"SlurmJobRetriesExhausted\""));
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_5xx_retried_later_not_now)
{
	stub_t *st = stub_start(STUB_REPLY, 503, "busy");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_spool_entry_t e;
	rs_event_t ev;
	rs_err_t err;
	time_t now = time(NULL);

	conf_for(&c, st, "json");
	sample(&ev, 1, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	rs_event_free(&ev);
	sample(&ev, 2, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	/* the first failed; the second was not tried against a sick receiver */
	ck_assert_uint_eq(fs.retry, 1);
	ck_assert_uint_eq(fs.skipped, 1);
	ck_assert_uint_eq(fs.left, 2);
	ck_assert_int_eq(stub_requests(st), 1);
	first_entry(0, &e);
	ck_assert_str_eq(e.event_id, "alpha:1:1");
	ck_assert_uint_eq(e.attempts, 1);
	ck_assert_int_ge(e.next_try, now + 30);
	ck_assert_int_le(e.next_try, time(NULL) + 30);
	ck_assert_ptr_nonnull(strstr(e.last_error, "HTTP 503: busy"));
	rs_spool_entry_free(&e);
	/* not due yet: the first waits; the second is tried and fails */
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_int_eq(stub_requests(st), 2);
	ck_assert_uint_eq(fs.retry, 1);
	/* now nothing is due */
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_int_eq(stub_requests(st), 2);
	ck_assert_uint_eq(fs.skipped, 2);
	/* --all, receiver healthy again: both go, in order */
	st->status = 200;
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, RS_METRICS_FLUSH_ALL, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 2);
	ck_assert_uint_eq(fs.left, 0);
	ck_assert_int_eq(stub_requests(st), 4);
	ck_assert_ptr_nonnull(strstr(st->req_body, "\"event_id\":\"alpha:2:1\""));
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_rejected_goes_to_dead_letter)
{
	stub_t *st = stub_start(STUB_REPLY, 500, "Code: 27, e.displayText() = DB::Exception: "
				"Cannot parse input: expected \" before: 42");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_spool_entry_t e;
	rs_event_t ev;
	rs_err_t err;

	conf_for(&c, st, "clickhouse");
	sample(&ev, 5, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.dead, 1);
	ck_assert_uint_eq(fs.left, 0);
	ck_assert_uint_eq(fs.dead_total, 1);
	first_entry(1, &e);
	ck_assert_ptr_nonnull(strstr(e.last_error, "HTTP 500: Code: 27, e.displayText() = "
				     "DB::Exception: Cannot parse input"));
	ck_assert_ptr_nonnull(strstr(e.payload, "\"event_id\":\"alpha:5:1\""));
	rs_spool_entry_free(&e);
	/* dead letters are not retried */
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, RS_METRICS_FLUSH_ALL, &fs, &err), 0);
	ck_assert_int_eq(stub_requests(st), 1);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_format_change_dead_letters)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_spool_entry_t e;
	rs_event_t ev;
	rs_err_t err;

	conf_for(&c, st, "clickhouse");
	sample(&ev, 5, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	set(&c, "metrics_format", "prometheus");
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.dead, 1);
	ck_assert_int_eq(stub_requests(st), 0);
	first_entry(1, &e);
	ck_assert_str_eq(e.last_error, "spooled as clickhouse, but metrics_format is now prometheus");
	rs_spool_entry_free(&e);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_bad_token_file_keeps_entries)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	char tok[160];
	int fd;

	snprintf(tok, sizeof(tok), "%s/tok", base);
	fd = open(tok, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, "TOKEN-XYZ\n", 10), 10);
	close(fd);
	chmod(tok, 0644);
	conf_for(&c, st, "json");
	set(&c, "token_file", tok);
	sample(&ev, 5, 1);
	/* submit spools first, then refuses the file, naming it */
	ck_assert_int_eq(rs_metrics_submit(&c, &ev, 0, &err), -EPERM);
	ck_assert_int_eq(strncmp(err.msg, "alpha:5:1 spooled, not sent: token_file ", 40), 0);
	ck_assert_ptr_nonnull(strstr(err.msg, tok));
	ck_assert_ptr_null(strstr(err.msg, "TOKEN-XYZ"));
	ck_assert_uint_eq(entries(0), 1);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), -EPERM);
	ck_assert_uint_eq(fs.left, 1);
	ck_assert_int_eq(stub_requests(st), 0);
	chmod(tok, 0600);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.sent, 1);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_skips_bad_entry_and_goes_on)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	char path[256];

	conf_for(&c, st, "json");
	sample(&ev, 3, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	/* older than the real entry, so listed first: a planted symlink */
	snprintf(path, sizeof(path), "%s/e-000000000001-000000001-1-1-5", spool);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 5000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.skipped, 1);
	ck_assert_uint_eq(fs.sent, 1);
	ck_assert_int_eq(stub_requests(st), 1);
	ck_assert_ptr_null(strstr(st->req_body, "root:"));
	ck_assert_uint_eq(fs.left, 1); /* the symlink stays for a person */
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_without_spool_is_empty)
{
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_err_t err;

	conf_for(&c, NULL, "json");
	ck_assert_int_eq(rs_metrics_flush(&c, 1000, 0, &fs, &err), 0);
	ck_assert_uint_eq(fs.left, 0);
	ck_assert_uint_eq(fs.sent, 0);
	rs_metrics_conf_free(&c);
}
END_TEST

START_TEST(test_metrics_flush_budget_bounds_a_hanging_receiver)
{
	stub_t *st = stub_start(STUB_HANG, 0, NULL);
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_event_t ev;
	rs_err_t err;
	struct timespec t0, t1;
	double s;

	conf_for(&c, st, "json");
	set(&c, "timeout_ms", "5000");
	sample(&ev, 9, 1);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rs_metrics_flush(&c, 400, 0, &fs, &err), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* the 5 s request timeout was cut to the 400 ms budget */
	ck_assert_double_lt(s, 1.0);
	ck_assert_uint_eq(fs.retry, 1);
	ck_assert_uint_eq(fs.left, 1);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_flush_busy_lock_bounded)
{
	rs_metrics_conf_t c;
	rs_metrics_flush_stats_t fs;
	rs_spool_t *sp = NULL;
	rs_err_t err;

	conf_for(&c, NULL, "json");
	ck_assert_int_eq(rs_spool_open(spool, NULL, 1, &sp, &err), 0);
	ck_assert_int_eq(rs_spool_lock(sp, 0, &err), 0);
	ck_assert_int_eq(rs_metrics_flush(&c, 200, 0, &fs, &err), -EBUSY);
	rs_spool_close(sp);
	ck_assert_int_eq(rs_metrics_flush(&c, 200, 0, &fs, &err), 0);
	rs_metrics_conf_free(&c);
}
END_TEST

/* ------------------------------------------------------------ submit --- */

static double since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

START_TEST(test_metrics_submit_returns_fast_and_delivers_in_background)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_event_t ev;
	rs_err_t err;
	struct timespec t0;
	double s;

	conf_for(&c, st, "json");
	sample(&ev, 77, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rs_metrics_submit(&c, &ev, 0, &err), 0);
	s = since(&t0);
	ck_assert_double_lt(s, 0.5);
	/* the detached flusher delivers it within its budget */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (stub_requests(st) == 0 && since(&t0) < 10)
		usleep(10000);
	ck_assert_int_eq(stub_requests(st), 1);
	ck_assert_ptr_nonnull(strstr(st->req_body, "\"event_id\":\"alpha:77:1\""));
	while (entries(0) != 0 && since(&t0) < 10)
		usleep(10000);
	ck_assert_uint_eq(entries(0), 0);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_submit_not_held_up_by_hanging_receiver)
{
	stub_t *st = stub_start(STUB_HANG, 0, NULL);
	rs_metrics_conf_t c;
	rs_event_t ev;
	rs_err_t err;
	struct timespec t0;

	conf_for(&c, st, "json");
	set(&c, "timeout_ms", "2000");
	set(&c, "flush_budget_ms", "1000");
	sample(&ev, 78, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rs_metrics_submit(&c, &ev, 0, &err), 0);
	ck_assert_double_lt(since(&t0), 0.5);
	ck_assert_uint_eq(entries(0), 1); /* safe on disk whatever happens next */
	/* the background flusher gives up within its budget and keeps it */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (stub_requests(st) == 0 && since(&t0) < 5)
		usleep(10000);
	ck_assert_int_eq(stub_requests(st), 1);
	{
		rs_spool_entry_t e;
		do {
			usleep(50000);
			first_entry(0, &e);
			rs_spool_entry_free(&e);
		} while (e.attempts == 0 && since(&t0) < 5);
		ck_assert_uint_eq(e.attempts, 1);
		ck_assert_double_lt(since(&t0), 3.0);
	}
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

/* Busy threads in the caller, as in slurmstepd: the background sender is
 * forked while other threads hold malloc and stdio locks. */
static volatile int churn_stop;

static void *churn(void *arg)
{
	(void)arg;
	while (!churn_stop) {
		char *p = malloc(1000 + (size_t)(rand() % 64));
		snprintf(p, 1000, "%d", rand());
		free(p);
	}
	return NULL;
}

START_TEST(test_metrics_submit_from_threaded_caller_delivers_all)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_metrics_conf_t c;
	rs_event_t ev;
	rs_err_t err;
	pthread_t th[3];
	struct timespec t0;

	/* Under valgrind each forked sender reports the other threads'
	 * in-flight buffers as leaks, and 15 senders under valgrind take
	 * longer than the test waits: this one is for the native runs. */
	if (getenv("LD_PRELOAD") && strstr(getenv("LD_PRELOAD"), "vgpreload")) {
		stub_stop(st);
		return;
	}
	conf_for(&c, st, "json");
	churn_stop = 0;
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, churn, NULL);
	for (unsigned j = 1; j <= 15; j++) {
		sample(&ev, 300 + j, 1);
		ck_assert_int_eq(rs_metrics_submit(&c, &ev, 0, &err), 0);
		rs_event_free(&ev);
	}
	churn_stop = 1;
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((entries(0) != 0 || stub_requests(st) < 15) && since(&t0) < 15)
		usleep(20000);
	ck_assert_uint_eq(entries(0), 0);
	ck_assert_int_eq(stub_requests(st), 15);
	rs_metrics_conf_free(&c);
	stub_stop(st);
}
END_TEST

START_TEST(test_metrics_submit_refuses_invalid_event_and_full_spool)
{
	rs_metrics_conf_t c;
	rs_event_t ev;
	rs_err_t err;

	conf_for(&c, NULL, "json");
	set(&c, "spool_max_entries", "1");
	sample(&ev, 1, 0);
	ck_assert_int_eq(rs_metrics_submit(&c, &ev, 0, &err), -EINVAL);
	ck_assert_uint_eq(entries(0), 0);
	ck_assert_int_eq(rs_metrics_submit(&c, NULL, 0, &err), -EINVAL);
	ev.attempt = 1;
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), 0);
	ck_assert_int_eq(rs_metrics_spool_event(&c, &ev, 0, &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "metrics alpha:1:1 not spooled"));
	ck_assert_uint_eq(entries(0), 1);
	rs_event_free(&ev);
	rs_metrics_conf_free(&c);
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc;

	tc = tcase_create("site_options");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_metrics_conf_defaults);
	tcase_add_test(tc, test_metrics_conf_set_accepts_every_key);
	tcase_add_test(tc, test_metrics_conf_set_rejects_bad_values);
	tcase_add_test(tc, test_metrics_conf_refuses_password_in_url_without_echo);
	tcase_add_test(tc, test_metrics_conf_check_secret_files);
	tcase_add_test(tc, test_metrics_backoff_doubles_to_an_hour);
	suite_add_tcase(s, tc);

	tc = tcase_create("flush_delivers_retries_dead_letters");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_metrics_flush_delivers_json_and_empties_spool);
	tcase_add_test(tc, test_metrics_flush_clickhouse_query_and_headers);
	tcase_add_test(tc, test_metrics_flush_prometheus_puts_to_job_group);
	tcase_add_test(tc, test_metrics_flush_alert_to_alertmanager_path);
	tcase_add_test(tc, test_metrics_flush_5xx_retried_later_not_now);
	tcase_add_test(tc, test_metrics_flush_rejected_goes_to_dead_letter);
	tcase_add_test(tc, test_metrics_flush_format_change_dead_letters);
	tcase_add_test(tc, test_metrics_flush_bad_token_file_keeps_entries);
	tcase_add_test(tc, test_metrics_flush_skips_bad_entry_and_goes_on);
	tcase_add_test(tc, test_metrics_flush_without_spool_is_empty);
	tcase_add_test(tc, test_metrics_flush_budget_bounds_a_hanging_receiver);
	tcase_add_test(tc, test_metrics_flush_busy_lock_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("submit_off_the_critical_path");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_metrics_submit_returns_fast_and_delivers_in_background);
	tcase_add_test(tc, test_metrics_submit_not_held_up_by_hanging_receiver);
	tcase_add_test(tc, test_metrics_submit_from_threaded_caller_delivers_all);
	tcase_add_test(tc, test_metrics_submit_refuses_invalid_event_and_full_spool);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
