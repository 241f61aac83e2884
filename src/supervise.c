/* supervise.c - pure logic of the task supervisor; see include/supervise.h */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "signame.h"
#include "supervise.h"
#include "text.h"

/* Largest number of seconds accepted anywhere: covers UNIX times until the
 * 2280s and keeps arithmetic on doubles exact to well below a millisecond. */
#define SECONDS_MAX 1e10

/* ----------------------------------------------------------- numbers --- */

static int _parse_uint(const char *s, unsigned long long max,
		       unsigned long long *out)
{
	char *end = NULL;
	unsigned long long v;

	/* strtoull accepts blanks, signs and "0x": none belongs in an option. */
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static int _parse_double(const char *s, double *out)
{
	char *end = NULL;
	int digits = 0, dots = 0;
	double v;

	if (!s || !*s)
		return -EINVAL;
	/* Only plain decimals: strtod would also take "inf", "nan", "1e3",
	 * hex and leading blanks. */
	for (const char *p = s; *p; p++) {
		if (isdigit((unsigned char)*p))
			digits++;
		else if (*p == '.' && !dots)
			dots++;
		else
			return -EINVAL;
	}
	if (!digits)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || !isfinite(v) || v > SECONDS_MAX)
		return -ERANGE;
	*out = v;
	return 0;
}

int rs_supervise_parse_seconds(const char *s, double *out, rs_err_t *err)
{
	int rc = _parse_double(s, out);

	if (rc == -ERANGE)
		return rs_err_set(err, ERANGE, "seconds '%s': out of range (at most %.0f)",
				  s, SECONDS_MAX);
	if (rc)
		return rs_err_set(err, EINVAL, "seconds '%s': expected a non-negative decimal number",
				  s ? s : "");
	return 0;
}

int rs_supervise_parse_signal(const char *s, int *sig, rs_err_t *err)
{
	int v = 0;

	if (!s || !*s)
		return rs_err_set(err, EINVAL, "signal: empty");
	if (rs_signame_parse(s, &v))
		return rs_err_set(err, EINVAL, "signal '%s': unknown signal", s);
	if (v == SIGKILL || v == SIGSTOP || v == SIGCHLD)
		return rs_err_set(err, EINVAL, "signal '%s': cannot be used as the warning signal", s);
	*sig = v;
	return 0;
}

int rs_supervise_parse_end_time(const char *text, double *end, rs_err_t *err)
{
	char buf[64];
	size_t n;

	if (!text)
		return rs_err_set(err, EINVAL, "end time: no text");
	while (isspace((unsigned char)*text))
		text++;
	n = strlen(text);
	while (n && isspace((unsigned char)text[n - 1]))
		n--;
	if (n == 0) {
		*end = 0;
		return 0;
	}
	if (n >= sizeof(buf))
		return rs_err_set(err, EINVAL, "end time: too long");
	memcpy(buf, text, n);
	buf[n] = '\0';
	if (_parse_double(buf, end))
		return rs_err_set(err, EINVAL, "end time '%s': expected a UNIX time", buf);
	return 0;
}

/* ----------------------------------------------------------- options --- */

enum opt_kind { K_STR, K_UINT, K_UINT1, K_SECONDS, K_SIGNAL, K_ROLE, K_PID, K_FD };

struct opt_def {
	const char *name;
	enum opt_kind kind;
	size_t off;
};

#define OFF(f) offsetof(rs_supervise_opts_t, f)
static const struct opt_def opt_defs[] = {
	{ "ckpt",          K_STR,     OFF(ckpt_dir) },
	{ "scratch",       K_STR,     OFF(scratch) },
	{ "signal",        K_SIGNAL,  OFF(signal) },
	{ "grace",         K_SECONDS, OFF(grace) },
	{ "keep",          K_UINT1,   OFF(keep) },
	{ "ready",         K_STR,     OFF(ready) },
	{ "job",           K_STR,     OFF(job_id) },
	{ "attempt",       K_UINT,    OFF(attempt) },
	{ "node",          K_STR,     OFF(node) },
	{ "part",          K_UINT,    OFF(part) },
	{ "nparts",        K_UINT1,   OFF(nparts) },
	{ "role",          K_ROLE,    OFF(role) },
	{ "status",        K_STR,     OFF(status) },
	{ "status-fd",     K_FD,      OFF(status_fd) },
	{ "lead",          K_SECONDS, OFF(lead) },
	{ "end-time",      K_SECONDS, OFF(end_time) },
	{ "end-time-file", K_STR,     OFF(end_time_file) },
	{ "every",         K_SECONDS, OFF(every) },
	{ "save-timeout",  K_SECONDS, OFF(save_timeout) },
	{ "batch-script",  K_UINT,    OFF(batch_script) },
	{ "stepd",         K_PID,     OFF(stepd) },
	{ "pid",           K_PID,     OFF(pid) },
};
#undef OFF

void rs_supervise_opts_init(rs_supervise_opts_t *o)
{
	memset(o, 0, sizeof(*o));
	o->signal = SIGUSR1;
	o->grace = 60;
	o->keep = 2;
	o->nparts = 1;
	o->role = RS_SUPERVISE_SAVER;
	o->save_timeout = 3600;
	o->status_fd = -1;
}

static int _set_opt(rs_supervise_opts_t *o, const struct opt_def *d,
		    const char *val, rs_err_t *err)
{
	void *field = (char *)o + d->off;
	unsigned long long n;
	int rc;

	switch (d->kind) {
	case K_STR:
		if (!*val)
			return rs_err_set(err, EINVAL, "--%s: empty value", d->name);
		*(const char **)field = val;
		return 0;
	case K_UINT:
	case K_UINT1:
		rc = _parse_uint(val, UINT_MAX, &n);
		if (rc == 0 && d->kind == K_UINT1 && n == 0)
			rc = -ERANGE;
		if (rc)
			return rs_err_set(err, EINVAL, "--%s '%s': expected a%s integer",
					  d->name, val, d->kind == K_UINT1 ? " positive" : "n unsigned");
		*(unsigned *)field = (unsigned)n;
		return 0;
	case K_SECONDS: {
		rs_err_t e;

		rc = rs_supervise_parse_seconds(val, (double *)field, &e);
		if (rc)
			return rs_err_set(err, EINVAL, "--%s: %s", d->name, e.msg);
		return 0;
	}
	case K_SIGNAL: {
		rs_err_t e;

		rc = rs_supervise_parse_signal(val, (int *)field, &e);
		if (rc)
			return rs_err_set(err, EINVAL, "--%s: %s", d->name, e.msg);
		return 0;
	}
	case K_ROLE:
		if (strcmp(val, "saver") == 0)
			*(rs_supervise_role_t *)field = RS_SUPERVISE_SAVER;
		else if (strcmp(val, "forward") == 0)
			*(rs_supervise_role_t *)field = RS_SUPERVISE_FORWARD;
		else
			return rs_err_set(err, EINVAL, "--role '%s': expected saver or forward", val);
		return 0;
	case K_PID:
		rc = _parse_uint(val, INT_MAX, &n);
		if (rc || n < 2)
			return rs_err_set(err, EINVAL, "--%s '%s': expected a process id",
					  d->name, val);
		*(pid_t *)field = (pid_t)n;
		return 0;
	case K_FD:
		rc = _parse_uint(val, INT_MAX, &n);
		if (rc || n < 3)
			return rs_err_set(err, EINVAL, "--%s '%s': expected a file "
					  "descriptor above 2", d->name, val);
		*(int *)field = (int)n;
		return 0;
	}
	return rs_err_set(err, EINVAL, "--%s: internal error", d->name);
}

int rs_supervise_parse(int argc, char **argv, rs_supervise_opts_t *o,
		       rs_err_t *err)
{
	unsigned seen = 0;
	int rc = 0;
	int i = 1;

	rs_supervise_opts_init(o);
	rs_err_clear(err);
/* Keep the first error but go on scanning: --pid and -- are still wanted
 * so the caller can run the application unsupervised. */
#define FAIL(...) do { if (!rc) rc = rs_err_set(err, EINVAL, __VA_ARGS__); } while (0)
	while (i < argc) {
		const char *a = argv[i], *eq, *val;
		const struct opt_def *d = NULL;
		size_t nlen;

		if (strcmp(a, "--") == 0) {
			if (i + 1 < argc)
				o->argv = &argv[i + 1];
			else
				FAIL("'--' must be followed by the program to run");
			break;
		}
		if (strncmp(a, "--", 2) != 0) {
			FAIL("unexpected argument '%s' (the program goes after '--')", a);
			i++;
			continue;
		}
		eq = strchr(a + 2, '=');
		nlen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
		for (size_t k = 0; k < sizeof(opt_defs) / sizeof(opt_defs[0]); k++) {
			if (strlen(opt_defs[k].name) == nlen &&
			    strncmp(opt_defs[k].name, a + 2, nlen) == 0) {
				d = &opt_defs[k];
				if (seen & (1u << k)) {
					FAIL("--%s given twice", d->name);
				}
				seen |= 1u << k;
				break;
			}
		}
		if (eq) {
			val = eq + 1;
			i++;
		} else if (i + 1 < argc && strcmp(argv[i + 1], "--") != 0) {
			val = argv[i + 1];
			i += 2;
		} else {
			FAIL("%s: missing value", a);
			i++;
			continue;
		}
		if (!d) {
			FAIL("unknown option '%.*s'", (int)(nlen + 2), a);
			continue;
		}
		if (rc) {
			/* After an error only --pid matters: parse it quietly. */
			if (d->kind == K_PID && strcmp(d->name, "pid") == 0)
				_set_opt(o, d, val, NULL);
			continue;
		}
		rc = _set_opt(o, d, val, err);
	}
	if (o->pid && o->argv)
		FAIL("--pid and '--' PROG are exclusive");
	if (!o->pid && !o->argv)
		FAIL("nothing to supervise: give --pid PID or -- PROG [ARGS...]");
	if (o->role == RS_SUPERVISE_SAVER && (!o->ckpt_dir || !o->scratch))
		FAIL("role saver needs --ckpt and --scratch");
	if (o->part >= o->nparts)
		FAIL("--part %u must be below --nparts %u", o->part, o->nparts);
#undef FAIL
	return rc;
}

struct argv_build {
	char *store;
	size_t used, len;
	char **argv;
	size_t argc, max;
	int overflow;
};

static void _arg(struct argv_build *ab, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void _arg(struct argv_build *ab, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (ab->overflow)
		return;
	/* one slot stays for the terminating NULL */
	if (ab->argc + 1 >= ab->max || ab->used >= ab->len) {
		ab->overflow = 1;
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(ab->store + ab->used, ab->len - ab->used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= ab->len - ab->used) {
		ab->overflow = 1;
		return;
	}
	ab->argv[ab->argc++] = ab->store + ab->used;
	ab->used += (size_t)n + 1;
}

/* Seconds as the parser wants them: plain decimal, no exponent, trailing
 * zeros dropped ("60", "0.5"). */
static void _arg_seconds(struct argv_build *ab, const char *opt, double v)
{
	char buf[64];
	size_t n;

	snprintf(buf, sizeof(buf), "%.6f", v);
	n = strlen(buf);
	while (n && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n && buf[n - 1] == '.')
		buf[--n] = '\0';
	_arg(ab, "%s", opt);
	_arg(ab, "%s", buf);
}

static void _arg_str(struct argv_build *ab, const char *opt, const char *v)
{
	if (!v)
		return;
	_arg(ab, "%s", opt);
	_arg(ab, "%s", v);
}

int rs_supervise_argv(const rs_supervise_opts_t *o, const char *path,
		      char *store, size_t store_len, char **argv,
		      size_t argv_max, rs_err_t *err)
{
	struct argv_build ab = { store, 0, store_len, argv, 0, argv_max, 0 };

	_arg(&ab, "%s", path);
	_arg(&ab, "--role");
	_arg(&ab, "%s", o->role == RS_SUPERVISE_SAVER ? "saver" : "forward");
	_arg_str(&ab, "--ckpt", o->ckpt_dir);
	_arg_str(&ab, "--scratch", o->scratch);
	_arg(&ab, "--signal");
	_arg(&ab, "%d", o->signal);
	_arg_seconds(&ab, "--grace", o->grace);
	_arg(&ab, "--keep");
	_arg(&ab, "%u", o->keep);
	_arg_str(&ab, "--ready", o->ready);
	_arg_str(&ab, "--job", o->job_id);
	if (o->attempt) {
		_arg(&ab, "--attempt");
		_arg(&ab, "%u", o->attempt);
	}
	_arg_str(&ab, "--node", o->node);
	_arg(&ab, "--part");
	_arg(&ab, "%u", o->part);
	_arg(&ab, "--nparts");
	_arg(&ab, "%u", o->nparts);
	_arg_str(&ab, "--status", o->status);
	if (o->status_fd >= 0) {
		_arg(&ab, "--status-fd");
		_arg(&ab, "%d", o->status_fd);
	}
	if (o->lead > 0)
		_arg_seconds(&ab, "--lead", o->lead);
	if (o->end_time > 0)
		_arg_seconds(&ab, "--end-time", o->end_time);
	_arg_str(&ab, "--end-time-file", o->end_time_file);
	if (o->every > 0)
		_arg_seconds(&ab, "--every", o->every);
	_arg_seconds(&ab, "--save-timeout", o->save_timeout);
	if (o->batch_script) {
		_arg(&ab, "--batch-script");
		_arg(&ab, "%u", o->batch_script);
	}
	if (o->stepd > 0) {
		_arg(&ab, "--stepd");
		_arg(&ab, "%d", (int)o->stepd);
	}
	if (o->pid > 0) {
		_arg(&ab, "--pid");
		_arg(&ab, "%d", (int)o->pid);
	} else {
		_arg(&ab, "--");
	}
	if (ab.overflow)
		return rs_err_set(err, ENOSPC, "supervisor command line: more than %zu bytes or %zu arguments",
				  store_len, argv_max);
	argv[ab.argc] = NULL;
	return (int)ab.argc;
}

/* ------------------------------------------------------ exit mapping --- */

int rs_supervise_exit_of(int wstatus, rs_supervise_exit_t *out)
{
	memset(out, 0, sizeof(*out));
	if (WIFEXITED(wstatus)) {
		out->code = WEXITSTATUS(wstatus);
		return 0;
	}
	if (WIFSIGNALED(wstatus)) {
		out->sig = WTERMSIG(wstatus);
		out->core = WCOREDUMP(wstatus) ? 1 : 0;
		return 0;
	}
	return -EINVAL;
}

/* -------------------------------------------------------- forwarding --- */

int rs_supervise_should_forward(int sig, int code, pid_t sender, pid_t self,
				pid_t app, pid_t my_pgrp, pid_t app_pgrp,
				pid_t stepd)
{
	int user_sent = code <= 0; /* SI_USER, SI_QUEUE, SI_TKILL, ... */

	/* The kernel telling us about our own children. */
	if (sig == SIGCHLD && !user_sent)
		return 0;
	/* Our own doing (e.g. SIGPIPE writing to a closed stderr), or the
	 * application signalling its parent: echoing it back could ping-pong. */
	if (user_sent && (sender == self || sender == app))
		return 0;
	/* tty signals (^C, ^Z, hangup) go to a whole process group; if the
	 * application is in ours it already has its own copy. */
	if (code == SI_KERNEL && app_pgrp > 0 && app_pgrp == my_pgrp)
		return 0;
	/* A step's slurmstepd signals all of its processes (proctrack):
	 * passing it on would deliver it twice, and a trap that counts or
	 * toggles would run twice. */
	if (user_sent && stepd > 1 && sender == stepd)
		return 0;
	return 1;
}

/* ----------------------------------------------------- state machine --- */

const char *rs_supervise_reason_name(rs_supervise_reason_t r)
{
	switch (r) {
	case RS_SUPERVISE_SIGNAL:   return "signal";
	case RS_SUPERVISE_LEAD:     return "lead";
	case RS_SUPERVISE_PERIODIC: return "periodic";
	}
	return "unknown";
}

double rs_supervise_next_periodic(double start, double every, double now)
{
	double k;

	if (every <= 0)
		return 0;
	if (now < start)
		return start + every;
	/* Truncation is floor here (non-negative); no libm needed. */
	k = (double)(long long)((now - start) / every) + 1;
	/* Rounding can land on (or a hair above) now: the next point must be
	 * after it by more than clock noise. */
	while (start + k * every <= now + 1e-9)
		k++;
	return start + k * every;
}

void rs_supervise_sm_init(rs_supervise_sm_t *sm, const rs_supervise_opts_t *o,
			  double now, double end)
{
	memset(sm, 0, sizeof(*sm));
	sm->saver = o->role == RS_SUPERVISE_SAVER;
	sm->grace = o->grace;
	sm->lead = o->lead;
	sm->every = o->every;
	sm->save_timeout = o->save_timeout;
	sm->start = now;
	sm->end = end > 0 ? end : 0;
	sm->next_periodic = rs_supervise_next_periodic(now, o->every, now);
}

void rs_supervise_sm_set_end(rs_supervise_sm_t *sm, double end)
{
	if (end <= 0) {
		sm->end = 0;
		return;
	}
	/* Later by a second or more (TimeLimit raised): this is a new window,
	 * the next warning belongs to it.  Less is clock noise. */
	if (sm->end <= 0 || end >= sm->end + 1) {
		sm->warned = 0;
		sm->lead_done = 0;
	}
	/* Earlier by a second or more after a SIGTERM: Slurm's preemption
	 * with GraceTime sends SIGCONT and SIGTERM and moves the end to now +
	 * GraceTime (slurm.conf(5), GraceTime).  That TERM is a notice, not
	 * the end: the new window's lead warning still comes.  A time limit
	 * or scancel sends TERM without moving the end earlier. */
	if (sm->term && sm->end > 0 && end <= sm->end - 1) {
		sm->term = 0;
		sm->warned = 0;
		sm->lead_done = 0;
		sm->preempted = 1;
	}
	sm->end = end;
}

static int _lead_armed(const rs_supervise_sm_t *sm)
{
	return sm->lead > 0 && sm->end > 0 && !sm->warned && !sm->lead_done &&
	       !sm->term && !sm->app_gone;
}

static int _periodic_armed(const rs_supervise_sm_t *sm)
{
	return sm->every > 0 && sm->next_periodic > 0 && !sm->term &&
	       !sm->app_gone;
}

static double _min_time(double a, double b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

double rs_supervise_sm_next(const rs_supervise_sm_t *sm)
{
	double t = 0;

	if (sm->phase != RS_SUPERVISE_IDLE)
		t = _min_time(t, sm->deadline);
	if (_lead_armed(sm))
		t = _min_time(t, sm->end - sm->lead);
	if (_periodic_armed(sm))
		t = _min_time(t, sm->next_periodic);
	return t;
}

static rs_supervise_action_t _begin(rs_supervise_sm_t *sm,
				    rs_supervise_reason_t reason, double now)
{
	sm->seq++;
	sm->reason = reason;
	if (sm->saver) {
		sm->phase = RS_SUPERVISE_WAITING;
		sm->deadline = now + sm->grace;
	}
	return RS_SUPERVISE_BEGIN;
}

static rs_supervise_action_t _save(rs_supervise_sm_t *sm, double now)
{
	sm->phase = RS_SUPERVISE_SAVING;
	sm->deadline = sm->save_timeout > 0 ? now + sm->save_timeout : 0;
	return RS_SUPERVISE_SAVE;
}

static rs_supervise_action_t _tick(rs_supervise_sm_t *sm, double now)
{
	if (sm->phase == RS_SUPERVISE_WAITING && now >= sm->deadline)
		return _save(sm, now);
	if (sm->phase == RS_SUPERVISE_SAVING && sm->deadline > 0 &&
	    now >= sm->deadline) {
		sm->deadline = 0; /* abort once; then wait for the child */
		return RS_SUPERVISE_ABORT_SAVE;
	}
	if (_lead_armed(sm) && now >= sm->end - sm->lead) {
		/* Evaluated once: a sequence already running covers this
		 * window, and past the end there is nothing left to save for. */
		sm->lead_done = 1;
		if (sm->phase == RS_SUPERVISE_IDLE && now < sm->end)
			return _begin(sm, RS_SUPERVISE_LEAD, now);
	}
	if (_periodic_armed(sm) && now >= sm->next_periodic) {
		int in_lead_window = sm->lead > 0 && sm->end > 0 &&
				     now >= sm->end - sm->lead;

		sm->next_periodic = rs_supervise_next_periodic(sm->start, sm->every, now);
		if (sm->phase == RS_SUPERVISE_IDLE && !in_lead_window)
			return _begin(sm, RS_SUPERVISE_PERIODIC, now);
	}
	return RS_SUPERVISE_NONE;
}

rs_supervise_action_t rs_supervise_sm_event(rs_supervise_sm_t *sm,
					    rs_supervise_event_t ev,
					    double now)
{
	switch (ev) {
	case RS_SUPERVISE_EV_WARNING:
		sm->warned = 1;
		/* A second warning while busy, or one right after the
		 * self-timed warning took this window's checkpoint, is only
		 * forwarded. */
		if (!sm->saver || sm->app_gone || sm->lead_done ||
		    sm->phase != RS_SUPERVISE_IDLE)
			return RS_SUPERVISE_NONE;
		return _begin(sm, RS_SUPERVISE_SIGNAL, now);
	case RS_SUPERVISE_EV_READY:
		if (sm->phase == RS_SUPERVISE_WAITING)
			return _save(sm, now);
		/* An answer to a warning this supervisor never saw (the
		 * warning went to another step's task on this node, e.g.
		 * --signal=USR1@T without B: in a one-node job): the state is
		 * written, save it now as this warning's checkpoint. */
		if (sm->phase == RS_SUPERVISE_IDLE && sm->saver && !sm->app_gone) {
			sm->seq++;
			sm->reason = RS_SUPERVISE_SIGNAL;
			sm->warned = 1;
			return _save(sm, now);
		}
		return RS_SUPERVISE_NONE;
	case RS_SUPERVISE_EV_APP_EXIT:
		sm->app_gone = 1;
		/* Its state is final: no point waiting for grace. */
		if (sm->phase == RS_SUPERVISE_WAITING)
			return _save(sm, now);
		return RS_SUPERVISE_NONE;
	case RS_SUPERVISE_EV_SAVE_DONE:
		if (sm->phase == RS_SUPERVISE_SAVING) {
			sm->phase = RS_SUPERVISE_IDLE;
			sm->deadline = 0;
			if (sm->every > 0)
				sm->next_periodic = rs_supervise_next_periodic(
					sm->start, sm->every, now);
		}
		return RS_SUPERVISE_NONE;
	case RS_SUPERVISE_EV_TERM:
		sm->term = 1;
		return RS_SUPERVISE_NONE;
	case RS_SUPERVISE_EV_TICK:
		return _tick(sm, now);
	}
	return RS_SUPERVISE_NONE;
}

/* ------------------------------------------------------- status line --- */

struct sbuf {
	char *b;
	size_t len, cap;
	int overflow;
};

static void _put(struct sbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void _put(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (sb->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(sb->b + sb->len, sb->cap - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sb->cap - sb->len) {
		sb->overflow = 1;
		return;
	}
	sb->len += (size_t)n;
}

static int _needs_escape(unsigned char c)
{
	return c < 0x21 || c > 0x7e || c == '%' || c == '=';
}

static void _put_str(struct sbuf *sb, const char *key, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";

	_put(sb, " %s=", key);
	for (const unsigned char *p = (const unsigned char *)v; *p && !sb->overflow; p++) {
		if (_needs_escape(*p))
			_put(sb, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
		else
			_put(sb, "%c", *p);
	}
}

static const char *_event_name(rs_supervise_status_event_t e)
{
	switch (e) {
	case RS_SUPERVISE_ST_WARNING: return "warning";
	case RS_SUPERVISE_ST_SAVE:    return "save";
	case RS_SUPERVISE_ST_EXIT:    return "exit";
	}
	return NULL;
}

int rs_supervise_status_format(const rs_supervise_status_t *s, char *buf,
			       size_t len)
{
	struct sbuf sb = { buf, 0, len, 0 };
	const char *ev = _event_name(s->event);

	if (!ev)
		return -EINVAL;
	if (len == 0)
		return -ENOSPC;
	_put(&sb, "rs1 %s time=%.3f pid=%ld", ev, s->time, s->pid);
	if (s->job[0])
		_put_str(&sb, "job", s->job);
	_put(&sb, " attempt=%u", s->attempt);
	if (s->node[0])
		_put_str(&sb, "node", s->node);
	_put(&sb, " part=%u nparts=%u", s->part, s->nparts);
	if (s->event != RS_SUPERVISE_ST_EXIT)
		_put(&sb, " reason=%s seq=%u", rs_supervise_reason_name(s->reason), s->seq);
	if (s->event == RS_SUPERVISE_ST_SAVE) {
		_put(&sb, " result=%s gen=%ld published=%d files=%" PRIu64
		     " copied=%" PRIu64 " linked=%" PRIu64 " seconds=%.3f",
		     s->ok ? "ok" : "fail", s->gen, s->published ? 1 : 0,
		     s->files, s->copied, s->linked, s->seconds);
		if (s->error[0])
			_put_str(&sb, "error", s->error);
	}
	if (s->event == RS_SUPERVISE_ST_EXIT) {
		if (s->sig)
			_put(&sb, " sig=%d core=%d", s->sig, s->core ? 1 : 0);
		else
			_put(&sb, " code=%d", s->code);
	}
	_put(&sb, "\n");
	if (sb.overflow || sb.len >= RS_SUPERVISE_STATUS_MAX) {
		buf[0] = '\0';
		return -ENOSPC;
	}
	return (int)sb.len;
}

static int _unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode a percent-encoded value into dst (size len).  -EINVAL/-ENOSPC. */
static int _decode(const char *v, char *dst, size_t len)
{
	size_t n = 0;

	for (; *v; v++) {
		int c = (unsigned char)*v;

		if (c == '%') {
			int hi = _unhex(v[1]), lo = hi < 0 ? -1 : _unhex(v[2]);

			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = hi * 16 + lo;
			v += 2;
		} else if (_needs_escape((unsigned char)c)) {
			return -EINVAL;
		}
		if (c == 0 || n + 1 >= len)
			return c == 0 ? -EINVAL : -ENOSPC;
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
	return 0;
}

/* An identifier (job id, node name): decoded, and refused unless it is
 * printable ASCII, since rewriting it would name something else. */
static int _decode_id(const char *v, char *dst, size_t len)
{
	int rc = _decode(v, dst, len);

	if (rc)
		return rc;
	return rs_text_is_printable(dst) ? 0 : -EINVAL;
}

enum st_key {
	SK_TIME, SK_PID, SK_JOB, SK_ATTEMPT, SK_NODE, SK_PART, SK_NPARTS,
	SK_REASON, SK_SEQ, SK_RESULT, SK_GEN, SK_PUBLISHED, SK_FILES,
	SK_COPIED, SK_LINKED, SK_SECONDS, SK_ERROR, SK_SIG, SK_CORE, SK_CODE,
	SK_COUNT
};

#define EV_W (1u << RS_SUPERVISE_ST_WARNING)
#define EV_S (1u << RS_SUPERVISE_ST_SAVE)
#define EV_E (1u << RS_SUPERVISE_ST_EXIT)
static const struct {
	const char *name;
	unsigned events; /* where the key may appear */
} st_keys[SK_COUNT] = {
	[SK_TIME] = { "time", EV_W | EV_S | EV_E },
	[SK_PID] = { "pid", EV_W | EV_S | EV_E },
	[SK_JOB] = { "job", EV_W | EV_S | EV_E },
	[SK_ATTEMPT] = { "attempt", EV_W | EV_S | EV_E },
	[SK_NODE] = { "node", EV_W | EV_S | EV_E },
	[SK_PART] = { "part", EV_W | EV_S | EV_E },
	[SK_NPARTS] = { "nparts", EV_W | EV_S | EV_E },
	[SK_REASON] = { "reason", EV_W | EV_S },
	[SK_SEQ] = { "seq", EV_W | EV_S },
	[SK_RESULT] = { "result", EV_S },
	[SK_GEN] = { "gen", EV_S },
	[SK_PUBLISHED] = { "published", EV_S },
	[SK_FILES] = { "files", EV_S },
	[SK_COPIED] = { "copied", EV_S },
	[SK_LINKED] = { "linked", EV_S },
	[SK_SECONDS] = { "seconds", EV_S },
	[SK_ERROR] = { "error", EV_S },
	[SK_SIG] = { "sig", EV_E },
	[SK_CORE] = { "core", EV_E },
	[SK_CODE] = { "code", EV_E },
};

static int _set_status_key(rs_supervise_status_t *s, enum st_key k,
			   const char *v)
{
	unsigned long long n;
	char word[16];

	switch (k) {
	case SK_TIME:
		return _parse_double(v, &s->time);
	case SK_SECONDS:
		return _parse_double(v, &s->seconds);
	case SK_JOB:
		return _decode_id(v, s->job, sizeof(s->job));
	case SK_NODE:
		return _decode_id(v, s->node, sizeof(s->node));
	case SK_ERROR: {
		/* The text may quote a user's file name: keep what it says,
		 * but only as printable ASCII (a forged "\n[date] ..." must
		 * not become a second log line). */
		char raw[RS_ERR_MAX];

		if (_decode(v, raw, sizeof(raw)))
			return -EINVAL;
		/* Printable text is kept as it is, so that parse and format
		 * are inverses on what parse returns. */
		if (rs_text_is_printable(raw))
			memcpy(s->error, raw, strlen(raw) + 1);
		else
			rs_text_escape_str(s->error, sizeof(s->error), raw);
		return 0;
	}
	case SK_REASON:
		if (_decode(v, word, sizeof(word)))
			return -EINVAL;
		for (int r = RS_SUPERVISE_SIGNAL; r <= RS_SUPERVISE_PERIODIC; r++)
			if (strcmp(word, rs_supervise_reason_name(r)) == 0) {
				s->reason = r;
				return 0;
			}
		return -EINVAL;
	case SK_RESULT:
		if (strcmp(v, "ok") == 0)
			s->ok = 1;
		else if (strcmp(v, "fail") == 0)
			s->ok = 0;
		else
			return -EINVAL;
		return 0;
	case SK_GEN:
		if (strcmp(v, "-1") == 0) {
			s->gen = -1;
			return 0;
		}
		if (_parse_uint(v, LONG_MAX, &n))
			return -EINVAL;
		s->gen = (long)n;
		return 0;
	default:
		break;
	}
	/* The rest are unsigned integers of various widths. */
	if (_parse_uint(v, UINT64_MAX, &n))
		return -EINVAL;
	switch (k) {
	case SK_PID:       if (n > INT_MAX) return -EINVAL; s->pid = (long)n; break;
	case SK_ATTEMPT:   if (n > UINT_MAX) return -EINVAL; s->attempt = (unsigned)n; break;
	case SK_PART:      if (n > UINT_MAX) return -EINVAL; s->part = (unsigned)n; break;
	case SK_NPARTS:    if (n > UINT_MAX) return -EINVAL; s->nparts = (unsigned)n; break;
	case SK_SEQ:       if (n > UINT_MAX) return -EINVAL; s->seq = (unsigned)n; break;
	case SK_PUBLISHED: if (n > 1) return -EINVAL; s->published = (int)n; break;
	case SK_CORE:      if (n > 1) return -EINVAL; s->core = (int)n; break;
	case SK_SIG:       if (n < 1 || n > 127) return -EINVAL; s->sig = (int)n; break;
	case SK_CODE:      if (n > 255) return -EINVAL; s->code = (int)n; break;
	case SK_FILES:     s->files = n; break;
	case SK_COPIED:    s->copied = n; break;
	case SK_LINKED:    s->linked = n; break;
	default:           return -EINVAL;
	}
	return 0;
}

int rs_supervise_status_parse(const char *line, rs_supervise_status_t *s,
			      rs_err_t *err)
{
	char buf[RS_SUPERVISE_STATUS_MAX];
	char *save = NULL, *tok;
	unsigned seen = 0;
	size_t n;

	memset(s, 0, sizeof(*s));
	s->gen = -1;
	if (!line)
		return rs_err_set(err, EINVAL, "status line: none");
	/* Never scan further than a line may be. */
	n = strnlen(line, sizeof(buf) + 1);
	if (n && line[n - 1] == '\n')
		n--;
	if (n >= sizeof(buf))
		return rs_err_set(err, EINVAL, "status line: longer than %d bytes",
				  RS_SUPERVISE_STATUS_MAX);
	memcpy(buf, line, n);
	buf[n] = '\0';
	if (strchr(buf, '\n'))
		return rs_err_set(err, EINVAL, "status line: embedded newline");

	tok = strtok_r(buf, " ", &save);
	if (!tok || strcmp(tok, "rs1") != 0)
		return rs_err_set(err, EINVAL, "status line: not an rs1 line");
	tok = strtok_r(NULL, " ", &save);
	for (int e = RS_SUPERVISE_ST_WARNING; tok && e <= RS_SUPERVISE_ST_EXIT; e++)
		if (strcmp(tok, _event_name(e)) == 0)
			s->event = e;
	if (!s->event)
		return rs_err_set(err, EINVAL, "status line: unknown event '%s'",
				  tok ? tok : "");
	while ((tok = strtok_r(NULL, " ", &save))) {
		char *eq = strchr(tok, '=');
		int k;

		if (!eq)
			return rs_err_set(err, EINVAL, "status line: '%s' is not key=value", tok);
		*eq = '\0';
		for (k = 0; k < SK_COUNT; k++)
			if (strcmp(st_keys[k].name, tok) == 0)
				break;
		if (k == SK_COUNT || !(st_keys[k].events & (1u << s->event)))
			return rs_err_set(err, EINVAL, "status line: unexpected key '%s' in %s",
					  tok, _event_name(s->event));
		if (seen & (1u << k))
			return rs_err_set(err, EINVAL, "status line: key '%s' repeated", tok);
		seen |= 1u << k;
		if (_set_status_key(s, k, eq + 1))
			return rs_err_set(err, EINVAL, "status line: bad value for '%s'", tok);
	}
	if (!(seen & (1u << SK_TIME)) || !(seen & (1u << SK_PID)))
		return rs_err_set(err, EINVAL, "status line: time and pid are required");
	if (s->event != RS_SUPERVISE_ST_EXIT &&
	    (!(seen & (1u << SK_REASON)) || !(seen & (1u << SK_SEQ))))
		return rs_err_set(err, EINVAL, "status line: reason and seq are required");
	if (s->event == RS_SUPERVISE_ST_SAVE && !(seen & (1u << SK_RESULT)))
		return rs_err_set(err, EINVAL, "status line: result is required");
	if (s->event == RS_SUPERVISE_ST_EXIT &&
	    !!(seen & (1u << SK_SIG)) == !!(seen & (1u << SK_CODE)))
		return rs_err_set(err, EINVAL, "status line: exactly one of sig and code");
	if ((seen & (1u << SK_CORE)) && !(seen & (1u << SK_SIG)))
		return rs_err_set(err, EINVAL, "status line: core without sig");
	return 0;
}

int rs_supervise_status_last(int fd, rs_supervise_status_event_t event,
			     rs_supervise_status_t *s, rs_err_t *err)
{
	enum { WINDOW = 1 << 20 };
	char chunk[8192];
	char line[RS_SUPERVISE_STATUS_MAX];
	rs_supervise_status_t cur;
	size_t used = 0;
	int skip = 0, found = 0;
	size_t total = 0;
	struct stat st;

	/* Only the tail matters; start 1 MiB before the end when we can and
	 * drop the partial first line. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > WINDOW) {
		if (lseek(fd, st.st_size - WINDOW, SEEK_SET) >= 0)
			skip = 1;
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return rs_err_set(err, errno, "status file: read: %s", strerror(errno));
		}
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			char c = chunk[i];

			if (c != '\n') {
				if (used + 1 < sizeof(line))
					line[used++] = c;
				else
					skip = 1; /* too long: not one of ours */
				continue;
			}
			line[used] = '\0';
			if (!skip && rs_supervise_status_parse(line, &cur, NULL) == 0 &&
			    cur.event == event) {
				*s = cur;
				found = 1;
			}
			used = 0;
			skip = 0;
		}
		total += (size_t)r;
		if (total >= WINDOW)
			break;
	}
	/* A last line without its newline was cut short: ignore it. */
	if (!found)
		return rs_err_set(err, ENOENT, "status file: no %s line", _event_name(event));
	return 0;
}

/* ---------------------------------------------------------- messages --- */

void rs_supervise_format_bytes(uint64_t bytes, char *buf, size_t len)
{
	static const char *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	int u = -1;

	if (bytes < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", bytes);
		return;
	}
	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

void rs_supervise_format_save(const rs_supervise_status_t *s,
			      const char *scratch, const char *ckpt,
			      char *buf, size_t len)
{
	char gen[32], part[64] = "", copied[32], linked[32];

	if (!s->ok) {
		snprintf(buf, len, "resilience: checkpoint of %s into %s failed: %s\n",
			 scratch ? scratch : "?", ckpt ? ckpt : "?",
			 s->error[0] ? s->error : "unknown error");
		return;
	}
	if (s->gen >= 0)
		snprintf(gen, sizeof(gen), "gen-%06ld", s->gen);
	else
		snprintf(gen, sizeof(gen), "(generation pending)");
	if (s->nparts > 1)
		/* 1-based, as the slurmd log (plugin_status.c) says it. */
		snprintf(part, sizeof(part), " part %u/%u", s->part + 1,
			 s->nparts);
	rs_supervise_format_bytes(s->copied, copied, sizeof(copied));
	rs_supervise_format_bytes(s->linked, linked, sizeof(linked));
	snprintf(buf, len, "resilience: checkpoint %s%s saved: %" PRIu64
		 " files, %s copied, %s linked, %.2f s%s\n",
		 gen, part, s->files, copied, linked, s->seconds,
		 s->nparts > 1 && !s->published ? " (other parts pending)" : "");
}
