/*
 * cli_status.c - `slurm-resilience status JOBID|CKPT_DIR`: the attempt
 * history a person reads instead of logs.
 *
 * With a folder: its manifest's ledger.  With a job id: Slurm's view
 * (state, restarts, AdminComment) and the ledger in the site's state_dir
 * (found in plugstack.conf, or given with --state-dir).  A job whose
 * ledger lives in its checkpoint folder: pass that folder.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "cli.h"
#include "ledger.h"
#include "manifest.h"
#include "spec.h"
#include "text.h"

static int _print_ledger(const char *dir, int quiet_missing)
{
	json_object *root = NULL;
	struct stat st;
	rs_err_t err;
	char *table;

	if (stat(dir, &st) < 0) {
		if (!quiet_missing)
			fprintf(stderr, "slurm-resilience: status %s: %s\n", dir,
				strerror(errno));
		return 1;
	}
	if (rs_manifest_read(dir, &root, &err)) {
		char msg[2 * RS_ERR_MAX];

		fprintf(stderr, "slurm-resilience: status: %s\n",
			rs_text_escape_str(msg, sizeof(msg), err.msg));
		return 1;
	}
	table = rs_ledger_table(root);
	/* rs_ledger_table escapes what comes from the ledger. */
	printf("attempt history (%s/%s):\n%s", dir, RS_MANIFEST_NAME,
	       table ? table : "");
	free(table);
	json_object_put(root);
	return 0;
}

/* state_dir= of the resilience.so line of plugstack.conf, if any. */
static int _state_dir_from_plugstack(char *out, size_t len)
{
	slurm_conf_t *conf = NULL;
	char line[4096], path[4096] = "";
	FILE *f;
	int found = 0;

	if (slurm_load_ctl_conf((time_t)0, &conf) == 0 && conf) {
		if (conf->plugstack)
			snprintf(path, sizeof(path), "%s", conf->plugstack);
		slurm_free_ctl_conf(conf);
	}
	if (!path[0])
		return 0;
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok;

		if (!strstr(line, "resilience.so") || line[0] == '#')
			continue;
		for (tok = strtok_r(line, " \t\n", &save); tok;
		     tok = strtok_r(NULL, " \t\n", &save))
			if (!strncmp(tok, "state_dir=", 10)) {
				snprintf(out, len, "%s", tok + 10);
				found = 1;
			}
	}
	fclose(f);
	return found;
}

/* Slurm 22.05's slurm.h declares no state-to-string helper (the library
 * has one; calling an undeclared function is how a plugin crashed here
 * once): a small table of the base states, in enum job_states order. */
static const char *_state_name(uint32_t st)
{
	static const char *const names[] = {
		"PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED",
		"FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL",
		"DEADLINE", "OUT_OF_MEMORY",
	};
	uint32_t base = st & JOB_STATE_BASE;

	return base < sizeof(names) / sizeof(names[0]) ? names[base] : "?";
}

static void _print_slurm_view(unsigned long job_id)
{
	job_info_msg_t *msg = NULL;
	slurm_job_info_t *j;
	char desc[512], comment[1024];

	if (slurm_load_job(&msg, (uint32_t)job_id, SHOW_ALL) || !msg ||
	    !msg->record_count) {
		printf("job %lu: not known to Slurm (%s)\n", job_id,
		       slurm_strerror(errno));
		if (msg)
			slurm_free_job_info_msg(msg);
		return;
	}
	j = &msg->job_array[0];
	/* The AdminComment quotes the job's own words (why it failed) and
	 * the reason may too: escaped, like everything of a user's. */
	printf("job %lu: %s%s%s%s, restarts %u\n  %s\n", job_id,
	       _state_name(j->job_state),
	       (j->job_state & JOB_REQUEUE_HOLD) || j->priority == 0
		       ? " (held)" : "",
	       j->state_desc ? ", " : "",
	       rs_text_escape_str(desc, sizeof(desc), j->state_desc),
	       j->restart_cnt,
	       j->admin_comment ? rs_text_escape_str(comment, sizeof(comment),
						     j->admin_comment)
				: "(no AdminComment yet)");
	slurm_free_job_info_msg(msg);
}

/* The history of job_id in state_dir: one folder per cluster and job,
 * CLUSTER.JOB (a state_dir may serve several clusters; the job may be
 * gone from slurmctld, so every cluster's is shown).  0 if one was. */
static int _print_state_dir(const char *state_dir, unsigned long job_id)
{
	char suffix[32], dir[4096 + 300];
	struct dirent *e;
	int shown = 0;
	size_t sl;
	DIR *d = opendir(state_dir);

	if (!d)
		return -1;
	snprintf(suffix, sizeof(suffix), ".%lu", job_id);
	sl = strlen(suffix);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l <= sl || strcmp(e->d_name + l - sl, suffix) ||
		    e->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", state_dir, e->d_name);
		if (_print_ledger(dir, 1) == 0)
			shown++;
	}
	closedir(d);
	return shown ? 0 : -1;
}

int rs_cli_status(int argc, char **argv)
{
	const char *target = NULL, *state_dir = NULL;
	char sd[4096];
	unsigned long job_id;
	char *end = NULL;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--state-dir") && i + 1 < argc)
			state_dir = argv[++i];
		else if (!target && argv[i][0] != '-')
			target = argv[i];
		else
			target = NULL, i = argc;
	}
	if (!target) {
		fprintf(stderr, "usage: slurm-resilience status JOBID "
				"[--state-dir DIR] | status CKPT_DIR\n");
		return 2;
	}
	if (target[0] == '/' || target[0] == '.') {
		/* The history, then every generation kept: when, why (signal,
		 * lead, periodic) and how long it took. */
		char *list[] = { "ckpt", "list", (char *)target, NULL };
		int rc = _print_ledger(target, 0);

		if (rc == 0) {
			printf("\ncheckpoints:\n");
			fflush(stdout);
			rc = rs_cli_ckpt(3, list);
		}
		return rc;
	}
	errno = 0;
	job_id = strtoul(target, &end, 10);
	if (errno || *end || !job_id) {
		fprintf(stderr, "slurm-resilience: status: '%s' is neither a job "
				"id nor a folder\n", target);
		return 2;
	}
	rs_cli_slurm_init();
	_print_slurm_view(job_id);
	if (!state_dir && _state_dir_from_plugstack(sd, sizeof(sd)))
		state_dir = sd;
	if (state_dir && _print_state_dir(state_dir, job_id) == 0)
		return 0;
	printf("no attempt history for job %lu in %s: a job with ckpt= keeps "
	       "it in its checkpoint folder (slurm-resilience status "
	       "CKPT_DIR)\n", job_id, state_dir ? state_dir : "(no state_dir)");
	return 0;
}
