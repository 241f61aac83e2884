/*
 * event.h - one metrics event per job attempt, and its serialisations.
 *
 * The event is what the requeue policy knows when an attempt of a job ends:
 * who ran what where, how it ended, what the plugin did about it, and what
 * the checkpoint engine recorded.  Its schema is versioned
 * (RS_EVENT_SCHEMA_VERSION, field `schema_version`) and documented in
 * docs/operators.md; a field is only ever added, never renamed or retyped,
 * without bumping the version.
 *
 * Every serialiser here is pure: no I/O, no clock, no environment.  Each
 * returns a malloc'd NUL-terminated string in *out (caller frees) and
 * 0, or -errno with err filled (-EINVAL for an event that fails
 * rs_event_validate(), -ENOMEM).  Strings from the event are made valid
 * UTF-8 first (invalid bytes become U+FFFD) so that every receiver can
 * parse what we send; control characters, quotes and backslashes are
 * escaped per format.
 *
 * Thread safety: all functions are reentrant; an event must not be
 * modified while it is being serialised.
 */
#ifndef RS_EVENT_H
#define RS_EVENT_H

#include <stdint.h>

#include "err.h"
#include "requeue.h"

#define RS_EVENT_SCHEMA_VERSION 1
#define RS_EVENT_CLUSTER_MAX 64 /* bytes */

/* How the attempt ended and what the plugin did about it: the requeue
 * policy's own enums (requeue.h), so the two can never disagree. */
typedef rs_outcome_t rs_event_outcome_t;
typedef rs_action_t rs_event_action_t;
#define RS_OUTCOME_COUNT_ RS_OUTCOME_COUNT
#define RS_ACTION_COUNT_ RS_ACTION_COUNT

/*
 * One attempt.  Strings are owned by the event (malloc'd; NULL means
 * unknown and is sent as ""), freed by rs_event_free().  Optional numbers
 * use the sentinels below and are sent as JSON null.
 */
typedef struct rs_event {
	unsigned schema_version;   /* RS_EVENT_SCHEMA_VERSION, set by init */
	char *cluster;             /* required, 1..RS_EVENT_CLUSTER_MAX bytes of
	                            * UTF-8, no control characters */
	uint32_t job_id;           /* required, > 0 */
	uint32_t array_job_id;     /* 0 = not an array task */
	uint32_t array_task_id;    /* meaningful only if array_job_id != 0 */
	char *user;
	uint32_t uid;
	char *account;
	char *partition;
	char *qos;
	char *job_name;
	char *nodes;               /* node list, Slurm syntax: "n[1-3]" */
	uint32_t num_nodes;
	uint32_t num_tasks;
	uint32_t num_cpus;
	uint32_t attempt;          /* 1-based, required */
	uint32_t restart_count;    /* SLURM_RESTART_COUNT */
	rs_event_outcome_t outcome;
	int32_t exit_code;         /* exit status if the job exited, else 0 */
	int32_t signal;            /* terminating signal, else 0 */
	rs_event_action_t action;
	int64_t start_time;        /* unix seconds */
	int64_t end_time;          /* unix seconds, >= start_time */
	double duration_seconds;   /* wall time of the attempt, >= 0 */
	uint32_t checkpoints;      /* checkpoints taken in this attempt */
	int64_t last_ckpt_generation;  /* -1 = none */
	uint64_t last_ckpt_bytes;      /* valid if last_ckpt_generation >= 0 */
	double last_ckpt_seconds;      /* valid if last_ckpt_generation >= 0 */
	char *last_ckpt_reason;        /* why it was taken: "signal", "lead",
	                                * "periodic"; NULL (null) if none */
	int64_t restored_from_generation; /* -1 = fresh start */
	int has_energy;            /* 0 = energy_joules is unknown (null) */
	double energy_joules;      /* see rs_event_energy_read() */
	char *ckpt_dir;            /* checkpoint folder (alert annotation) */
} rs_event_t;

/* Zero ev, set schema_version and the "none" sentinels. */
void rs_event_init(rs_event_t *ev);

/* Free the strings of ev (may be NULL) and re-initialise it. */
void rs_event_free(rs_event_t *ev);

/* "completed", "failed", ... ; NULL for a value out of range. */
const char *rs_event_outcome_name(rs_event_outcome_t o);
const char *rs_event_action_name(rs_event_action_t a);
/* Parse the names above.  0, or -EINVAL (err names the allowed values). */
int rs_event_outcome_parse(const char *s, rs_event_outcome_t *o, rs_err_t *err);
int rs_event_action_parse(const char *s, rs_event_action_t *a, rs_err_t *err);

/* Check the required fields and ranges: cluster 1..64 bytes of UTF-8
 * without control characters, job_id > 0,
 * attempt > 0, outcome/action in range, end >= start, durations finite
 * and >= 0.  0 or -EINVAL naming the field. */
int rs_event_validate(const rs_event_t *ev, rs_err_t *err);

/* The stable event id "<cluster>:<job_id>:<attempt>", the same for every
 * re-send of the same attempt, so receivers can drop duplicates.  Returns
 * the length written (like snprintf, truncated if size is too small), or
 * -EINVAL if the event has no cluster/job/attempt. */
int rs_event_id(const rs_event_t *ev, char *buf, size_t size);

/* The event as one JSON object (webhook body, metrics_format=json). */
int rs_event_to_json(const rs_event_t *ev, char **out, rs_err_t *err);

/* One ClickHouse JSONEachRow row, ending in "\n", for
 * INSERT INTO <table> FORMAT JSONEachRow (docs/operators.md has the DDL). */
int rs_event_to_clickhouse(const rs_event_t *ev, char **out, rs_err_t *err);

/* Prometheus text exposition (version 0.0.4) for a Pushgateway: metric
 * names slurm_resilience_*, LF line ends, a final newline, no timestamps.
 * The grouping key (cluster, job_id) is NOT in the labels: it goes in
 * the URL path, see rs_event_pushgateway_path(). */
int rs_event_to_prometheus(const rs_event_t *ev, char **out, rs_err_t *err);

/* The Pushgateway URL path of the job's group,
 * "/metrics/job/slurm_resilience/cluster/<c>/job_id/<id>"; a value that
 * is empty or has a character outside [A-Za-z0-9._-] is written as
 * "<label>@base64/<url-safe base64>" as the Pushgateway requires. */
int rs_event_pushgateway_path(const rs_event_t *ev, char **out, rs_err_t *err);

/* Alertmanager API v2 body: a JSON array holding one alert with labels
 * alertname=SlurmJobRetriesExhausted, cluster, job_id, user, account,
 * partition and annotations summary, last_outcome, attempts, ckpt_dir,
 * event_id. */
int rs_event_to_alertmanager(const rs_event_t *ev, char **out, rs_err_t *err);

/* The same alert as one plain JSON object (alert_format=json):
 * {"alert":"SlurmJobRetriesExhausted", ...labels..., "annotations" fields,
 *  "event": <the rs_event_to_json object>}. */
int rs_event_to_alert_json(const rs_event_t *ev, char **out, rs_err_t *err);

/* Parse an event written by rs_event_to_json() (or by hand, for tests and
 * `slurm-resilience metrics emit`).  Unknown fields, wrong types, numbers
 * out of range are -EINVAL naming the field; a schema_version other than
 * ours is -EINVAL; an event_id that differs from rs_event_id() is
 * -EINVAL.  On success ev owns its strings (rs_event_free()); on failure
 * ev is left initialised and empty.  ev is overwritten, not freed first. */
int rs_event_from_json(const char *text, rs_event_t *ev, rs_err_t *err);

/*
 * Energy from Intel RAPL via the powercap sysfs class.
 *
 * What it measures: the sum of the "package-N" and "dram" zones of every
 * socket of the WHOLE NODE, over the interval between two samples - all
 * cores, caches, memory controllers and DRAM, whoever used them.  It is
 * not the job's own share (other jobs on a shared node are counted), and
 * it leaves out GPUs, disks, network, fans and power-supply losses.  The
 * "psys" zone is not added (it already contains the packages), nor are
 * the core/uncore sub-zones (contained in their package).  Reading
 * energy_uj needs root on kernels since 5.10 (CVE-2020-8694).
 */
#define RS_ENERGY_MAX_ZONES 16

typedef struct rs_energy_sample {
	unsigned nzones;
	struct {
		char name[64];      /* folder name, "intel-rapl:0:1" */
		uint64_t uj;        /* energy_uj */
		uint64_t max_uj;    /* max_energy_range_uj: counter wraps here */
	} zone[RS_ENERGY_MAX_ZONES];
} rs_energy_sample_t;

/* Read the counters under root (NULL = "/sys/class/powercap").
 * 0 with s filled; -ENOENT if the node has no package/dram zone (energy is
 * then unknown: leave has_energy 0); other -errno on read errors. */
int rs_event_energy_sample(const char *root, rs_energy_sample_t *s, rs_err_t *err);

/* Joules between two samples of the same node, counting one wrap-around
 * per zone (the counters wrap after max_energy_range_uj, typically
 * 262 kJ: about 20 minutes at 200 W.  An attempt longer than that needs
 * intermediate samples for an exact figure; with two samples, energy of
 * whole extra wraps is missed).  0, or -EINVAL if the samples do not have the same
 * zones. */
int rs_event_energy_joules(const rs_energy_sample_t *begin,
			   const rs_energy_sample_t *end, double *joules,
			   rs_err_t *err);

#endif
