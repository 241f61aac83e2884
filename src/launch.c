/* launch.c - see include/launch.h */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "launch.h"

struct acc {
	char **argv;
	int argc;
	char *buf;
	size_t len, used;
	int err;
};

static void _add(struct acc *a, const char *s)
{
	size_t n = strlen(s) + 1;

	if (a->err)
		return;
	if (a->argc + 1 >= RS_LAUNCH_MAX_ARGS || a->used + n > a->len) {
		a->err = -ENOSPC;
		return;
	}
	memcpy(a->buf + a->used, s, n);
	a->argv[a->argc++] = a->buf + a->used;
	a->argv[a->argc] = NULL;
	a->used += n;
}

static void _opt(struct acc *a, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void _opt(struct acc *a, const char *name, const char *fmt, ...)
{
	char v[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	_add(a, name);
	_add(a, v);
}

int rs_launch_argv(const rs_launch_t *l, char **argv, int *argc, char *buf,
		   size_t len)
{
	struct acc a = { argv, 0, buf, len, 0, 0 };

	_add(&a, l->supervisor);
	_opt(&a, "--role", "%s", l->saver ? "saver" : "forward");
	_opt(&a, "--ckpt", "%s", l->ckpt);
	_opt(&a, "--scratch", "%s", l->scratch);
	_opt(&a, "--signal", "%d", l->spec->signal);
	_opt(&a, "--grace", "%u", l->spec->grace);
	_opt(&a, "--keep", "%u", l->spec->keep);
	_opt(&a, "--ready", "%s", l->ready);
	_opt(&a, "--job", "%s", l->job);
	_opt(&a, "--attempt", "%u", l->attempt);
	_opt(&a, "--node", "%s", l->node);
	_opt(&a, "--part", "%u", l->part);
	_opt(&a, "--nparts", "%u", l->nparts);
	if (l->status)
		_opt(&a, "--status", "%s", l->status);
	if (l->status_fd > 2)
		_opt(&a, "--status-fd", "%d", l->status_fd);
	if (l->lead && l->end_time_file) {
		_opt(&a, "--lead", "%u", l->lead);
		_opt(&a, "--end-time-file", "%s", l->end_time_file);
	} else if (l->lead && l->end_time > 0) {
		_opt(&a, "--lead", "%u", l->lead);
		_opt(&a, "--end-time", "%.0f", l->end_time);
	}
	if (l->spec->every)
		_opt(&a, "--every", "%u", l->spec->every);
	if (l->batch_script)
		_opt(&a, "--batch-script", "%d", 1);
	if (l->stepd > 0)
		_opt(&a, "--stepd", "%ld", (long)l->stepd);
	if (l->adopt > 0)
		_opt(&a, "--pid", "%ld", (long)l->adopt);
	else
		_add(&a, "--");
	*argc = a.argc;
	return a.err;
}

int rs_launch_private_dir(uid_t uid, char *buf, size_t len)
{
	int n = snprintf(buf, len, "/tmp/.resilience-%u", (unsigned)uid);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
