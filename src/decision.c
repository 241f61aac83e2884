/*
 * decision.c - durable end-of-attempt decisions (see decision.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decision.h"
#include "rundir.h"
#include "spool.h"

int rs_pending_requeues(const rs_pending_t *p)
{
	return p->action == RS_ACTION_REQUEUED || p->action == RS_ACTION_CONTINUED ||
	       p->action == RS_ACTION_HELD;
}

int rs_decision_dir(const char *spool_dir, const char *cluster, char *out, size_t len)
{
	int n = snprintf(out, len, "%s/decisions-%s", spool_dir, rs_rundir_token(cluster));

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int _printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

int rs_pending_format(const rs_pending_t *p, char *buf, size_t len, rs_err_t *err)
{
	const char *act = rs_action_name(p->action);
	int n;

	if (!act || !p->job_id || !p->job_str[0] || !_printable(p->job_str) ||
	    strchr(p->job_str, ' ') || !_printable(p->comment))
		return rs_err_set(err, EINVAL, "decision for job %" PRIu32 ": a field is "
				  "empty or holds a byte that is not printable ASCII", p->job_id);
	n = snprintf(buf, len,
		     "job_id %" PRIu32 "\njob_str %s\nrestart %u\naction %s\ndelay %" PRIu32
		     "\nrequeue_done %d\ndeadline %" PRId64 "\ncomment %s\n",
		     p->job_id, p->job_str, p->restart, act, p->delay, p->requeue_done ? 1 : 0,
		     p->deadline, p->comment);
	if (n < 0 || (size_t)n >= len)
		return rs_err_set(err, EINVAL, "decision for job %" PRIu32 ": too long",
				  p->job_id);
	return 0;
}

/* An unsigned decimal in [0, max] (no sign, no spaces), or -1. */
static int64_t _num(const char *s, int64_t max)
{
	int64_t v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return -1;
	}
	return v;
}

int rs_pending_parse(const char *buf, size_t len, rs_pending_t *p, rs_err_t *err)
{
	char line[RS_DECISION_COMMENT_MAX + 32];
	size_t i = 0;
	unsigned seen = 0;
	int lineno = 0;

	memset(p, 0, sizeof(*p));
	while (i < len) {
		size_t n = 0;
		const char *key, *val;
		char *sp;
		int64_t v = 0;
		int bit;

		lineno++;
		while (i < len && buf[i] != '\n') {
			if (n + 1 >= sizeof(line))
				return rs_err_set(err, EINVAL, "decision: line %d too long", lineno);
			line[n++] = buf[i++];
		}
		i++; /* the newline (or past the end) */
		line[n] = '\0';
		if (!n)
			continue;
		if (!_printable(line) || !(sp = strchr(line, ' ')))
			return rs_err_set(err, EINVAL, "decision: line %d malformed", lineno);
		*sp = '\0';
		key = line;
		val = sp + 1;
		if (!strcmp(key, "job_id")) {
			bit = 0;
			v = _num(val, UINT32_MAX);
			if (v <= 0)
				goto bad;
			p->job_id = (uint32_t)v;
		} else if (!strcmp(key, "job_str")) {
			bit = 1;
			if (!*val || strchr(val, ' ') ||
			    strlen(val) >= sizeof(p->job_str))
				goto bad;
			strcpy(p->job_str, val);
		} else if (!strcmp(key, "restart")) {
			bit = 2;
			v = _num(val, UINT32_MAX);
			if (v < 0)
				goto bad;
			p->restart = (unsigned)v;
		} else if (!strcmp(key, "action")) {
			int a = rs_action_parse(val);

			bit = 3;
			if (a < 0)
				goto bad;
			p->action = (rs_action_t)a;
		} else if (!strcmp(key, "delay")) {
			bit = 4;
			v = _num(val, UINT32_MAX);
			if (v < 0)
				goto bad;
			p->delay = (uint32_t)v;
		} else if (!strcmp(key, "requeue_done")) {
			bit = 5;
			v = _num(val, 1);
			if (v < 0)
				goto bad;
			p->requeue_done = (int)v;
		} else if (!strcmp(key, "deadline")) {
			bit = 6;
			v = _num(val, INT64_MAX / 2);
			if (v < 0)
				goto bad;
			p->deadline = v;
		} else if (!strcmp(key, "comment")) {
			bit = 7;
			if (strlen(val) >= sizeof(p->comment))
				goto bad;
			strcpy(p->comment, val);
		} else {
			return rs_err_set(err, EINVAL, "decision: line %d: unknown key", lineno);
		}
		if (seen & (1u << bit))
			return rs_err_set(err, EINVAL, "decision: line %d: %s twice", lineno, key);
		seen |= 1u << bit;
		continue;
bad:
		return rs_err_set(err, EINVAL, "decision: line %d: bad %s", lineno, key);
	}
	if (seen != 0xffu)
		return rs_err_set(err, EINVAL, "decision: a field is missing");
	return 0;
}

int rs_decision_record(const char *dir, const rs_pending_t *p, char *name,
		       size_t name_len, rs_err_t *err)
{
	char payload[1024];
	rs_spool_entry_t e;
	rs_spool_t *sp = NULL;
	int rc;

	rc = rs_pending_format(p, payload, sizeof(payload), err);
	if (rc)
		return rc;
	rc = rs_spool_open(dir, NULL, 1, &sp, err);
	if (rc == -ENOENT) {
		/* The first decision on this node: SPOOL_DIR itself (root's,
		 * private), then again. */
		char parent[4096], *slash;

		snprintf(parent, sizeof(parent), "%s", dir);
		slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = '\0';
			if (mkdir(parent, 0700) && errno != EEXIST)
				return rs_err_set(err, errno, "decision: cannot create %s: %s",
						  parent, strerror(errno));
		}
		rc = rs_spool_open(dir, NULL, 1, &sp, err);
	}
	if (rc)
		return rc;
	memset(&e, 0, sizeof(e));
	e.kind = RS_SPOOL_DECISION;
	snprintf(e.format, sizeof(e.format), "slurm");
	snprintf(e.event_id, sizeof(e.event_id), "%s:%u", p->job_str, p->restart);
	e.payload = payload;
	e.len = strlen(payload);
	rc = rs_spool_put(sp, &e, err);
	if (!rc && name)
		snprintf(name, name_len, "%s", e.name);
	rs_spool_close(sp);
	return rc;
}

int rs_decision_waiting(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;

	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return 0;
	return lstat(path, &st) == 0;
}

long rs_decision_count(const char *dir)
{
	rs_spool_t *sp = NULL;
	size_t n = 0;
	uint64_t bytes = 0;
	rs_err_t err;

	/* The spool's own checks: a real folder, ours, closed to others. */
	if (rs_spool_open(dir, NULL, 0, &sp, &err))
		return 0;
	if (rs_spool_usage(sp, &n, &bytes, &err))
		n = 0;
	rs_spool_close(sp);
	return (long)n;
}

unsigned rs_decision_backoff(unsigned tries)
{
	unsigned s = 2;

	while (tries-- > 1 && s < RS_DECISION_MAX_BACKOFF)
		s *= 2;
	return s > RS_DECISION_MAX_BACKOFF ? RS_DECISION_MAX_BACKOFF : s;
}
