/*
 * decision.h - the end of an attempt's decision, recorded durably on the
 * node before anything is asked of slurmctld, and carried out until it
 * holds.
 *
 * The batch step's task_exit decides (requeue.h), writes the decision
 * here (a root-owned spool, spool.h: fsync'd, bounded, crash-safe) and
 * only then starts `slurm-resilience apply` (src/cli_apply.c), a detached
 * program that sends the RPCs (requeue or hold, then one update with the
 * AdminComment and the begin time) and retries them with backoff while
 * slurmctld does not answer.  task_exit waits for it a short, fixed time
 * (RS_DECISION_WAIT_MS) only to say in the log whether it already holds.
 * The same program also runs from the job epilog of the next job on the
 * node and from `slurm-resilience flush` (the systemd timer), so a
 * decision whose applier was killed (cgroup process tracking, reboot) is
 * still carried out.  A decision that cannot be carried out before its
 * deadline, or that slurmctld refuses, becomes a dead letter (dead/) and
 * a line in the node's syslog.
 *
 * Folder: SPOOL_DIR/decisions-CLUSTER (SPOOL_DIR: the site's metrics
 * spool_dir, default /var/spool/slurm-resilience; CLUSTER: ClusterName,
 * so an applier never sends a decision to another cluster's slurmctld),
 * root's, 0700.
 *
 * Payload of an entry (kind decision, format slurm), one "key value" per
 * line, every value printable ASCII:
 *
 *   job_id 123            the job as slurm_requeue() names it
 *   job_str 120_3         the job as an update names it (array task
 *                         ARRAY_TASK, het component HET+OFFSET)
 *   restart 0             Slurm's restart count during the attempt: a
 *                         retry that finds a higher one knows the requeue
 *                         already happened
 *   action requeued       requeued|continued|held|failed|ended
 *   delay 0               seconds before the next attempt
 *   requeue_done 0        1 once slurmctld took the requeue
 *   deadline 1767225600   unix seconds: dead letter after this
 *   comment ...           the AdminComment to set ("" = none)
 */
#ifndef RS_DECISION_H
#define RS_DECISION_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "requeue.h"

/* How long task_exit waits to see the decision applied (only for the
 * log line; the decision is durable before). */
#define RS_DECISION_WAIT_MS 3000
/* How long a decision is retried before it is a dead letter. */
#define RS_DECISION_DEFAULT_TIMEOUT 3600
/* Backoff between tries: 2, 4, 8 seconds, at most this (each try at a
 * controller that is down already waits MessageTimeout in libslurm). */
#define RS_DECISION_MAX_BACKOFF 8
#define RS_DECISION_COMMENT_MAX 320

typedef struct rs_pending {
	uint32_t job_id;
	char job_str[48];
	unsigned restart;
	rs_action_t action;
	uint32_t delay;
	int requeue_done;
	int64_t deadline;
	char comment[RS_DECISION_COMMENT_MAX];
} rs_pending_t;

/* Whether the action needs a requeue RPC (requeued, continued, held). */
int rs_pending_requeues(const rs_pending_t *p);

/* SPOOL_DIR/decisions-CLUSTER into out (a cluster name that is not a
 * Slurm identifier becomes "_").  0 / -ENAMETOOLONG. */
int rs_decision_dir(const char *spool_dir, const char *cluster, char *out, size_t len);

/* Serialise p (buf gets a NUL-terminated payload).  -EINVAL if a field
 * holds a byte outside printable ASCII or does not fit. */
int rs_pending_format(const rs_pending_t *p, char *buf, size_t len, rs_err_t *err);
/* Parse a payload; -EINVAL (err names the line) if malformed. */
int rs_pending_parse(const char *buf, size_t len, rs_pending_t *p, rs_err_t *err);

/* Record p durably in dir (created 0700 if missing); name (may be NULL)
 * gets the entry's file name.  0 / -errno. */
int rs_decision_record(const char *dir, const rs_pending_t *p, char *name,
		       size_t name_len, rs_err_t *err);

/* 1 while entry `name` is still waiting in dir, 0 when gone. */
int rs_decision_waiting(const char *dir, const char *name);

/* Number of decisions waiting in dir (0 if the folder does not exist or
 * is not ours): a cheap look for the job epilog. */
long rs_decision_count(const char *dir);

/* Seconds to wait after `tries` failed tries. */
unsigned rs_decision_backoff(unsigned tries);

#endif
