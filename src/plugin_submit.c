/* plugin_submit.c - see include/plugin_submit.h */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin_submit.h"
#include "spec.h"

static int _scan_tokens(char **tok, int n, const char *name, char shrt,
			char *val, size_t len)
{
	size_t nl = strlen(name);
	int i;

	for (i = 0; i < n; i++) {
		const char *t = tok[i], *v = NULL;

		if (!strncmp(t, name, nl) && t[nl] == '=')
			v = t + nl + 1;
		else if (!strcmp(t, name))
			v = i + 1 < n ? tok[i + 1] : "";
		else if (shrt && t[0] == '-' && t[1] == shrt)
			v = t[2] ? t + 2 : (i + 1 < n ? tok[i + 1] : "");
		if (v) {
			snprintf(val, len, "%s", v);
			return 1;
		}
	}
	return 0;
}

int rs_submit_option(const char *name, char shrt, char *val, size_t len)
{
	char buf[65536], line[1024], *tok[512], *p, *script = NULL;
	int n = 0, found = 0;
	ssize_t got;
	FILE *f;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return 0;
	buf[got] = '\0';
	for (p = buf; p < buf + got && n < 512; p += strlen(p) + 1) {
		tok[n++] = p;
		if (p[0] != '-' && p != buf)
			script = p;
	}
	if (_scan_tokens(tok + 1, n - 1, name, shrt, val, len))
		return 1;
	if (!script || access(script, R_OK) || !(f = fopen(script, "re")))
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *save = NULL, *t;

		if (line[0] != '#' && line[0] != '\n')
			break;
		if (strncmp(line, "#SBATCH", 7))
			continue;
		n = 0;
		for (t = strtok_r(line + 7, " \t\n", &save); t && n < 64;
		     t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		found = _scan_tokens(tok, n, name, shrt, val, len);
	}
	fclose(f);
	return found;
}

uint32_t rs_submit_time_limit(void)
{
	static const char *const envs[] = { "SBATCH_TIMELIMIT",
		"SALLOC_TIMELIMIT", "SLURM_TIMELIMIT" };
	char v[64];
	uint32_t secs = 0;
	size_t i;

	if (rs_submit_option("--time", 't', v, sizeof(v)) &&
	    !rs_parse_slurm_time(v, &secs))
		return secs;
	for (i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
		if (getenv(envs[i]) && !rs_parse_slurm_time(getenv(envs[i]), &secs))
			return secs;
	return 0;
}

/* Is `name` (len bytes) a SPANK option variable of --resilience? */
static int _inherited_name(const char *name, size_t len)
{
	static const char *const pre[] = { "_SLURM_SPANK_OPTION_",
		"SPANK__SLURM_SPANK_OPTION_",
		"SLURM_SPANK__SLURM_SPANK_OPTION_" };
	static const char opt[] = "_resilience";
	size_t i, ol = sizeof(opt) - 1;

	for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		size_t pl = strlen(pre[i]);

		if (len >= pl + ol && !strncmp(name, pre[i], pl) &&
		    !strncmp(name + len - ol, opt, ol))
			return 1;
	}
	return 0;
}

int rs_submit_forget_inherited(void)
{
	extern char **environ;
	char name[256];
	int n = 0, again = 1;

	/* Outside a job, SLURM_SPANK__... is the user's own (Slurm's
	 * documented way to give a SPANK option from the environment). */
	if (!getenv("SLURM_JOB_ID"))
		return 0;
	/* unsetenv() changes environ: start over after each removal. */
	while (again) {
		char **e;

		again = 0;
		for (e = environ; e && *e; e++) {
			const char *eq = strchr(*e, '=');
			size_t len = eq ? (size_t)(eq - *e) : 0;

			if (!eq || len >= sizeof(name) ||
			    !_inherited_name(*e, len))
				continue;
			memcpy(name, *e, len);
			name[len] = '\0';
			if (unsetenv(name) == 0) {
				n++;
				again = 1;
				break;
			}
		}
	}
	return n;
}
