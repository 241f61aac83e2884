/*
 * cli.c - slurm-resilience: the command-line tool for users, operators
 * and admins.  Dispatches to one function per subcommand (include/cli.h).
 * Messages are the same ones the plugin prints, from the same modules.
 */
#include <stdio.h>
#include <string.h>

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
};

static void _usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: slurm-resilience COMMAND [ARGS]\n\ncommands:\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
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
	rs_policy_t pol;
	rs_err_t err;
	unsigned i;

	if (rs_policy_parse(argc - 1, argv + 1, &pol, &err)) {
		fprintf(stderr, "slurm-resilience: plugstack arguments: %s\n",
			err.msg);
		return 1;
	}
	printf("ckpt_roots   = ");
	for (i = 0; i < pol.nroots; i++)
		printf("%s%s", i ? ":" : "", pol.roots[i]);
	printf("%s\n", pol.nroots ? "" : "(any folder)");
	printf("max_retries  = %lld\nmax_requeues = %lld\nmax_backoff  = %lld s\n"
	       "min_every    = %u s\ndefault      = %s\nstate_dir    = %s\n"
	       "metrics_url  = %s (%s)\nalert_url    = %s (%s)\n"
	       "spool_dir    = %s\ntimeout_ms   = %u\n",
	       (long long)pol.max_retries, (long long)pol.max_requeues,
	       (long long)pol.max_backoff, pol.min_every,
	       pol.default_spec[0] ? pol.default_spec : "(none)",
	       pol.state_dir[0] ? pol.state_dir : "(none)",
	       pol.metrics_url[0] ? pol.metrics_url : "(none)",
	       pol.metrics_format, pol.alert_url[0] ? pol.alert_url : "(none)",
	       pol.alert_format, pol.spool_dir, pol.timeout_ms);
	printf("(-1 means no cap)\n");
	return 0;
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
