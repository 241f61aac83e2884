/*
 * cli_ckpt.c - `slurm-resilience ckpt ...`: save, restore, list, verify,
 * ready.  Thin: parses arguments, calls the checkpoint engine (ckpt.h),
 * prints.  Exit status: 0 success, 1 failure (the message says what was
 * being done, to what path, and why), 2 usage error.
 */
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "cli.h"
#include "manifest.h"
#include "text.h"

#define PROG "slurm-resilience"
#define KEEP_DEFAULT 3

static const char usage_text[] =
	"usage: " PROG " ckpt save SCRATCH CKPT_DIR [--keep N] [--reason R]\n"
	"           [--job ID] [--attempt N] [--seq N] [--node NAME]\n"
	"           [--part P --nparts N]\n"
	"       " PROG " ckpt restore CKPT_DIR SCRATCH [--gen N] [--part P]\n"
	"       " PROG " ckpt list CKPT_DIR\n"
	"       " PROG " ckpt verify CKPT_DIR\n"
	"       " PROG " ckpt ready\n"
	"exit status: 0 success, 1 failure, 2 usage error\n";

static int _usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int _usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fprintf(stderr, PROG ": ckpt: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fputs(usage_text, stderr);
	return 2;
}

/* Messages quote paths inside a user's folders (an operator may run this
 * on someone else's checkpoint folder): to the terminal only escaped. */
static void _say(const char *what, const char *msg)
{
	char buf[2 * RS_ERR_MAX];

	fprintf(stderr, PROG ": %s%s\n", what,
		rs_text_escape_str(buf, sizeof(buf), msg));
}

static void _warn(void *arg, const char *msg)
{
	(void)arg;
	_say("warning: ", msg);
}

/* Whole non-negative decimal in [0, max]; 0 on success, -1 otherwise. */
static int _num(const char *s, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

struct args {
	const char *pos[2];
	int npos;
	unsigned long keep, gen, part, nparts, attempt, seq;
	int has_gen;
	const char *reason, *job, *node;
};

/* Options may come before, between or after the positional arguments, as
 * "--opt VALUE" or "--opt=VALUE".  allowed: the options this verb takes. */
static int _parse(int argc, char **argv, const char *allowed, int npos,
		  struct args *a)
{
	static const struct { const char *name; unsigned long max; } nums[] = {
		{ "keep", 1000000 }, { "gen", 999999 }, { "part", 99999 },
		{ "nparts", 100000 }, { "attempt", 1000000 },
		{ "seq", 1000000000 },
	};
	char optbuf[32];

	memset(a, 0, sizeof(*a));
	a->keep = KEEP_DEFAULT;
	a->nparts = 1;
	for (int i = 2; i < argc; i++) {
		const char *arg = argv[i], *val, *eq;
		size_t nl;

		if (strncmp(arg, "--", 2) || !arg[2]) {
			if (a->npos == npos)
				return _usage("unexpected argument '%s'", arg);
			a->pos[a->npos++] = arg;
			continue;
		}
		eq = strchr(arg, '=');
		nl = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		if (nl == 0 || nl >= sizeof(optbuf))
			return _usage("unknown option '%s'", arg);
		memcpy(optbuf, arg + 2, nl);
		optbuf[nl] = '\0';
		/* whole-word match in the allowed list */
		const char *hit = strstr(allowed, optbuf);
		if (!hit || (hit != allowed && hit[-1] != ' ') ||
		    (hit[nl] != ' ' && hit[nl] != '\0'))
			return _usage("unknown option '%s'", arg);
		if (eq)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else
			return _usage("option '%s' needs a value", arg);
		if (!strcmp(optbuf, "reason")) {
			a->reason = val;
			continue;
		}
		if (!strcmp(optbuf, "job")) {
			a->job = val;
			continue;
		}
		if (!strcmp(optbuf, "node")) {
			a->node = val;
			continue;
		}
		for (size_t k = 0; k < sizeof(nums) / sizeof(nums[0]); k++) {
			unsigned long v;
			if (strcmp(optbuf, nums[k].name))
				continue;
			if (_num(val, nums[k].max, &v) < 0) {
				fprintf(stderr, PROG ": ckpt: --%s: '%s' is not "
					"a whole number in 0..%lu\n", optbuf, val,
					nums[k].max);
				return 2;
			}
			if (!strcmp(optbuf, "keep")) a->keep = v;
			else if (!strcmp(optbuf, "gen")) { a->gen = v; a->has_gen = 1; }
			else if (!strcmp(optbuf, "part")) a->part = v;
			else if (!strcmp(optbuf, "nparts")) a->nparts = v;
			else if (!strcmp(optbuf, "attempt")) a->attempt = v;
			else if (!strcmp(optbuf, "seq")) a->seq = v;
		}
	}
	if (a->npos != npos)
		return _usage("missing argument%s", npos > 1 ? "s" : "");
	return 0;
}

static void _human(char *buf, size_t len, double bytes)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	int u = 0;

	while (bytes >= 1024 && u < 5) {
		bytes /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f %s", bytes, unit[u]);
	else
		snprintf(buf, len, "%.1f %s", bytes, unit[u]);
}

static int _save(int argc, char **argv)
{
	rs_ckpt_meta_t m = { 0 };
	rs_ckpt_stats_t st;
	struct args a;
	char cb[32], lb[32];
	rs_err_t err;
	int rc;

	rc = _parse(argc, argv, "keep reason job attempt seq node part nparts",
		    2, &a);
	if (rc)
		return rc;
	if (a.keep < 1)
		return _usage("--keep must be at least 1");
	if (a.part >= a.nparts || a.nparts < 1)
		return _usage("--part must be below --nparts");
	m.job_id = a.job;
	m.attempt = (unsigned)a.attempt;
	m.seq = (unsigned)a.seq;
	m.node = a.node;
	m.reason = a.reason ? a.reason : "manual";
	m.part = (unsigned)a.part;
	m.nparts = (unsigned)a.nparts;
	rs_ckpt_set_warn(_warn, NULL);
	rc = rs_ckpt_save(a.pos[0], a.pos[1], (unsigned)a.keep, &m, &st, &err);
	if (rc < 0) {
		_say("", err.msg);
		return 1;
	}
	_human(cb, sizeof(cb), (double)st.bytes_copied);
	_human(lb, sizeof(lb), (double)st.bytes_linked);
	if (st.published)
		printf("saved %s as %s/gen-%06ld: %llu entries, %s copied, %s "
		       "linked, %.3f s (sync %.3f s)\n", a.pos[0], a.pos[1],
		       st.gen, (unsigned long long)st.files, cb, lb, st.seconds,
		       st.sync_seconds);
	else
		printf("saved %s as part %u of %u in %s: %llu entries, %s "
		       "copied, %s linked, %.3f s; %s\n", a.pos[0], m.part,
		       m.nparts, a.pos[1], (unsigned long long)st.files, cb,
		       lb, st.seconds, st.gen > 0 ? "already published" :
		       "the generation is published when every part is in");
	if (st.skipped || st.changed)
		printf("  %llu entries skipped (sockets, FIFOs, devices), %llu "
		       "changed or vanished while read\n",
		       (unsigned long long)st.skipped,
		       (unsigned long long)st.changed);
	return 0;
}

static int _restore(int argc, char **argv)
{
	rs_ckpt_stats_t st;
	struct args a;
	char cb[32];
	rs_err_t err;
	int rc;

	rc = _parse(argc, argv, "gen part", 2, &a);
	if (rc)
		return rc;
	if (a.has_gen && a.gen < 1)
		return _usage("--gen must be at least 1");
	rs_ckpt_set_warn(_warn, NULL);
	rc = rs_ckpt_restore(a.pos[0], a.pos[1], a.has_gen ? (long)a.gen : -1,
			     (unsigned)a.part, &st, &err);
	if (rc < 0) {
		_say("", err.msg);
		return 1;
	}
	_human(cb, sizeof(cb), (double)st.bytes_copied);
	printf("restored %s/gen-%06ld part %lu into %s: %llu entries, %s, "
	       "%.3f s\n", a.pos[0], st.gen, a.part, a.pos[1],
	       (unsigned long long)st.files, cb, st.seconds);
	return 0;
}

/* A whole number of a manifest record: the manifest is the user's file,
 * so NaN, inf, non-numbers and values beyond +-2^53 count as 0, and a
 * double is range-checked before it is converted. */
static int64_t _jint(json_object *o, const char *k)
{
	return rs_manifest_num(o, k, 0, -RS_MANIFEST_NUM_MAX,
			       RS_MANIFEST_NUM_MAX);
}

/* Seconds: finite and >= 0, else 0. */
static double _jsecs(json_object *o, const char *k)
{
	return rs_manifest_seconds(o, k, 1e12);
}

/* A string of a manifest record, escaped into buf (a column's worth). */
static const char *_jstr(json_object *o, const char *k, char *buf,
			 size_t len)
{
	json_object *v = NULL;

	if (json_object_object_get_ex(o, k, &v) &&
	    json_object_is_type(v, json_type_string))
		return rs_text_escape_str(buf, len, json_object_get_string(v));
	return "-";
}

/* path made absolute against the current folder, not resolved: "."
 * components are dropped, ".." and symlinks stay and are refused where
 * the folder is opened (folders are opened component by component, no
 * symlink followed).  0, or -1 with errno. */
int rs_cli_abspath(const char *path, char *out, size_t len)
{
	char cwd[4096];
	const char *p = path;
	size_t n = 0;

	if (path[0] != '/') {
		if (!getcwd(cwd, sizeof(cwd)))
			return -1;
		n = strlen(cwd);
		if (n >= len)
			goto toolong;
		memcpy(out, cwd, n + 1);
		if (n == 1)
			n = 0;          /* "/" */
	}
	while (*p) {
		size_t l;

		while (*p == '/')
			p++;
		l = strcspn(p, "/");
		if (l == 0 || (l == 1 && p[0] == '.')) {
			p += l;
			continue;
		}
		if (n + 1 + l >= len)
			goto toolong;
		out[n++] = '/';
		memcpy(out + n, p, l);
		n += l;
		p += l;
	}
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

static int _abs_arg(struct args *a, char *buf, size_t len)
{
	if (rs_cli_abspath(a->pos[0], buf, len) < 0) {
		fprintf(stderr, PROG ": ckpt: %s: %s\n", a->pos[0],
			strerror(errno));
		return 1;
	}
	a->pos[0] = buf;
	return 0;
}

static int _list(int argc, char **argv)
{
	json_object *root = NULL, *gens;
	struct args a;
	char size[32], copied[32], tbuf[64], jbuf[64], rbuf[64];
	char abs[4096 + 256];
	long latest = -1;
	rs_err_t err;
	size_t n;
	int rc;

	rc = _parse(argc, argv, "", 1, &a);
	if (rc)
		return rc;
	if (_abs_arg(&a, abs, sizeof(abs)))
		return 1;
	rc = rs_manifest_read(a.pos[0], &root, &err);
	if (rc < 0) {
		char what[4500];

		snprintf(what, sizeof(what), "list %s: ", a.pos[0]);
		_say(what, err.msg);
		return 1;
	}
	if (rs_ckpt_latest(a.pos[0], NULL, 0, &latest, &err) < 0)
		latest = -1;
	gens = rs_manifest_generations(root);
	n = json_object_array_length(gens);
	printf("%-11s %-20s %-10s %7s %5s %-9s %5s %8s %10s %10s %8s\n",
	       "GENERATION", "TIME (UTC)", "JOB", "ATTEMPT", "SEQ", "REASON",
	       "PARTS", "FILES", "SIZE", "COPIED", "SECONDS");
	for (size_t i = 0; i < n; i++) {
		json_object *r = json_object_array_get_idx(gens, i);
		long g = (long)_jint(r, "gen");
		double secs = _jsecs(r, "seconds");

		_human(size, sizeof(size), (double)_jint(r, "bytes"));
		_human(copied, sizeof(copied), (double)_jint(r, "bytes_copied"));
		printf("gen-%06ld%c %-20s %-10s %7lld %5lld %-9s %5lld %8lld "
		       "%10s %10s %8.2f\n", g, g == latest ? '*' : ' ',
		       _jstr(r, "time", tbuf, sizeof(tbuf)),
		       _jstr(r, "job_id", jbuf, sizeof(jbuf)),
		       (long long)_jint(r, "attempt"), (long long)_jint(r, "seq"),
		       _jstr(r, "reason", rbuf, sizeof(rbuf)),
		       (long long)_jint(r, "nparts"),
		       (long long)_jint(r, "files"), size, copied, secs);
	}
	if (n == 0)
		printf("(no generations)\n");
	else
		printf("* = latest\n");
	json_object_put(root);
	return 0;
}

static int _verify(int argc, char **argv)
{
	char abs[4096 + 256];
	struct args a;
	rs_err_t err;
	long latest = -1;
	int rc;

	rc = _parse(argc, argv, "", 1, &a);
	if (rc)
		return rc;
	if (_abs_arg(&a, abs, sizeof(abs)))
		return 1;
	rs_ckpt_set_warn(_warn, NULL);
	rc = rs_ckpt_verify(a.pos[0], &err);
	if (rc < 0) {
		_say("", err.msg);
		return 1;
	}
	if (rs_ckpt_latest(a.pos[0], NULL, 0, &latest, &err) == 0)
		printf("%s: consistent, latest is gen-%06ld\n", a.pos[0], latest);
	else
		printf("%s: consistent, no generation yet\n", a.pos[0]);
	return 0;
}

/* The application says "my state is written": the supervisor waits for
 * this file before it takes the checkpoint. */
static int _ready(int argc, char **argv)
{
	const char *path = getenv("RESILIENCE_CKPT_READY");
	int fd;

	(void)argv;
	if (argc > 2)
		return _usage("ready takes no arguments");
	if (!path || !*path) {
		fprintf(stderr, PROG ": ckpt ready: RESILIENCE_CKPT_READY is not "
			"set (is this running under slurm-resilience?)\n");
		return 1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0) {
		fprintf(stderr, PROG ": ckpt ready: create %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	if (close(fd) < 0) {
		fprintf(stderr, PROG ": ckpt ready: write %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	return 0;
}

int rs_cli_ckpt(int argc, char **argv)
{
	if (argc < 2)
		return _usage(NULL);
	if (!strcmp(argv[1], "save"))
		return _save(argc, argv);
	if (!strcmp(argv[1], "restore"))
		return _restore(argc, argv);
	if (!strcmp(argv[1], "list"))
		return _list(argc, argv);
	if (!strcmp(argv[1], "verify"))
		return _verify(argc, argv);
	if (!strcmp(argv[1], "ready"))
		return _ready(argc, argv);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	return _usage("unknown command '%s'", argv[1]);
}
