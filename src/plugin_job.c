/*
 * plugin_job.c - small things every plugin module needs (plugin_job.h),
 * and what sbatch/salloc/srun can learn about the submission itself.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugin_job.h"

/* Default bounds, when the site policy does not set them. */
#define RS_FILE_TIMEOUT_MS_DEFAULT 20000
#define RS_RESTORE_TIMEOUT_MS_DEFAULT 120000

void rs_job_fail(rs_job_t *j, const rs_err_t *why)
{
	j->failed = 1;
	j->fail_err = *why;
}

int rs_job_file_timeout_ms(const rs_job_t *j)
{
	return j->pol.file_timeout_ms ? (int)j->pol.file_timeout_ms
				      : RS_FILE_TIMEOUT_MS_DEFAULT;
}

int rs_job_restore_timeout_ms(const rs_job_t *j)
{
	return j->pol.restore_timeout_ms ? (int)j->pol.restore_timeout_ms
					 : RS_RESTORE_TIMEOUT_MS_DEFAULT;
}

/* In a one-node batch job the batch script's supervisor saves and srun
 * steps only forward; in a job on several nodes the srun steps that span
 * the nodes save every node's part and the batch script's supervisor
 * only forwards; a job without a batch script (salloc, srun) saves from
 * its steps (docs/design.md). */
int rs_job_step_saves(const rs_job_t *j)
{
	if (j->step_id == RS_BATCH_STEP)
		return j->f.nnodes <= 1;
	return !(j->f.batch && j->f.nnodes <= 1);
}

/* The configuration the hosting Slurm program read (srun, slurmstepd, ...:
 * libslurm's global).  Not in the public API, but slurm.h declares its
 * type, and a SPANK plugin is built for one Slurm version anyway.  Weak:
 * if a Slurm ever stops exporting it, the plugin falls back to the job's
 * environment. */
extern slurm_conf_t slurm_conf __attribute__((weak, visibility("default")));

int rs_job_cluster(spank_t sp, char *buf, size_t len)
{
	if (&slurm_conf && slurm_conf.cluster_name && slurm_conf.cluster_name[0]) {
		snprintf(buf, len, "%s", slurm_conf.cluster_name);
		return 0;
	}
	if (!sp)
		return -1;
	return spank_getenv(sp, "SLURM_CLUSTER_NAME", buf, (int)len) ==
	       ESPANK_SUCCESS ? 0 : -1;
}

void rs_job_find_helper(const char *name, const char *dir, char *out,
			size_t len)
{
	Dl_info info;
	char here[PATH_MAX - 64];
	struct stat st;

	if (dladdr((void *)rs_job_find_helper, &info) && info.dli_fname) {
		char *slash;

		snprintf(here, sizeof(here), "%s", info.dli_fname);
		slash = strrchr(here, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, len, "%s/%s", here, name);
			if (!stat(out, &st) && S_ISREG(st.st_mode))
				return;
		}
	}
	snprintf(out, len, "%s/%s", dir, name);
	if (stat(out, &st) || !S_ISREG(st.st_mode))
		out[0] = '\0';
}

int rs_job_load_jsonc(rs_err_t *err)
{
	if (dlopen(RS_JSONC_SONAME, RTLD_NOW | RTLD_GLOBAL))
		return 0;
	return rs_err_set(err, ENOENT, "cannot load %s on this node: %s",
			  RS_JSONC_SONAME, dlerror());
}
