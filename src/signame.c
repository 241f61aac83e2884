/* signame.c - see include/signame.h */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signame.h"

static const struct { const char *name; int sig; } sigtab[] = {
	{ "HUP", SIGHUP },   { "INT", SIGINT },   { "QUIT", SIGQUIT },
	{ "ILL", SIGILL },   { "TRAP", SIGTRAP }, { "ABRT", SIGABRT },
	{ "IOT", SIGIOT },   { "BUS", SIGBUS },   { "FPE", SIGFPE },
	{ "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },
	{ "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
	{ "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD },
	{ "CONT", SIGCONT }, { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG },
	{ "XCPU", SIGXCPU }, { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM },
	{ "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
	{ "POLL", SIGPOLL }, { "PWR", SIGPWR },   { "SYS", SIGSYS },
};

/* A whole decimal number no larger than max, or -1. */
static long _num(const char *s, long max)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || v > max ? -1 : v;
}

int rs_signame_parse(const char *s, int *sig)
{
	const char *name;
	long v = -1;
	size_t i;

	if (!s || !*s)
		return -EINVAL;
	if (isdigit((unsigned char)s[0])) {
		v = _num(s, SIGRTMAX);
	} else {
		name = strncasecmp(s, "SIG", 3) == 0 ? s + 3 : s;
		if (!strncasecmp(name, "RTMIN", 5) || !strncasecmp(name, "RTMAX", 5)) {
			int min = toupper((unsigned char)name[4]) == 'N';
			const char *off = name + 5;
			long k = 0;

			if (*off && (off[0] != (min ? '+' : '-') ||
				     (k = _num(off + 1, 64)) < 0))
				return -EINVAL;
			v = min ? SIGRTMIN + k : SIGRTMAX - k;
		} else {
			for (i = 0; i < sizeof(sigtab) / sizeof(sigtab[0]); i++)
				if (!strcasecmp(name, sigtab[i].name))
					v = sigtab[i].sig;
		}
	}
	if (v < 1 || v > SIGRTMAX || (v > 31 && v < SIGRTMIN))
		return -EINVAL;
	*sig = (int)v;
	return 0;
}

const char *rs_signame(int sig)
{
	size_t i;

	for (i = 0; i < sizeof(sigtab) / sizeof(sigtab[0]); i++)
		if (sigtab[i].sig == sig)
			return sigtab[i].name;
	return NULL;
}
