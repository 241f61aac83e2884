/*
 * plugin_submit.h - the submission's own options, for checks the SPANK
 * API cannot do at submit (sbatch/salloc/srun, as the submitting user):
 * the command line (/proc/self/cmdline), then the batch script's #SBATCH
 * lines (the command line wins, as in sbatch).  Best effort, used for
 * refusals that name what they saw and for warnings.
 */
#ifndef RS_PLUGIN_SUBMIT_H
#define RS_PLUGIN_SUBMIT_H

#include <stddef.h>
#include <stdint.h>

/* `name` is a long option ("--time"), `shrt` its short letter or 0.
 * Returns 1 and the value (or "" for a flag) if found, else 0. */
int rs_submit_option(const char *name, char shrt, char *val, size_t len);

/* The time limit the submission asked for, in seconds; 0 if unknown. */
uint32_t rs_submit_time_limit(void);

/*
 * sbatch/salloc (allocator context), before any option is read: inside a
 * job (SLURM_JOB_ID set), forget a --resilience inherited from that job.
 * slurmstepd gives every task the job's SPANK options in its environment
 * (SLURM_SPANK__SLURM_SPANK_OPTION_<plugin>_<option>, and the internal
 * _SLURM_SPANK_OPTION_... forms), so that srun steps inside the job get
 * them; sbatch reads the same variable and would make the new job
 * resilient.  srun (local context) is left alone.  An explicit
 * --resilience on the command line or in #SBATCH still applies (Slurm
 * reads those after this).  Returns the number of variables removed.
 */
int rs_submit_forget_inherited(void);

#endif
