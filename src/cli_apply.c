/*
 * cli_apply.c - `slurm-resilience apply`: carry out the end-of-attempt
 * decisions recorded on this node (decision.h) until slurmctld has taken
 * them.  Not for people; started by resilience.so (task_exit, job
 * epilog) and by `slurm-resilience flush`.
 *
 *   slurm-resilience apply --dir DIR [--for SECONDS] [--quiet]
 *
 * Root only (the folder is root's).  One pass over what is due; with
 * --for, passes again (at least once a second) while decisions wait and
 * the time lasts.  One applier at a time per folder (the spool lock):
 * a second one leaves at once, the first sees its entries.  Per decision:
 * the requeue (or hold), then one update with the AdminComment and the
 * begin time.  While slurmctld does not answer, the decision is tried
 * again after 2, 4, 8, 8 ... s; past its deadline, or refused by
 * slurmctld, it becomes a dead letter (DIR/dead) and a syslog error.
 * Exit status: 0 nothing left waiting, 1 decisions still waiting or
 * dead, 2 usage.
 */
#include <errno.h>
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "cli.h"
#include "decision.h"
#include "spool.h"

/* libslurm's configuration, read by slurm_init (ClusterName). */
extern slurm_conf_t slurm_conf;

static int quiet;

static void _log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void _log(int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	syslog(prio, "%s", msg);
	if (!quiet)
		fprintf(stderr, "slurm-resilience: apply: %s\n", msg);
}

/* slurmctld did not answer (down, restarting, failing over, overloaded):
 * try again later.  Anything else is its answer. */
static int _unreachable(int e)
{
	return (e >= SLURM_COMMUNICATIONS_CONNECTION_ERROR && e < 1900) ||
	       (e >= SLURM_PROTOCOL_SOCKET_IMPL_ZERO_RECV_LENGTH && e < 6000) ||
	       e == ESLURM_IN_STANDBY_MODE || e == ESLURM_IN_STANDBY_USE_BACKUP ||
	       e == ESLURM_TRANSITION_STATE_NO_UPDATE || e == EAGAIN ||
	       e == ECONNREFUSED || e == ETIMEDOUT || e == EINTR || e == 0;
}

/* One update of the job as p names it; 0 or -1 with errno. */
static int _update(const rs_pending_t *p, job_desc_msg_t *upd)
{
	job_array_resp_msg_t *resp = NULL;
	char id[sizeof(p->job_str)];
	int rc;

	snprintf(id, sizeof(id), "%s", p->job_str);
	upd->job_id_str = id;
	rc = slurm_update_job2(upd, &resp);
	if (resp) {
		uint32_t i;

		for (i = 0; i < resp->job_array_count; i++)
			if (resp->error_code[i] && !rc) {
				errno = (int)resp->error_code[i];
				rc = -1;
			}
		slurm_free_job_array_resp(resp);
	}
	upd->job_id_str = NULL;
	return rc ? -1 : 0;
}

typedef enum { DONE, RETRY, DEAD } verdict_t;

/* The job's record as slurmctld has it now; NULL with errno. */
static slurm_job_info_t *_load(uint32_t job, job_info_msg_t **msg)
{
	*msg = NULL;
	if (slurm_load_job(msg, job, SHOW_ALL | SHOW_LOCAL))
		return NULL;
	if (!*msg || !(*msg)->record_count) {
		if (*msg)
			slurm_free_job_info_msg(*msg);
		*msg = NULL;
		errno = ESLURM_INVALID_JOB_ID;
		return NULL;
	}
	return &(*msg)->job_array[0];
}

/* The requeue (or hold).  Sets p->requeue_done; why gets the reason
 * when not DONE. */
static verdict_t _requeue(rs_pending_t *p, unsigned tries, char *why, size_t len)
{
	job_info_msg_t *msg;
	slurm_job_info_t *r;

	if (tries) {
		/* An earlier try may have reached slurmctld and lost only the
		 * answer: never requeue the next attempt. */
		r = _load(p->job_id, &msg);
		if (!r) {
			int e = errno;

			snprintf(why, len, "%s", slurm_strerror(e));
			return _unreachable(e) ? RETRY : DEAD;
		}
		if (r->restart_cnt > p->restart ||
		    (r->job_state & JOB_STATE_BASE) == JOB_PENDING)
			p->requeue_done = 1;
		slurm_free_job_info_msg(msg);
		if (p->requeue_done)
			return DONE;
	}
	if (slurm_requeue(p->job_id, p->action == RS_ACTION_HELD ? JOB_REQUEUE_HOLD : 0)) {
		int e = errno;

		snprintf(why, len, "%s", slurm_strerror(e));
		if (e == ESLURM_JOB_PENDING) {
			p->requeue_done = 1;
			return DONE;
		}
		return _unreachable(e) ? RETRY : DEAD;
	}
	p->requeue_done = 1;
	return DONE;
}

/* AdminComment and begin time, in one update.  Slurm sets its own begin
 * time at the requeue (cred_expire + 1 s): never an earlier one. */
static verdict_t _comment(rs_pending_t *p, char *why, size_t len)
{
	job_desc_msg_t upd;
	time_t want = 0;
	int i;

	if (!p->comment[0] && !p->delay)
		return DONE;
	if (p->delay) {
		job_info_msg_t *msg;
		slurm_job_info_t *r = _load(p->job_id, &msg);

		if (!r) {
			int e = errno;

			snprintf(why, len, "%s", slurm_strerror(e));
			return _unreachable(e) ? RETRY : DEAD;
		}
		want = time(NULL) + p->delay;
		if (r->start_time >= want)
			want = 0; /* Slurm's own delay is longer */
		slurm_free_job_info_msg(msg);
	}
	for (i = 0; i < 20; i++) {
		slurm_init_job_desc_msg(&upd);
		if (p->comment[0])
			upd.admin_comment = p->comment;
		if (want)
			upd.begin_time = want;
		if (!_update(p, &upd))
			return DONE;
		if (errno != ESLURM_JOB_NOT_PENDING || !want)
			break;
		usleep(100000);
	}
	snprintf(why, len, "%s", slurm_strerror(errno));
	return _unreachable(errno) ? RETRY : DEAD;
}

/* Carry out one entry.  1 if it is still waiting afterwards. */
static int _apply(rs_spool_t *sp, const char *name, time_t *next_due)
{
	rs_spool_entry_t e;
	rs_pending_t p;
	rs_err_t err;
	char why[200] = "";
	verdict_t v = DONE;
	time_t now = time(NULL);
	int was_done;

	if (rs_spool_read(sp, name, 0, &e, &err))
		return 0; /* gone (another applier) or not ours */
	if (e.next_try > now) {
		if (!*next_due || e.next_try < *next_due)
			*next_due = e.next_try;
		rs_spool_entry_free(&e);
		return 1;
	}
	if (e.kind != RS_SPOOL_DECISION || rs_pending_parse(e.payload, e.len, &p, &err)) {
		_log(LOG_ERR, "decision %s is malformed, moved to the dead letters: %s", name,
		     e.kind != RS_SPOOL_DECISION ? "not a decision" : err.msg);
		rs_spool_dead(sp, &e, "malformed", &err);
		rs_spool_entry_free(&e);
		return 0;
	}
	if (p.deadline && now > p.deadline) {
		_log(LOG_ERR, "job %s: %s NOT carried out: slurmctld did not take it "
		     "before its deadline (last error: %s); dead letter %s/dead/%s",
		     p.job_str, rs_action_name(p.action), e.last_error[0] ? e.last_error : "none",
		     rs_spool_dir(sp), name);
		rs_spool_dead(sp, &e, "deadline passed", &err);
		rs_spool_entry_free(&e);
		return 0;
	}
	was_done = p.requeue_done;
	if (rs_pending_requeues(&p) && !p.requeue_done)
		v = _requeue(&p, e.attempts, why, sizeof(why));
	if (v == DONE)
		v = _comment(&p, why, sizeof(why));
	if (v == RETRY && p.requeue_done && !was_done) {
		/* Remember the requeue held: write the entry anew. */
		char payload[1024];
		rs_spool_entry_t n = e;

		if (!rs_pending_format(&p, payload, sizeof(payload), &err)) {
			n.payload = payload;
			n.len = strlen(payload);
			if (!rs_spool_put(sp, &n, &err))
				rs_spool_done(sp, name, &err);
			name = n.name;
			snprintf(e.name, sizeof(e.name), "%s", n.name);
		}
	}
	switch (v) {
	case DONE:
		rs_spool_done(sp, name, &err);
		_log(LOG_INFO, "job %s: %s%s", p.job_str,
		     p.action == RS_ACTION_HELD	  ? "held"
		     : rs_pending_requeues(&p) ? "requeued"
					       : "AdminComment set",
		     e.attempts ? " (slurmctld answered again)" : "");
		break;
	case RETRY: {
		unsigned wait = rs_decision_backoff(e.attempts + 1);

		rs_spool_retry(sp, &e, (int64_t)now + wait, why, &err);
		if (!e.attempts || e.attempts % 10 == 1)
			_log(LOG_WARNING, "job %s: %s pending (controller unreachable: %s); "
			     "trying again in %u s", p.job_str,
			     p.requeue_done ? "AdminComment" : rs_action_name(p.action), why,
			     wait);
		if (!*next_due || now + wait < *next_due)
			*next_due = now + wait;
		rs_spool_entry_free(&e);
		return 1;
	}
	case DEAD:
		_log(LOG_ERR, "job %s: slurmctld refused the %s (%s); dead letter %s/dead/%s",
		     p.job_str, p.requeue_done ? "AdminComment" : rs_action_name(p.action), why,
		     rs_spool_dir(sp), name);
		rs_spool_dead(sp, &e, why, &err);
		break;
	}
	rs_spool_entry_free(&e);
	return 0;
}

/* One pass over the folder; *waiting counts entries left. */
static int _pass(rs_spool_t *sp, size_t *waiting, time_t *next_due)
{
	char **names = NULL;
	size_t n = 0, i;
	rs_err_t err;

	*waiting = 0;
	*next_due = 0;
	if (rs_spool_list(sp, 0, &names, &n, &err)) {
		_log(LOG_ERR, "%s", err.msg);
		return -1;
	}
	for (i = 0; i < n; i++)
		*waiting += (size_t)_apply(sp, names[i], next_due);
	rs_spool_names_free(names, n);
	return 0;
}

int rs_cli_apply_dir(const char *dir, long for_s, int be_quiet)
{
	rs_spool_t *sp = NULL;
	rs_err_t err;
	time_t until = time(NULL) + (for_s > 0 ? for_s : 0);
	size_t waiting = 0;
	time_t next_due = 0;
	int rc;

	quiet = be_quiet;
	rc = rs_spool_open(dir, NULL, 0, &sp, &err);
	if (rc == -ENOENT)
		return 0;
	if (rc) {
		_log(LOG_ERR, "%s", err.msg);
		return 1;
	}
	if (rs_spool_lock(sp, 0, &err)) {
		rs_spool_close(sp); /* another applier has them */
		return 0;
	}
	rs_cli_slurm_init();
	for (;;) {
		time_t now;

		if (_pass(sp, &waiting, &next_due))
			break;
		now = time(NULL);
		if (!waiting || now >= until)
			break;
		/* Wake at least once a second: new decisions arrive. */
		sleep(next_due > now && next_due - now < 1 ? (unsigned)(next_due - now) : 1);
	}
	rs_spool_close(sp);
	return waiting ? 1 : 0;
}

int rs_cli_apply_spool(const char *spool_dir, long for_s, int be_quiet)
{
	char dir[4096];

	glob_t g;
	size_t i, waiting = 0;

	if (geteuid() != 0)
		return 0; /* root's decisions; a user's flush has none */
	/* Only when something waits: libslurm needs a slurm.conf, a
	 * metrics-only flush (a receiver test, a login node) may have none. */
	if (snprintf(dir, sizeof(dir), "%s/decisions-*", spool_dir) >= (int)sizeof(dir) ||
	    glob(dir, GLOB_NOSORT, NULL, &g))
		return 0;
	for (i = 0; i < g.gl_pathc; i++)
		waiting += rs_decision_count(g.gl_pathv[i]) > 0;
	globfree(&g);
	if (!waiting)
		return 0;
	rs_cli_slurm_init();
	if (rs_decision_dir(spool_dir, slurm_conf.cluster_name ? slurm_conf.cluster_name : "",
			    dir, sizeof(dir)))
		return 1;
	openlog("slurm-resilience", LOG_PID, LOG_DAEMON);
	return rs_cli_apply_dir(dir, for_s, be_quiet);
}

int rs_cli_apply(int argc, char **argv)
{
	const char *dir = NULL;
	long for_s = 0;
	int q = 0, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quiet")) {
			q = 1;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc && argv[i + 1][0] == '/') {
			dir = argv[++i];
		} else if (!strcmp(argv[i], "--for") && i + 1 < argc) {
			char *end;

			errno = 0;
			for_s = strtol(argv[++i], &end, 10);
			if (errno || *end || for_s < 0 || for_s > 86400)
				goto usage;
		} else {
			goto usage;
		}
	}
	if (!dir)
		goto usage;
	if (geteuid() != 0) {
		fprintf(stderr, "slurm-resilience: apply: root only (the decisions are root's)\n");
		return 2;
	}
	openlog("slurm-resilience", LOG_PID, LOG_DAEMON);
	return rs_cli_apply_dir(dir, for_s, q);
usage:
	fprintf(stderr, "usage: slurm-resilience apply --dir /ABS/DIR [--for SECONDS] [--quiet]\n");
	return 2;
}
