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
#include "metrics.h"
#include "spec.h"

#define RS_MAX_ROOTS 16

#define RS_FILE_TIMEOUT_DEFAULT_MS    20000u
#define RS_FILE_TIMEOUT_MAX_MS        600000u    /* 10m */
#define RS_RESTORE_TIMEOUT_DEFAULT_MS 120000u
#define RS_RESTORE_TIMEOUT_MAX_MS     3600000u   /* 1h */

typedef struct rs_policy {
	char roots[RS_MAX_ROOTS][RS_PATH_MAX + 1]; /* normalised ckpt_roots */
	unsigned nroots;                 /* 0 = any folder allowed */
	int64_t max_retries;             /* -1 = no cap */
	int64_t max_requeues;            /* -1 = no cap */
	int64_t max_backoff;             /* seconds, -1 = no cap */
	uint32_t min_every;              /* seconds, 0 = no minimum */
	char default_spec[RS_SPEC_MAX + 1]; /* "" = no site default */
	char state_dir[RS_PATH_MAX + 1]; /* ledger without ckpt= */
	/* file_timeout=DURATION: bound on each piece of work on user paths
	 * done for slurmstepd (a folder on a hung file server must not hang
	 * the step); 1s..10m, default 20s. */
	unsigned file_timeout_ms;
	/* restore_timeout=DURATION: bound on a whole restore; 1s..1h,
	 * default 2m. */
	unsigned restore_timeout_ms;

	/* Metrics and alerts: validated by the metrics module (metrics.h),
	 * the one place those keys are checked.  Owned: rs_policy_free(). */
	rs_metrics_conf_t metrics;
} rs_policy_t;

/* Defaults: no roots, no caps, no default, no state_dir, file_timeout
 * 20s, restore_timeout 2m, metrics as rs_metrics_conf_init(). */
void rs_policy_defaults(rs_policy_t *pol);

/* Free what the policy owns (the metrics strings); pol can be reused
 * after rs_policy_defaults(). */
void rs_policy_free(rs_policy_t *pol);

/* Parse plugstack arguments (frees and re-initialises pol first: call
 * rs_policy_defaults() once before the first call).  The metrics secret
 * files are not read here (sbatch runs as the user and cannot): the
 * plugin checks them with rs_metrics_conf_check() where it runs as root.
 * On error, err names the argument
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

/* Check an expanded, absolute checkpoint path against ckpt_roots by where
 * it really goes (rs_path_resolve: symlinks followed, ".." applied after
 * them, never lexically first).  Run as the job's user on the node.  0,
 * -EINVAL if not absolute, -EACCES if it cannot be resolved, or -EPERM
 * naming the roots. */
int rs_policy_check_ckpt_path(const rs_policy_t *pol, const char *path,
			      rs_err_t *err);

/* Comma-separated valid argument names, for messages. */
const char *rs_policy_keys(void);

#endif
