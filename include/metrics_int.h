/*
 * metrics_int.h - what metrics.c (config, spool, submit: no libcurl) and
 * metrics_flush.c (delivery: libcurl) share.  Internal to the module.
 */
#ifndef RS_METRICS_INT_H
#define RS_METRICS_INT_H

#include "metrics.h"
#include "spool.h"

#define TMP_MAX_AGE_S 3600 /* a .tmp- file older than this is a crash's */
#define MIN_REQUEST_MS 50  /* below this much budget, do not start a send */

/* Pass one message to conf->log, if set. */
void rs_metrics_log(const rs_metrics_conf_t *conf, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Open the configured spool (default folder if unset), with its bounds. */
int rs_metrics_open_spool(const rs_metrics_conf_t *conf, int create, rs_spool_t **sp,
			  rs_err_t *err);

/* "json", "clickhouse", "prometheus". */
const char *rs_metrics_format_name(rs_metrics_format_t f);

#endif
