/*
 * cli.c - slurm-resilience: the command-line tool for users, operators
 * and admins.  Dispatches to one function per subcommand (include/cli.h).
 * Messages are the same ones the plugin prints, from the same modules.
 */
#include <stdio.h>
#include <string.h>

#include <slurm/slurm.h>

#include "cli.h"
#include "policy.h"
#include "spec.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} cmds[] = {
	{ "check", rs_cli_check,
	  "check SPEC            validate a --resilience SPEC, print it "
	  "normalised and explained" },
	{ "config", rs_cli_config,
	  "config ARG...         validate plugstack.conf arguments for "
	  "resilience.so" },
	{ "status", rs_cli_status,
	  "status JOBID|CKPT_DIR the attempt history of a job" },
	{ "ckpt", rs_cli_ckpt,
	  "ckpt save|restore|list|verify|ready ...  checkpoint folders" },
	{ "flush", rs_cli_flush,
	  "flush [ARGS]          deliver spooled metrics and alerts" },
	{ "metrics", rs_cli_metrics,
	  "metrics emit|list|check ...  metrics spool tools" },
	/* Started by resilience.so only (cli_poll.c): not in the usage. */
	{ "poll-end", rs_cli_poll_end, NULL },
	/* Started by resilience.so and flush (cli_apply.c): not in the usage. */
	{ "apply", rs_cli_apply, NULL },
};

void rs_cli_slurm_init(void)
{
	static int done;

	/* Since 23.11 every libslurm call needs its plugins (auth, hash)
	 * loaded first ("No hash plugins loaded"); 20.11 and later have
	 * slurm_init.  NULL: SLURM_CONF or the built-in path. */
	if (!done)
		slurm_init(NULL);
	done = 1;
}

static void _usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: slurm-resilience COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (cmds[i].usage)
			fprintf(f, "  %s\n", cmds[i].usage);
	fprintf(f, "\n  --help                show this text\n"
		   "  --version             print the version\n\n"
		   "Exit status: 0 success, 1 failure or invalid input, "
		   "2 usage error.\n");
}

int rs_cli_check(int argc, char **argv)
{
	char norm[RS_SPEC_MAX + 1], explain[4096];
	rs_spec_t spec;
	rs_err_t err;

	if (argc != 2) {
		fprintf(stderr, "usage: slurm-resilience check SPEC\n");
		return 2;
	}
	if (rs_spec_parse(argv[1], &spec, &err)) {
		fprintf(stderr, "slurm-resilience: invalid SPEC: %s\n", err.msg);
		return 1;
	}
	if (spec.help) {
		fputs(rs_spec_help(), stdout);
		return 0;
	}
	if (rs_spec_format(&spec, norm, sizeof(norm)) ||
	    rs_spec_explain(&spec, explain, sizeof(explain))) {
		fprintf(stderr, "slurm-resilience: SPEC too long to print\n");
		return 1;
	}
	printf("%s\n\n%s", norm, explain);
	return 0;
}

int rs_cli_config(int argc, char **argv)
{
	static const char *const fmts[] = { "json", "clickhouse", "prometheus" };
	static const char *const afmts[] = { "alertmanager", "json" };
	rs_policy_t pol;
	rs_err_t err;
	unsigned i;
	int rc = 0;

	rs_policy_defaults(&pol);
	if (rs_policy_parse(argc - 1, argv + 1, &pol, &err)) {
		fprintf(stderr, "slurm-resilience: plugstack arguments: %s\n",
			err.msg);
		rc = 1;
		goto out;
	}
	/* As root (where slurmstepd runs) this also reads the secret files,
	 * exactly as the plugin will. */
	if ((pol.metrics.url || pol.metrics.alert_url) &&
	    rs_metrics_conf_check(&pol.metrics, &err)) {
		fprintf(stderr, "slurm-resilience: plugstack arguments: %s\n",
			err.msg);
		rc = 1;
		goto out;
	}
	printf("ckpt_roots   = ");
	for (i = 0; i < pol.nroots; i++)
		printf("%s%s", i ? ":" : "", pol.roots[i]);
	printf("%s\n", pol.nroots ? "" : "(any folder)");
	printf("max_retries  = %lld\nmax_requeues = %lld\nmax_backoff  = %lld s\n"
	       "min_every    = %u s\ndefault      = %s\nstate_dir    = %s\n"
	       "file_timeout = %u ms\nrestore_timeout = %u ms\n"
	       "metrics_url  = %s (%s)\nalert_url    = %s (%s)\n"
	       "spool_dir    = %s\ntimeout_ms   = %ld\n(-1 means no cap)\n",
	       (long long)pol.max_retries, (long long)pol.max_requeues,
	       (long long)pol.max_backoff, pol.min_every,
	       pol.default_spec[0] ? pol.default_spec : "(none)",
	       pol.state_dir[0] ? pol.state_dir : "(none)",
	       pol.file_timeout_ms, pol.restore_timeout_ms,
	       pol.metrics.url ? pol.metrics.url : "(none)",
	       fmts[pol.metrics.format],
	       pol.metrics.alert_url ? pol.metrics.alert_url : "(none)",
	       afmts[pol.metrics.alert_format],
	       pol.metrics.spool_dir ? pol.metrics.spool_dir : "(none)",
	       pol.metrics.timeout_ms);
out:
	rs_policy_free(&pol);
	return rc;
}

int main(int argc, char **argv)
{
	size_t i;

	if (argc < 2) {
		_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("slurm-resilience %s\n", RS_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "slurm-resilience: unknown command '%s'\n", argv[1]);
	_usage(stderr);
	return 2;
}
