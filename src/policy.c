/*
 * policy.c - site policy from plugstack.conf arguments.  See policy.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "pattern.h"
#include "policy.h"

static const char keys[] =
	"ckpt_roots, max_retries, max_requeues, max_backoff, min_every, "
	"default, state_dir, metrics_url, metrics_format, clickhouse_table, "
	"clickhouse_credentials, token_file, spool_dir, timeout_ms, alert_url, "
	"alert_format, cluster, spool_max_entries, spool_max_bytes, "
	"flush_budget_ms, file_timeout, restore_timeout";

static const char *const key_names[] = {
	"ckpt_roots", "max_retries", "max_requeues", "max_backoff",
	"min_every", "default", "state_dir", "metrics_url", "metrics_format",
	"clickhouse_table", "clickhouse_credentials", "token_file",
	"spool_dir", "timeout_ms", "alert_url", "alert_format", "cluster",
	"spool_max_entries", "spool_max_bytes", "flush_budget_ms",
	"file_timeout", "restore_timeout",
};

/* Index of a known key (the caller has validated k through _set). */
static unsigned _key_index(const char *k)
{
	unsigned i;

	for (i = 0; i < sizeof(key_names) / sizeof(key_names[0]); i++)
		if (!strcmp(k, key_names[i]))
			return i;
	return 63;
}

const char *rs_policy_keys(void)
{
	return keys;
}

void rs_policy_defaults(rs_policy_t *pol)
{
	memset(pol, 0, sizeof(*pol));
	pol->max_retries = -1;
	pol->max_requeues = -1;
	pol->max_backoff = -1;
	pol->file_timeout_ms = RS_FILE_TIMEOUT_DEFAULT_MS;
	pol->restore_timeout_ms = RS_RESTORE_TIMEOUT_DEFAULT_MS;
	rs_metrics_conf_init(&pol->metrics);
}

void rs_policy_free(rs_policy_t *pol)
{
	rs_metrics_conf_free(&pol->metrics);
}

static int _copy(char *dst, size_t len, const char *v, const char *key,
		 rs_err_t *err)
{
	if (strlen(v) >= len)
		return rs_err_set(err, ENAMETOOLONG, "%s: value too long", key);
	snprintf(dst, len, "%s", v);
	return 0;
}

static int _abs_path(char *dst, size_t len, const char *v, const char *key,
		     rs_err_t *err)
{
	rs_err_t e;

	if (rs_path_normalize(v, dst, len, &e))
		return rs_err_set(err, EINVAL, "%s=%s: %s", key, v, e.msg);
	return 0;
}

static int _roots(rs_policy_t *pol, const char *v, rs_err_t *err)
{
	char buf[RS_MAX_ROOTS * (RS_PATH_MAX + 1)];
	char *save = NULL, *tok;

	if (strlen(v) >= sizeof(buf))
		return rs_err_set(err, ENAMETOOLONG, "ckpt_roots: too long");
	snprintf(buf, sizeof(buf), "%s", v);
	pol->nroots = 0;
	if (buf[0] == ':' || buf[strlen(buf) - 1] == ':' || strstr(buf, "::"))
		return rs_err_set(err, EINVAL, "ckpt_roots=%s: empty folder", v);
	for (tok = strtok_r(buf, ":", &save); tok;
	     tok = strtok_r(NULL, ":", &save)) {
		rs_err_t e;

		if (pol->nroots == RS_MAX_ROOTS)
			return rs_err_set(err, E2BIG,
					  "ckpt_roots: at most %d folders",
					  RS_MAX_ROOTS);
		if (rs_path_normalize(tok, pol->roots[pol->nroots],
				      sizeof(pol->roots[0]), &e))
			return rs_err_set(err, EINVAL, "ckpt_roots: %s", e.msg);
		if (strchr(tok, '%'))
			return rs_err_set(err, EINVAL,
					  "ckpt_roots: patterns are not "
					  "allowed in '%s'", tok);
		pol->nroots++;
	}
	return 0;
}

static int _cap(int64_t *dst, const char *v, const char *key, int duration,
		rs_err_t *err)
{
	rs_err_t e;

	if (duration) {
		uint32_t d;

		if (rs_parse_duration(v, &d, &e))
			return rs_err_set(err, EINVAL, "%s=%s: %s", key, v,
					  e.msg);
		*dst = d;
	} else {
		uint64_t n;

		if (rs_parse_uint(v, 0, 1000000, &n, &e))
			return rs_err_set(err, EINVAL, "%s=%s: %s", key, v,
					  e.msg);
		*dst = (int64_t)n;
	}
	return 0;
}

/* A DURATION (as min_every) bounded to [min_s, max_s], stored in ms. */
static int _timeout(unsigned *dst_ms, const char *v, const char *key,
		    uint32_t min_s, uint32_t max_s, rs_err_t *err)
{
	char lo[32], hi[32];
	uint32_t d;
	rs_err_t e;

	if (rs_parse_duration(v, &d, &e))
		return rs_err_set(err, EINVAL, "%s=%s: %s", key, v, e.msg);
	if (d < min_s || d > max_s) {
		rs_format_duration(min_s, lo, sizeof(lo));
		rs_format_duration(max_s, hi, sizeof(hi));
		return rs_err_set(err, ERANGE, "%s=%s: must be from %s to %s",
				  key, v, lo, hi);
	}
	*dst_ms = (unsigned)d * 1000u;
	return 0;
}

static int _set(rs_policy_t *pol, const char *k, const char *v, rs_err_t *err)
{
	rs_err_t e;

	if (!strcmp(k, "ckpt_roots"))
		return _roots(pol, v, err);
	if (!strcmp(k, "max_retries"))
		return _cap(&pol->max_retries, v, k, 0, err);
	if (!strcmp(k, "max_requeues"))
		return _cap(&pol->max_requeues, v, k, 0, err);
	if (!strcmp(k, "max_backoff"))
		return _cap(&pol->max_backoff, v, k, 1, err);
	if (!strcmp(k, "min_every")) {
		if (rs_parse_duration(v, &pol->min_every, &e))
			return rs_err_set(err, EINVAL, "%s=%s: %s", k, v, e.msg);
		return 0;
	}
	if (!strcmp(k, "default")) {
		rs_spec_t spec;

		if (rs_spec_parse(v, &spec, &e))
			return rs_err_set(err, EINVAL, "default=%s: %s", v,
					  e.msg);
		if (spec.help)
			return rs_err_set(err, EINVAL,
					  "default: 'help' is not a SPEC");
		return _copy(pol->default_spec, sizeof(pol->default_spec), v,
			     k, err);
	}
	if (!strcmp(k, "file_timeout"))
		return _timeout(&pol->file_timeout_ms, v, k, 1,
				RS_FILE_TIMEOUT_MAX_MS / 1000, err);
	if (!strcmp(k, "restore_timeout"))
		return _timeout(&pol->restore_timeout_ms, v, k, 1,
				RS_RESTORE_TIMEOUT_MAX_MS / 1000, err);
	if (!strcmp(k, "state_dir"))
		return _abs_path(pol->state_dir, sizeof(pol->state_dir), v, k,
				 err);
	if (rs_metrics_conf_is_key(k))
		return rs_metrics_conf_set(&pol->metrics, k, v, err);
	return rs_err_set(err, ENOENT, "unknown argument '%s'; valid: %s", k,
			  keys);
}

int rs_policy_parse(int argc, char **argv, rs_policy_t *pol, rs_err_t *err)
{
	unsigned long seen = 0;
	int i;

	rs_policy_free(pol);
	rs_policy_defaults(pol);
	for (i = 0; i < argc; i++) {
		char k[64];
		const char *eq = argv[i] ? strchr(argv[i], '=') : NULL;
		size_t kl;
		int rc;

		if (!eq)
			return rs_err_set(err, EINVAL,
					  "argument '%s' is not key=value; valid "
					  "keys: %s", argv[i] ? argv[i] : "",
					  keys);
		kl = (size_t)(eq - argv[i]);
		if (!kl || kl >= sizeof(k))
			return rs_err_set(err, EINVAL,
					  "argument '%s': bad key; valid keys: "
					  "%s", argv[i], keys);
		memcpy(k, argv[i], kl);
		k[kl] = '\0';
		if (!eq[1])
			return rs_err_set(err, EINVAL, "%s: empty value", k);
		rc = _set(pol, k, eq + 1, err);
		if (rc)
			return rc;
		/* Duplicates are an admin's typo, not an override. */
		if (seen & (1ul << _key_index(k)))
			return rs_err_set(err, EINVAL, "%s: given twice", k);
		seen |= 1ul << _key_index(k);
	}
	/* The site default must itself respect the site caps. */
	if (pol->default_spec[0]) {
		rs_spec_t spec;
		rs_err_t e;

		rs_spec_parse(pol->default_spec, &spec, NULL);
		if (rs_policy_check_spec(pol, &spec, &e))
			return rs_err_set(err, EINVAL, "default=%s: %s",
					  pol->default_spec, e.msg);
	}
	return 0;
}

static void _roots_list(const rs_policy_t *pol, char *buf, size_t len)
{
	size_t n = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < pol->nroots && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ":" : "",
				      pol->roots[i]);
}

static int _under_roots(const rs_policy_t *pol, const char *norm)
{
	unsigned i;

	for (i = 0; i < pol->nroots; i++)
		if (rs_path_is_under(norm, pol->roots[i]) &&
		    strcmp(norm, pol->roots[i]))
			return 1;
	return 0;
}

int rs_policy_check_spec(const rs_policy_t *pol, const rs_spec_t *spec,
			 rs_err_t *err)
{
	if (spec->off)
		return 0;
	if (pol->max_retries >= 0 && spec->retries > pol->max_retries)
		return rs_err_set(err, EPERM,
				  "retries=%u is over the site cap "
				  "max_retries=%lld", spec->retries,
				  (long long)pol->max_retries);
	if (pol->max_backoff >= 0 && spec->backoff > pol->max_backoff) {
		char b[32];

		rs_format_duration((uint32_t)pol->max_backoff, b, sizeof(b));
		return rs_err_set(err, EPERM,
				  "backoff is over the site cap max_backoff=%s",
				  b);
	}
	if (pol->min_every && spec->every && spec->every < pol->min_every) {
		char b[32];

		rs_format_duration(pol->min_every, b, sizeof(b));
		return rs_err_set(err, EPERM,
				  "every is under the site minimum "
				  "min_every=%s", b);
	}
	if (spec->ckpt[0] && pol->nroots) {
		char prefix[RS_PATH_MAX + 1], norm[RS_PATH_MAX + 1];
		char list[RS_MAX_ROOTS * (RS_PATH_MAX + 1)];
		size_t pl = rs_pattern_static_prefix(spec->ckpt);

		/* Before the job id is known, check the folder the patterns
		 * will live in: everything up to the last '/' before the
		 * first pattern.  Pattern values cannot contain '/' or be
		 * "..", so they cannot climb out of it; a $VARIABLE's value
		 * can, and is judged again on the node once expanded. */
		memcpy(prefix, spec->ckpt, pl);
		prefix[pl] = '\0';
		if (pl < strlen(spec->ckpt)) {
			char *slash = strrchr(prefix, '/');

			/* It starts with a $VARIABLE of the job: only the node
			 * knows where it goes (rs_policy_check_ckpt_path). */
			if (!slash)
				return 0;
			slash[1] = '\0';
			/* A pattern component below the root counts as
			 * strictly inside it: add a placeholder. */
			strncat(prefix, "x", sizeof(prefix) - strlen(prefix) - 1);
		}
		_roots_list(pol, list, sizeof(list));
		if (rs_path_normalize(prefix, norm, sizeof(norm), NULL) ||
		    !_under_roots(pol, norm))
			return rs_err_set(err, EPERM,
					  "ckpt=%s is not under the site's "
					  "checkpoint roots ckpt_roots=%s",
					  spec->ckpt, list);
	}
	return 0;
}

int rs_policy_check_ckpt_path(const rs_policy_t *pol, const char *path,
			      rs_err_t *err)
{
	char resolved[PATH_MAX];
	char list[RS_MAX_ROOTS * (RS_PATH_MAX + 1)];
	rs_err_t e;
	unsigned i;

	if (!pol->nroots)
		return 0;
	_roots_list(pol, list, sizeof(list));
	if (!path || path[0] != '/')
		return rs_err_set(err, EINVAL, "ckpt=%s: not an absolute path",
				  path ? path : "(null)");
	/* Judged only by where it really goes: a lexical look first would
	 * let ROOT/link/../x pass as ROOT/x (issue #11). */
	if (rs_path_resolve(path, resolved, sizeof(resolved), &e))
		return rs_err_set(err, EACCES, "ckpt=%s: %s", path, e.msg);
	/* The roots themselves may be symlinks (e.g. /scratch ->
	 * /lustre/scratch): compare against their resolved forms too. */
	for (i = 0; i < pol->nroots; i++) {
		char rr[PATH_MAX];

		if (rs_path_is_under(resolved, pol->roots[i]) &&
		    strcmp(resolved, pol->roots[i]))
			return 0;
		if (!rs_path_resolve(pol->roots[i], rr, sizeof(rr), NULL) &&
		    rs_path_is_under(resolved, rr) && strcmp(resolved, rr))
			return 0;
	}
	return rs_err_set(err, EPERM,
			  "ckpt=%s resolves to %s, which is not under the "
			  "site's checkpoint roots ckpt_roots=%s", path,
			  resolved, list);
}
