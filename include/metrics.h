/*
 * metrics.h - per-attempt metrics and retries-exhausted alerts: site
 * configuration, and the two calls the plugin and the CLI make.
 *
 *   rs_metrics_submit()  at the end of an attempt: serialise, spool
 *                        (durably, first, so nothing is lost), then start a
 *                        detached background process that tries to deliver
 *                        the spool within a hard time bound.  The caller
 *                        gets control back in a few milliseconds whatever
 *                        the receivers do.
 *   rs_metrics_flush()   deliver what is due in the spool, in the calling
 *                        process, within budget_ms (the CLI's `flush`, the
 *                        systemd timer, and the background process above).
 *
 * Who calls it: the plugin, in slurmstepd as root, once per attempt after
 * the requeue policy decided (slurm_spank_task_exit of the batch step, or
 * slurm_spank_exit in remote context).  Root because the spool and the
 * secret files are root-only; never from a hook that runs as the user.
 *
 * The background process (double fork, setsid, all fds but 0-2 closed,
 * 0-2 on /dev/null, signals reset, alarm() as a backstop) is not waited
 * for.  Limits: it is forked from a multi-threaded slurmstepd, so it
 * relies on glibc's fork handlers for malloc and on the alarm() backstop
 * should another library lock be held at fork time; with
 * proctrack/cgroup, Slurm kills it when the step's cgroup is cleaned up.
 * Either way the entries stay spooled and the next submit on the node or
 * the next `slurm-resilience flush` delivers them.
 *
 * Return convention: 0 / -errno with err filled.  Not thread-safe with
 * respect to the same conf.
 */
#ifndef RS_METRICS_H
#define RS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "event.h"

#define RS_METRICS_DEFAULT_SPOOL "/var/spool/slurm-resilience"
#define RS_METRICS_DEFAULT_TABLE "slurm_resilience.events"
#define RS_METRICS_DEFAULT_BUDGET_MS 10000L /* background flush after submit */

typedef enum rs_metrics_format {
	RS_METRICS_JSON = 0,      /* POST the event object (any webhook) */
	RS_METRICS_CLICKHOUSE,    /* INSERT ... FORMAT JSONEachRow */
	RS_METRICS_PROMETHEUS,    /* PUT to a Pushgateway group per job */
} rs_metrics_format_t;

typedef enum rs_alert_format {
	RS_ALERT_ALERTMANAGER = 0, /* POST <alert_url>/api/v2/alerts */
	RS_ALERT_JSON,             /* POST <alert_url>, one JSON object */
} rs_alert_format_t;

/* Receives each message of a flush: level is a syslog level (LOG_ERR,
 * LOG_WARNING, LOG_INFO).  Messages never hold secrets. */
typedef void (*rs_metrics_log_fn)(void *arg, int level, const char *msg);

/* Site configuration.  Strings are owned (rs_metrics_conf_free()). */
typedef struct rs_metrics_conf {
	char *url;                      /* metrics_url=; NULL: no metrics */
	rs_metrics_format_t format;     /* metrics_format=json|clickhouse|prometheus */
	char *clickhouse_table;         /* clickhouse_table=[db.]table */
	char *token_file;               /* token_file=/abs/path: bearer token */
	char *clickhouse_credentials;   /* clickhouse_credentials=/abs/path: user:password */
	char *spool_dir;                /* spool_dir=/abs/path */
	long timeout_ms;                /* timeout_ms=1..60000, default 2000 */
	char *alert_url;                /* alert_url=; NULL: no alerts */
	rs_alert_format_t alert_format; /* alert_format=alertmanager|json */
	char *cluster;                  /* cluster=; overrides the event's */
	unsigned long spool_max_entries;/* spool_max_entries= */
	uint64_t spool_max_bytes;       /* spool_max_bytes=N[K|M|G] */
	long budget_ms;                 /* flush_budget_ms=: bound of the
	                                 * background flush, default 10000 */
	rs_metrics_log_fn log;          /* NULL: messages dropped (the
	                                 * background flusher uses syslog) */
	void *log_arg;
	char *flush_cmd;                /* the slurm-resilience binary the
	                                 * detached sender execs (`flush`);
	                                 * NULL: RS_BINDIR/slurm-resilience */
} rs_metrics_conf_t;

/* Defaults: format json, table slurm_resilience.events, spool
 * /var/spool/slurm-resilience, timeout 2000 ms, alertmanager, spool
 * bounds from spool.h, budget 10000 ms. */
void rs_metrics_conf_init(rs_metrics_conf_t *conf);
void rs_metrics_conf_free(rs_metrics_conf_t *conf);

/* The one place the metrics keys are validated (the plugstack parser and
 * the CLI both call it).  Keys: metrics_url, metrics_format,
 * clickhouse_table, token_file, clickhouse_credentials, spool_dir,
 * timeout_ms, alert_url, alert_format, cluster, spool_max_entries,
 * spool_max_bytes, flush_budget_ms.  -ENOENT for a key that is not one of
 * them (err names it), -EINVAL for a bad value (err names the key and
 * what is allowed), -ENOMEM.  An empty URL turns that destination off.
 * URLs with user info are refused: plugstack.conf is readable by every
 * user, so credentials go in token_file= / clickhouse_credentials=. */
int rs_metrics_conf_set(rs_metrics_conf_t *conf, const char *key, const char *value,
			rs_err_t *err);

/* The configuration as key=value arguments for `slurm-resilience flush`
 * (what the detached sender execs): argv gets at most max-1 pointers into
 * buf and a NULL.  Returns the count, or -ENOSPC. */
int rs_metrics_conf_args(const rs_metrics_conf_t *conf, char **argv, int max,
			 char *buf, size_t len);

/* Whether key is one of the above (1/0). */
int rs_metrics_conf_is_key(const char *key);

/* Cross-field checks, and the secret files (owner root, mode 0600 or
 * stricter, one line) read and forgotten, so a bad file is reported where
 * the plugin can log it.  -EINVAL, -EPERM naming the file, -ENOENT. */
int rs_metrics_conf_check(const rs_metrics_conf_t *conf, rs_err_t *err);

/* Whether anything is to be sent at all for this kind of event (1/0). */
int rs_metrics_enabled(const rs_metrics_conf_t *conf, int is_exhausted_alert);

/* End of an attempt: spool the event (metrics_url set) and, when
 * is_exhausted_alert and alert_url are set, the alert; then start the
 * detached background flush (budget_ms bound) and return.  Returns 0 when
 * everything was spooled and the flusher started (delivery happens
 * later); -ENOSPC at the spool bound, -EPERM for a bad spool or secret
 * file, other -errno; err says what, and whether the event is spooled
 * anyway (it is, unless the error is from serialising or spooling).
 * Typical cost: a few ms (fsync of two small files and a fork). */
int rs_metrics_submit(const rs_metrics_conf_t *conf, const rs_event_t *ev,
		      int is_exhausted_alert, rs_err_t *err);

/* Like rs_metrics_submit() without the background flush (tests, and a
 * caller that flushes itself). */
int rs_metrics_spool_event(const rs_metrics_conf_t *conf, const rs_event_t *ev,
			   int is_exhausted_alert, rs_err_t *err);

/* Start the detached background flush only.  0 or -errno (fork). */
int rs_metrics_spawn_flush(const rs_metrics_conf_t *conf, rs_err_t *err);

#define RS_METRICS_FLUSH_ALL 0x1  /* ignore next_try: send everything now */

typedef struct rs_metrics_flush_stats {
	size_t sent;       /* delivered and removed */
	size_t retry;      /* failed, kept with a later next_try */
	size_t dead;       /* refused as bad: moved to dead/ */
	size_t skipped;    /* not due, destination off or down this run */
	size_t left;       /* entries in the spool afterwards */
	size_t dead_total; /* entries in dead/ afterwards */
	int out_of_time;   /* budget ran out before the end of the spool */
} rs_metrics_flush_stats_t;

/* Deliver the due entries of the spool, oldest first, within budget_ms
 * (lock wait included; each request's timeout is cut to what is left).
 * After a destination fails to answer, its other entries wait for the next
 * run rather than each waiting for its own timeout.  Returns 0 when the
 * run went through the spool (stats say what happened to each entry: a
 * receiver being down is not an error here), -EBUSY if another flush held
 * the lock for the whole budget, -EPERM for a bad secret file, other
 * -errno.  stats may be NULL. */
int rs_metrics_flush(const rs_metrics_conf_t *conf, long budget_ms, unsigned flags,
		     rs_metrics_flush_stats_t *stats, rs_err_t *err);

/* Backoff before the next try after `attempts` failed deliveries:
 * 30 s, 60 s, 120 s ... capped at 1 h.  Pure. */
long rs_metrics_backoff_s(unsigned attempts);

#endif
