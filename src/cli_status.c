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
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "cli.h"
#include "jobref.h"
#include "ledger.h"
#include "manifest.h"
#include "spec.h"
#include "text.h"

/* The history table of a ledger (rs_ledger_table escapes what comes from
 * it); releases root. */
static void _print_history(const char *dir, json_object *root)
{
	char *table = rs_ledger_table(root);

	printf("attempt history (%s/%s):\n%s", dir, RS_MANIFEST_NAME, table ? table : "");
	free(table);
	json_object_put(root);
}

static int _print_ledger(const char *dir, int quiet_missing)
{
	json_object *root = NULL;
	struct stat st;
	rs_err_t err;

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
	_print_history(dir, root);
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

/* The ledger in a job's state_dir folder, for whoever runs this: the
 * folder is root's (the plugin made it 0755, the manifest 0644), so the
 * job's user reads it too; it is not the reader's own folder and is not
 * checked as one.  What is checked: a folder, not a symlink, root's, not
 * writable by others (then the plugin wrote it).  0 if shown; else -1
 * and why in why. */
static int _print_state_ledger(const char *dir, char *why, size_t wlen)
{
	json_object *root = NULL;
	struct stat st;
	rs_err_t err;
	char msg[2 * RS_ERR_MAX];
	int fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, wlen, "%s: %s", dir, errno == ELOOP ?
			 "is a symbolic link, not a folder the plugin made" :
			 errno == EACCES ? "not readable by you: the site "
			 "keeps histories private; ask an admin" :
			 strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		snprintf(why, wlen, "%s: owned by uid %u, mode %04o: the plugin "
			 "makes these folders as root, not writable by others; "
			 "this one is not its own, so it is not shown (ask an "
			 "admin)", dir, (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	rc = rs_manifest_read_json_at(fd, dir, RS_MANIFEST_NAME, &root, &err);
	close(fd);
	if (rc < 0) {
		if (rc == -ENOENT)
			snprintf(why, wlen, "%s: no %s yet (the job has not "
				 "started an attempt)", dir, RS_MANIFEST_NAME);
		else if (rc == -EACCES)
			snprintf(why, wlen, "%s/%s: not readable by you: the "
				 "site keeps histories private; ask an admin",
				 dir, RS_MANIFEST_NAME);
		else
			snprintf(why, wlen, "%s", rs_text_escape_str(
				msg, sizeof(msg), err.msg));
		return -1;
	}
	_print_history(dir, root);
	return 0;
}

/* The history of job_id in state_dir: one folder per cluster and job,
 * CLUSTER.JOB (a state_dir may serve several clusters; the job may be
 * gone from slurmctld, so every cluster's is shown).  0 if one was;
 * else -1 and the exact reason in why. */
static int _print_state_dir(const char *state_dir, unsigned long job_id,
			    char *why, size_t wlen)
{
	char suffix[32], dir[4096 + 300], scratch[256];
	struct dirent *e;
	int shown = 0;
	size_t sl;
	DIR *d = opendir(state_dir);

	if (!d) {
		snprintf(why, wlen, "state_dir %s: %s", state_dir,
			 errno == EACCES ? "not readable by you: the site "
			 "keeps histories private; ask an admin" :
			 strerror(errno));
		return -1;
	}
	snprintf(suffix, sizeof(suffix), ".%lu", job_id);
	sl = strlen(suffix);
	snprintf(why, wlen, "no folder *%s in state_dir %s: the plugin keeps "
		 "none for a job without --resilience, and a job with ckpt= "
		 "keeps its history in its checkpoint folder (slurm-resilience "
		 "status CKPT_DIR)", suffix, state_dir);
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l <= sl || strcmp(e->d_name + l - sl, suffix) ||
		    e->d_name[0] == '.')
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", state_dir, e->d_name);
		if (_print_state_ledger(dir, shown ? scratch : why,
					shown ? sizeof(scratch) : wlen) == 0)
			shown++;
	}
	closedir(d);
	return shown ? 0 : -1;
}

/* The job id of a job named "405_10" (array task) or "405+1" (het
 * component): Slurm knows it while the job is in slurmctld.  0 and *out,
 * or -1 with a message printed. */
static int _resolve(const char *target, const rs_jobref_t *ref,
		    unsigned long *out)
{
	job_info_msg_t *msg = NULL;
	int found = 0;

	if (ref->kind == RS_JOBREF_JOB) {
		*out = ref->job;
		return 0;
	}
	if (slurm_load_job(&msg, ref->job, SHOW_ALL) || !msg) {
		fprintf(stderr, "slurm-resilience: status %s: job %u is not "
			"known to Slurm (%s): give the job's own id (sacct -j "
			"%s -o JobIDRaw)\n", target, ref->job,
			slurm_strerror(errno), target);
		return -1;
	}
	for (uint32_t i = 0; i < msg->record_count && !found; i++) {
		slurm_job_info_t *j = &msg->job_array[i];

		if (ref->kind == RS_JOBREF_ARRAY_TASK &&
		    j->array_job_id == ref->job &&
		    j->array_task_id == ref->index)
			found = 1, *out = j->job_id;
		else if (ref->kind == RS_JOBREF_HET && j->het_job_id == ref->job &&
			 j->het_job_offset == ref->index)
			found = 1, *out = j->job_id;
	}
	slurm_free_job_info_msg(msg);
	if (!found)
		fprintf(stderr, "slurm-resilience: status %s: Slurm has no %s "
			"%u of job %u (pending array tasks have no job id of "
			"their own yet; a finished one may be gone: sacct -j %s "
			"-o JobIDRaw gives its id)\n", target,
			ref->kind == RS_JOBREF_HET ? "component" : "task",
			ref->index, ref->job, target);
	return found ? 0 : -1;
}

int rs_cli_status(int argc, char **argv)
{
	const char *target = NULL, *state_dir = NULL;
	char sd[4096], why[8192];
	unsigned long job_id = 0;
	rs_jobref_t ref;
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
		fprintf(stderr, "usage: slurm-resilience status JOBID|JOBID_TASK|"
				"JOBID+OFFSET [--state-dir DIR] | status CKPT_DIR\n");
		return 2;
	}
	if (rs_jobref_parse(target, &ref) < 0) {
		/* The history, then every generation kept: when, why (signal,
		 * lead, periodic) and how long it took.  Any path, relative
		 * too; a name that is not a job id is a folder. */
		char abs[4096 + 256];
		char *list[] = { "ckpt", "list", abs, NULL };
		struct stat st;
		int rc;

		if (!strchr(target, '/') && stat(target, &st) < 0) {
			fprintf(stderr, "slurm-resilience: status: '%s' is "
				"neither a job id (405, 405_10, 405+1) nor a "
				"folder here (%s)\n", target, strerror(errno));
			return 2;
		}
		/* Relative to here; not resolved (a symlink stays one, and
		 * is refused where the folder is opened). */
		if (rs_cli_abspath(target, abs, sizeof(abs)) < 0) {
			fprintf(stderr, "slurm-resilience: status %s: %s\n",
				target, strerror(errno));
			return 1;
		}
		rc = _print_ledger(abs, 0);
		if (rc == 0) {
			printf("\ncheckpoints:\n");
			fflush(stdout);
			rc = rs_cli_ckpt(3, list);
		}
		return rc;
	}
	rs_cli_slurm_init();
	if (_resolve(target, &ref, &job_id) < 0)
		return 1;
	_print_slurm_view(job_id);
	if (!state_dir && _state_dir_from_plugstack(sd, sizeof(sd)))
		state_dir = sd;
	if (!state_dir) {
		printf("no attempt history for job %lu: the site sets no "
		       "state_dir (or keeps it in an included file: pass "
		       "--state-dir DIR); a job with ckpt= keeps it in its "
		       "checkpoint folder (slurm-resilience status CKPT_DIR)\n",
		       job_id);
		return 0;
	}
	if (_print_state_dir(state_dir, job_id, why, sizeof(why)) == 0)
		return 0;
	printf("no attempt history for job %lu: %s\n", job_id, why);
	return 0;
}
