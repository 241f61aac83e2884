/*
 * cli_flush.c - `slurm-resilience flush` and `slurm-resilience metrics`.
 *
 *   flush [--config FILE] [--all] [--budget-ms N] [--requeue-dead] [key=value...]
 *       Deliver what is due in the metrics spool (everything with --all),
 *       within N ms (default 60000).  --requeue-dead first moves dead
 *       letters back (after the receiver or table was fixed).
 *       Exit 0: nothing failed; 1: an entry could not be delivered or
 *       was dead-lettered, or an error; 2: usage.
 *
 *   metrics emit --event FILE.json [--alert] [--no-send | --wait]
 *                [--config FILE] [key=value...]
 *       Spool an event given as JSON (rs_event_from_json) and submit it
 *       exactly as the plugin does: spool, then the detached background
 *       flush.  --alert: the job has used up its retries (also send the
 *       alert).  --no-send: spool only.  --wait: spool, then flush in the
 *       foreground (like `flush`).  For operators testing a receiver and
 *       for the integration tests, which need no Slurm this way.
 *
 *   metrics list [--dead] [--config FILE] [key=value...]
 *       One line per spooled entry (or dead letter), oldest first.
 *
 *   metrics check [--config FILE] [key=value...]
 *       Validate the options and the secret files; print the settings.
 *
 * key=value are the metrics options of plugstack.conf (metrics_url=,
 * metrics_format=, clickhouse_table=, token_file=,
 * clickhouse_credentials=, spool_dir=, timeout_ms=, alert_url=,
 * alert_format=, cluster=, spool_max_entries=, spool_max_bytes=,
 * flush_budget_ms=).  --config FILE reads them from a file: either the
 * plugin's plugstack.conf line ("required /path/resilience.so k=v ...";
 * lines for other plugins are skipped) or bare k=v words; options of the
 * plugin that are not metrics options are ignored there.  Options on the
 * command line come after the file and win.  flush without --config
 * reads the cluster's plugstack.conf: SLURM_CONF's PlugStackConfig=, else
 * plugstack.conf beside SLURM_CONF, else /etc/slurm/plugstack.conf (if
 * the file exists).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <syslog.h>
#include <time.h>

#include "cli.h"
#include "metrics.h"
#include "spool.h"
#include "text.h"

#define FLUSH_DEFAULT_BUDGET_MS 60000L
#define EVENT_FILE_MAX (1 << 20)

static void _log_stderr(void *arg, int level, const char *msg)
{
	int *quiet = arg;

	char buf[2048];

	if (quiet && *quiet && level > LOG_WARNING)
		return;
	/* Messages quote receivers' answers and spooled events: escaped. */
	fprintf(stderr, "slurm-resilience: %s\n",
		rs_text_escape_str(buf, sizeof(buf), msg));
}

/* Apply one "key=value" word.  from_file: a key that is not a metrics
 * option belongs to the rest of the plugin and is skipped. */
static int _apply_word(rs_metrics_conf_t *conf, const char *word, int from_file)
{
	const char *eq = strchr(word, '=');
	char key[64];
	rs_err_t err;
	int rc;

	if (!eq || eq == word || (size_t)(eq - word) >= sizeof(key)) {
		if (from_file)
			return 0;
		fprintf(stderr, "slurm-resilience: '%s': expected key=value\n", word);
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "%.*s", (int)(eq - word), word);
	rc = rs_metrics_conf_set(conf, key, eq + 1, &err);
	if (rc == -ENOENT && from_file)
		return 0;
	if (rc)
		fprintf(stderr, "slurm-resilience: %s\n", err.msg);
	return rc;
}

static int _read_config(rs_metrics_conf_t *conf, const char *path)
{
	FILE *f = fopen(path, "re");
	char line[8192];
	int rc = 0, lineno = 0;

	if (!f) {
		fprintf(stderr, "slurm-resilience: --config %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok, *hash = strchr(line, '#');
		int word = 0, plugstack = 0;

		lineno++;
		if (hash)
			*hash = '\0';
		for (tok = strtok_r(line, " \t\r\n", &save); tok;
		     tok = strtok_r(NULL, " \t\r\n", &save), word++) {
			if (word == 0 && (strcmp(tok, "required") == 0 || strcmp(tok, "optional") == 0 ||
					  strcmp(tok, "include") == 0)) {
				plugstack = 1;
				continue;
			}
			if (plugstack && word == 1) {
				/* another plugin's line: its words are not ours */
				if (!strstr(tok, "resilience"))
					break;
				continue;
			}
			rc = _apply_word(conf, tok, 1);
			if (rc) {
				fprintf(stderr, "slurm-resilience: --config %s line %d\n", path, lineno);
				goto out;
			}
		}
	}
out:
	fclose(f);
	return rc;
}

/*
 * flush without --config: the plugstack.conf of the cluster this machine
 * talks to.  With SLURM_CONF set, the PlugStackConfig= of that slurm.conf,
 * else plugstack.conf beside it; without, /etc/slurm/plugstack.conf.
 * 1 and the path in out if that file exists, 0 if not (no config).
 */
static int _default_plugstack(char *out, size_t len)
{
	const char *sc = getenv("SLURM_CONF");
	char line[8192], dir[4096];
	const char *slash;
	FILE *f;
	int found = 0;

	if (!sc || !*sc) {
		snprintf(out, len, "/etc/slurm/plugstack.conf");
		return access(out, F_OK) == 0;
	}
	f = fopen(sc, "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *p = line, *v, *e;

		p += strspn(p, " \t");
		if (strncasecmp(p, "PlugStackConfig", 15))
			continue;
		v = p + 15 + strspn(p + 15, " \t");
		if (*v != '=')
			continue;
		v++;
		v += strspn(v, " \t");
		e = v + strcspn(v, " \t\r\n#");
		*e = '\0';
		if (*v) {
			snprintf(out, len, "%s", v);
			found = 1;
		}
	}
	if (f)
		fclose(f);
	if (!found) {
		slash = strrchr(sc, '/');
		snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - sc) : 1,
			 slash ? sc : ".");
		snprintf(out, len, "%s/plugstack.conf", dir);
	}
	return access(out, F_OK) == 0;
}

/* Parse the options shared by every subcommand.  flags not recognised
 * here are handed to on_flag (returns 1 if it took it, 2 if it took the
 * next argument too, 0 if unknown).  Returns 0, or the exit status. */
typedef int (*flag_fn)(void *ctx, const char *flag, const char *next);

static int _parse_cfg(int argc, char **argv, int first, rs_metrics_conf_t *conf,
		      flag_fn on_flag, void *ctx, const char *usage, int find_plugstack)
{
	const char *config = NULL;
	char found[4096 + 32];

	for (int i = first; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s", usage);
				return 2;
			}
			config = argv[++i];
		}
	}
	if (!config && find_plugstack && _default_plugstack(found, sizeof(found)))
		config = found;
	if (config && _read_config(conf, config))
		return 1;
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--config") == 0) {
			i++;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			printf("%s", usage);
			return -1;
		}
		if (a[0] == '-') {
			int took = on_flag ? on_flag(ctx, a, i + 1 < argc ? argv[i + 1] : NULL) : 0;
			if (took <= 0) {
				fprintf(stderr, "slurm-resilience: unknown option '%s'\n%s", a, usage);
				return 2;
			}
			i += took - 1;
			continue;
		}
		if (_apply_word(conf, a, 0))
			return strchr(a, '=') ? 1 : 2;
	}
	return 0;
}

static int _parse(int argc, char **argv, int first, rs_metrics_conf_t *conf, flag_fn on_flag,
		  void *ctx, const char *usage)
{
	return _parse_cfg(argc, argv, first, conf, on_flag, ctx, usage, 0);
}

static long _parse_ms(const char *s)
{
	char *end = NULL;
	long v;

	if (!s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 3600000)
		return -1;
	return v;
}

static void _print_stats(const rs_metrics_conf_t *conf, const rs_metrics_flush_stats_t *st)
{
	printf("flush: %zu sent, %zu to retry, %zu dead-lettered, %zu skipped; %zu left in %s "
	       "(%zu dead letters)%s\n", st->sent, st->retry, st->dead, st->skipped, st->left,
	       conf->spool_dir ? conf->spool_dir : RS_METRICS_DEFAULT_SPOOL, st->dead_total,
	       st->out_of_time ? "; out of time" : "");
}

/* ------------------------------------------------------------- flush --- */

struct flush_opts {
	int all, requeue_dead, quiet;
	long budget_ms;
};

static int _flush_flag(void *ctx, const char *flag, const char *next)
{
	struct flush_opts *o = ctx;

	if (strcmp(flag, "--all") == 0)
		return o->all = 1;
	if (strcmp(flag, "--requeue-dead") == 0)
		return o->requeue_dead = 1;
	if (strcmp(flag, "--quiet") == 0 || strcmp(flag, "-q") == 0)
		return o->quiet = 1;
	if (strcmp(flag, "--budget-ms") == 0) {
		o->budget_ms = _parse_ms(next);
		return o->budget_ms > 0 ? 2 : 0;
	}
	return 0;
}

static const char flush_usage[] =
	"usage: slurm-resilience flush [--config FILE] [--all] [--budget-ms N] [--requeue-dead]\n"
	"                              [--quiet] [key=value...]\n";

static int _do_flush(rs_metrics_conf_t *conf, long budget_ms, unsigned flags)
{
	rs_metrics_flush_stats_t st;
	rs_err_t err;
	int rc;

	rc = rs_metrics_flush(conf, budget_ms, flags, &st, &err);
	_print_stats(conf, &st);
	if (rc) {
		fprintf(stderr, "slurm-resilience: flush: %s\n", err.msg);
		return 1;
	}
	return st.retry || st.dead ? 1 : 0;
}

int rs_cli_flush(int argc, char **argv)
{
	struct flush_opts o = { 0, 0, 0, FLUSH_DEFAULT_BUDGET_MS };
	rs_metrics_conf_t conf;
	int rc;

	rs_metrics_conf_init(&conf);
	rc = _parse_cfg(argc, argv, 1, &conf, _flush_flag, &o, flush_usage, 1);
	if (rc) {
		rc = rc < 0 ? 0 : rc;
		goto out;
	}
	conf.log = _log_stderr;
	conf.log_arg = &o.quiet;
	if (o.requeue_dead) {
		rs_spool_limits_t lim = { conf.spool_max_entries, conf.spool_max_bytes };
		rs_spool_t *sp = NULL;
		rs_err_t err;
		size_t moved = 0;

		if (rs_spool_open(conf.spool_dir ? conf.spool_dir : RS_METRICS_DEFAULT_SPOOL, &lim, 0,
				  &sp, &err) ||
		    rs_spool_requeue_dead(sp, &moved, &err)) {
			fprintf(stderr, "slurm-resilience: flush --requeue-dead: %s\n", err.msg);
			rs_spool_close(sp);
			rc = 1;
			goto out;
		}
		rs_spool_close(sp);
		printf("flush: %zu dead letters moved back to the spool\n", moved);
	}
	rc = _do_flush(&conf, o.budget_ms, o.all ? RS_METRICS_FLUSH_ALL : 0);
	/* The timer also carries out end-of-attempt decisions whose applier
	 * was killed or gave up waiting (decision.h). */
	if (rs_cli_apply_spool(conf.spool_dir ? conf.spool_dir : RS_METRICS_DEFAULT_SPOOL,
			       0, o.quiet))
		rc = rc ? rc : 1;
out:
	rs_metrics_conf_free(&conf);
	return rc;
}

/* ----------------------------------------------------------- metrics --- */

struct metrics_opts {
	const char *event;
	int alert, no_send, wait, dead;
};

static int _metrics_flag(void *ctx, const char *flag, const char *next)
{
	struct metrics_opts *o = ctx;

	if (strcmp(flag, "--event") == 0) {
		o->event = next;
		return next ? 2 : 0;
	}
	if (strcmp(flag, "--alert") == 0)
		return o->alert = 1;
	if (strcmp(flag, "--no-send") == 0)
		return o->no_send = 1;
	if (strcmp(flag, "--wait") == 0)
		return o->wait = 1;
	if (strcmp(flag, "--dead") == 0)
		return o->dead = 1;
	return 0;
}

static const char metrics_usage[] =
	"usage: slurm-resilience metrics emit --event FILE.json [--alert] [--no-send | --wait]\n"
	"                                     [--config FILE] [key=value...]\n"
	"       slurm-resilience metrics list [--dead] [--config FILE] [key=value...]\n"
	"       slurm-resilience metrics check [--config FILE] [key=value...]\n";

static char *_slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n;

	if (!f) {
		fprintf(stderr, "slurm-resilience: --event %s: %s\n", path, strerror(errno));
		return NULL;
	}
	buf = malloc(EVENT_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return NULL;
	}
	n = fread(buf, 1, EVENT_FILE_MAX + 1, f);
	fclose(f);
	if (n > EVENT_FILE_MAX) {
		fprintf(stderr, "slurm-resilience: --event %s: larger than %d bytes\n", path,
			EVENT_FILE_MAX);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int _emit(rs_metrics_conf_t *conf, const struct metrics_opts *o)
{
	rs_event_t ev;
	rs_err_t err;
	char *text = NULL, id[512];
	int rc;

	rs_event_init(&ev);
	if (!o->event) {
		fprintf(stderr, "slurm-resilience: metrics emit: --event FILE.json is required\n%s",
			metrics_usage);
		return 2;
	}
	if (o->no_send && o->wait) {
		fprintf(stderr, "slurm-resilience: metrics emit: --no-send and --wait exclude "
			"each other\n");
		return 2;
	}
	if (!rs_metrics_enabled(conf, o->alert)) {
		fprintf(stderr, "slurm-resilience: metrics emit: nothing to send: no metrics_url=%s\n",
			o->alert ? " and no alert_url=" : "");
		return 1;
	}
	text = _slurp(o->event);
	if (!text)
		return 1;
	rc = rs_event_from_json(text, &ev, &err);
	free(text);
	if (rc) {
		fprintf(stderr, "slurm-resilience: --event %s: %s\n", o->event, err.msg);
		return 1;
	}
	if (conf->cluster) {
		free(ev.cluster);
		ev.cluster = strdup(conf->cluster);
	}
	rs_event_id(&ev, id, sizeof(id));
	if (o->no_send || o->wait)
		rc = rs_metrics_spool_event(conf, &ev, o->alert, &err);
	else
		rc = rs_metrics_submit(conf, &ev, o->alert, &err);
	rs_event_free(&ev);
	if (rc) {
		fprintf(stderr, "slurm-resilience: metrics emit %s: %s\n", id, err.msg);
		return 1;
	}
	printf("emit: %s spooled in %s%s\n", id,
	       conf->spool_dir ? conf->spool_dir : RS_METRICS_DEFAULT_SPOOL,
	       o->no_send ? "" : o->wait ? "; sending now" : "; background send started");
	fflush(stdout);
	if (o->wait)
		return _do_flush(conf, conf->budget_ms, 0);
	return 0;
}

static int _list(rs_metrics_conf_t *conf, int dead)
{
	rs_spool_limits_t lim = { conf->spool_max_entries, conf->spool_max_bytes };
	rs_spool_t *sp = NULL;
	char **names = NULL;
	size_t n = 0;
	rs_err_t err;
	int rc;

	rc = rs_spool_open(conf->spool_dir ? conf->spool_dir : RS_METRICS_DEFAULT_SPOOL, &lim, 0,
			   &sp, &err);
	if (rc == -ENOENT)
		return 0; /* nothing was ever spooled */
	if (!rc)
		rc = rs_spool_list(sp, dead, &names, &n, &err);
	if (rc) {
		fprintf(stderr, "slurm-resilience: metrics list: %s\n", err.msg);
		rs_spool_close(sp);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		rs_spool_entry_t e;

		char name[400], fmt[80], id[1024], why[1024];

		if (rs_spool_read(sp, names[i], dead, &e, &err)) {
			printf("%s\t(unreadable: %s)\n",
			       rs_text_escape_str(name, sizeof(name), names[i]),
			       rs_text_escape_str(why, sizeof(why), err.msg));
			continue;
		}
		/* Event ids carry job ids and names, last_error a receiver's
		 * answer: escaped, one entry per line whatever they hold. */
		printf("%s\t%s\t%s\t%s\tattempts=%u\tnext_try=%lld\t%s\n",
		       rs_text_escape_str(name, sizeof(name), e.name),
		       e.kind == RS_SPOOL_ALERT ? "alert" : "metrics",
		       rs_text_escape_str(fmt, sizeof(fmt), e.format),
		       rs_text_escape_str(id, sizeof(id), e.event_id),
		       e.attempts, (long long)e.next_try,
		       rs_text_escape_str(why, sizeof(why), e.last_error));
		rs_spool_entry_free(&e);
	}
	rs_spool_names_free(names, n);
	rs_spool_close(sp);
	return 0;
}

static int _check(rs_metrics_conf_t *conf)
{
	static const char *fmt[] = { "json", "clickhouse", "prometheus" };
	rs_err_t err;

	if (rs_metrics_conf_check(conf, &err)) {
		fprintf(stderr, "slurm-resilience: %s\n", err.msg);
		return 1;
	}
	/* URLs are printed as configured: conf_set refused any with user
	 * info, so they hold no secret. */
	printf("metrics_url=%s\nmetrics_format=%s\nclickhouse_table=%s\ntoken_file=%s\n"
	       "clickhouse_credentials=%s\nspool_dir=%s\ntimeout_ms=%ld\nalert_url=%s\n"
	       "alert_format=%s\ncluster=%s\nspool_max_entries=%lu\nspool_max_bytes=%llu\n"
	       "flush_budget_ms=%ld\n",
	       conf->url ? conf->url : "", fmt[conf->format],
	       conf->clickhouse_table ? conf->clickhouse_table : RS_METRICS_DEFAULT_TABLE,
	       conf->token_file ? conf->token_file : "",
	       conf->clickhouse_credentials ? conf->clickhouse_credentials : "",
	       conf->spool_dir ? conf->spool_dir : RS_METRICS_DEFAULT_SPOOL, conf->timeout_ms,
	       conf->alert_url ? conf->alert_url : "",
	       conf->alert_format == RS_ALERT_JSON ? "json" : "alertmanager",
	       conf->cluster ? conf->cluster : "", conf->spool_max_entries,
	       (unsigned long long)conf->spool_max_bytes, conf->budget_ms);
	return 0;
}

int rs_cli_metrics(int argc, char **argv)
{
	struct metrics_opts o = { 0 };
	rs_metrics_conf_t conf;
	const char *sub = argc > 1 ? argv[1] : NULL;
	int quiet = 0, rc;

	if (!sub || strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0) {
		fprintf(sub ? stdout : stderr, "%s", metrics_usage);
		return sub ? 0 : 2;
	}
	if (strcmp(sub, "emit") && strcmp(sub, "list") && strcmp(sub, "check")) {
		fprintf(stderr, "slurm-resilience: metrics: unknown subcommand '%s'\n%s", sub,
			metrics_usage);
		return 2;
	}
	rs_metrics_conf_init(&conf);
	rc = _parse(argc, argv, 2, &conf, _metrics_flag, &o, metrics_usage);
	if (rc) {
		rc = rc < 0 ? 0 : rc;
		goto out;
	}
	conf.log = _log_stderr;
	conf.log_arg = &quiet;
	/* The detached sender of `emit` is this very program. */
	{
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n > 0) {
			self[n] = '\0';
			conf.flush_cmd = strdup(self);
		}
	}
	if (strcmp(sub, "emit") == 0)
		rc = _emit(&conf, &o);
	else if (strcmp(sub, "list") == 0)
		rc = _list(&conf, o.dead);
	else
		rc = _check(&conf);
out:
	rs_metrics_conf_free(&conf);
	return rc;
}
