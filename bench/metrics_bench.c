/*
 * metrics_bench.c - time rs_metrics_submit(), i.e. what the end of a job
 * waits for because of metrics, against a given receiver.  Built and run
 * by bench/metrics.sh.
 *
 *   metrics_bench NAME URL|- ITERATIONS SPACING_MS SPOOL_DIR [key=value...]
 *
 * URL "-" means metrics off (the baseline).  NAME "spool_only" times
 * rs_metrics_spool_event() alone (no background sender: the cost of the
 * durable write without the fork).  Prints one line:
 *   NAME n=N median_ms=X p95_ms=Y max_ms=Z spooled=S
 * then waits for the background senders it started to finish (their
 * budget) so the next scenario starts quiet.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "spool.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	rs_metrics_conf_t conf;
	rs_event_t ev;
	rs_err_t err;
	double *t;
	int n, spacing;

	if (argc < 6) {
		fprintf(stderr, "usage: %s NAME URL|- ITERATIONS SPACING_MS SPOOL_DIR [k=v...]\n",
			argv[0]);
		return 2;
	}
	n = atoi(argv[3]);
	spacing = atoi(argv[4]);
	if (n < 1 || spacing < 0)
		return 2;
	t = calloc((size_t)n, sizeof(*t));
	rs_metrics_conf_init(&conf);
	if ((strcmp(argv[2], "-") && rs_metrics_conf_set(&conf, "metrics_url", argv[2], &err)) ||
	    rs_metrics_conf_set(&conf, "spool_dir", argv[5], &err)) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	for (int i = 6; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq)
			return 2;
		*eq = '\0';
		if (rs_metrics_conf_set(&conf, argv[i], eq + 1, &err)) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
	}
	rs_event_init(&ev);
	ev.cluster = strdup("bench");
	ev.user = strdup("alice");
	ev.account = strdup("physics");
	ev.partition = strdup("batch");
	ev.qos = strdup("normal");
	ev.job_name = strdup("benchmark job");
	ev.nodes = strdup("n[1-4]");
	ev.num_nodes = 4;
	ev.num_tasks = 64;
	ev.num_cpus = 64;
	ev.outcome = RS_OUTCOME_COMPLETED;
	ev.action = RS_ACTION_COMPLETED;
	ev.start_time = time(NULL) - 3600;
	ev.end_time = time(NULL);
	ev.duration_seconds = 3600;
	ev.checkpoints = 3;
	ev.last_ckpt_generation = 12;
	ev.last_ckpt_bytes = 1 << 30;
	ev.last_ckpt_seconds = 4.5;
	ev.ckpt_dir = strdup("/scratch/alice/ckpt");
	for (int i = 0; i < n; i++) {
		double t0;

		ev.job_id = (uint32_t)(1000 + i);
		ev.attempt = 1;
		t0 = now_ms();
		if ((strcmp(argv[1], "spool_only") == 0 ? rs_metrics_spool_event(&conf, &ev, 0, &err)
							 : rs_metrics_submit(&conf, &ev, 0, &err))) {
			fprintf(stderr, "%s: submit: %s\n", argv[1], err.msg);
			return 1;
		}
		t[i] = now_ms() - t0;
		if (spacing)
			usleep((useconds_t)spacing * 1000);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp);
	{
		rs_spool_t *sp = NULL;
		size_t left = 0;
		uint64_t bytes = 0;

		if (rs_spool_open(argv[5], NULL, 0, &sp, &err) == 0) {
			rs_spool_usage(sp, &left, &bytes, &err);
			rs_spool_close(sp);
		}
		printf("%s n=%d median_ms=%.3f p95_ms=%.3f max_ms=%.3f spooled_now=%zu\n", argv[1], n,
		       t[n / 2], t[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1], t[n - 1], left);
	}
	fflush(stdout);
	/* let the detached senders finish within their budget */
	if (conf.url && strcmp(argv[1], "spool_only") != 0)
		usleep((useconds_t)(conf.budget_ms + 2500) * 1000);
	rs_event_free(&ev);
	rs_metrics_conf_free(&conf);
	free(t);
	return 0;
}
