/*
 * policy.h - the site policy: arguments after the plugin's path in
 * plugstack.conf, e.g.
 *
 *   optional /usr/lib/slurm/resilience.so ckpt_roots=/lustre:/scratch \
 *            max_retries=5 metrics_url=http://ch:8123 metrics_format=clickhouse
 *
 * Pure: parsing and checking a user's SPEC against it need no Slurm.
 * Return convention: 0 / -errno with err filled (naming the argument).
 */
#ifndef RS_POLICY_H
#define RS_POLICY_H

#include <stdint.h>

#include "err.h"
#include "spec.h"

#define RS_MAX_ROOTS 16

typedef struct rs_policy {
	char roots[RS_MAX_ROOTS][RS_PATH_MAX + 1]; /* normalised ckpt_roots */
	unsigned nroots;                 /* 0 = any folder allowed */
	int64_t max_retries;             /* -1 = no cap */
	int64_t max_requeues;            /* -1 = no cap */
	int64_t max_backoff;             /* seconds, -1 = no cap */
	uint32_t min_every;              /* seconds, 0 = no minimum */
	char default_spec[RS_SPEC_MAX + 1]; /* "" = no site default */
	char state_dir[RS_PATH_MAX + 1]; /* ledger without ckpt= */

	/* Metrics and alerts (used by the metrics module). */
	char metrics_url[1024];
	char metrics_format[16];         /* json | clickhouse | prometheus */
	char clickhouse_table[256];
	char clickhouse_credentials[RS_PATH_MAX + 1];
	char token_file[RS_PATH_MAX + 1];
	char spool_dir[RS_PATH_MAX + 1];
	uint32_t timeout_ms;
	char alert_url[1024];
	char alert_format[16];           /* alertmanager | json */
	char cluster[128];
} rs_policy_t;

/* Defaults: no roots, no caps, no default, no metrics, timeout 2000 ms,
 * format json, alert format alertmanager, spool
 * /var/spool/slurm-resilience, cluster from the caller. */
void rs_policy_defaults(rs_policy_t *pol);

/* Parse plugstack arguments.  On error, err names the argument
 * ("max_retries=x: 'x' is not a whole number") and pol keeps the values
 * parsed so far; callers treat the whole policy as broken. */
int rs_policy_parse(int argc, char **argv, rs_policy_t *pol, rs_err_t *err);

/*
 * Check a user's SPEC against the site caps at submit time (before the job
 * id is known): retries, backoff, every, and the static prefix of ckpt=
 * (lexically normalised) against ckpt_roots.  -EPERM with the cap named.
 */
int rs_policy_check_spec(const rs_policy_t *pol, const rs_spec_t *spec,
			 rs_err_t *err);

/* Check an expanded, absolute checkpoint path against ckpt_roots after
 * lexical normalisation and symlink resolution (rs_path_resolve).  Run as
 * the job's user on the node.  0, or -EPERM naming the roots. */
int rs_policy_check_ckpt_path(const rs_policy_t *pol, const char *path,
			      rs_err_t *err);

/* Comma-separated valid argument names, for messages. */
const char *rs_policy_keys(void);

#endif
