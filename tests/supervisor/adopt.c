/*
 * adopt.c - test launcher doing what the plugin does on Slurm 22.05 in
 * slurm_spank_task_init: fork; the child becomes the application, the
 * parent execs the supervisor with --pid CHILD.
 *
 *   adopt [--child-delay S] [--parent-delay S] SUPERVISOR [OPTS...] -- PROG [ARGS...]
 *
 * The parent blocks every signal before exec (the mask survives exec), so a
 * signal arriving before the supervisor has its signalfd is kept pending,
 * not acted on by default; the child gets the original mask back.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	double child_delay = 0, parent_delay = 0;
	sigset_t all, orig;
	char pidbuf[32];
	char **sargv;
	int i = 1, dash, n;
	pid_t pid;

	while (i + 1 < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
		if (strcmp(argv[i], "--child-delay") == 0)
			child_delay = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--parent-delay") == 0)
			parent_delay = atof(argv[i + 1]);
		else
			break;
		i += 2;
	}
	for (dash = i; dash < argc && strcmp(argv[dash], "--") != 0; dash++)
		;
	if (i >= argc || dash + 1 >= argc) {
		fprintf(stderr, "usage: adopt [--child-delay S] [--parent-delay S] SUPERVISOR [OPTS...] -- PROG [ARGS...]\n");
		return 2;
	}
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &orig);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &orig, NULL);
		if (child_delay > 0)
			usleep((useconds_t)(child_delay * 1e6));
		execvp(argv[dash + 1], &argv[dash + 1]);
		perror("execvp");
		_exit(127);
	}
	if (parent_delay > 0)
		usleep((useconds_t)(parent_delay * 1e6));
	/* SUPERVISOR OPTS... --pid CHILD */
	n = dash - i;
	sargv = calloc((size_t)n + 3, sizeof(*sargv));
	if (!sargv)
		return 1;
	memcpy(sargv, &argv[i], (size_t)n * sizeof(*sargv));
	snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
	sargv[n] = "--pid";
	sargv[n + 1] = pidbuf;
	execv(sargv[0], sargv);
	perror("execv supervisor");
	return 127;
}
