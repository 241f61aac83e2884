/*
 * plugin_ctld.c - what the plugin asks of slurmctld (see plugin_job.h).
 * Runs in slurmstepd as root; libslurm's symbols resolve from it.  Each
 * call is one RPC, bounded by Slurm's MessageTimeout.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>

#include "plugin_job.h"
#include "requeue.h"

/* How slurmctld names this job in an update.  job_desc_msg_t's numeric
 * job_id is gone in 25.11 (a step_id took its place); job_id_str exists
 * in every release we support, but a bare "ID" there means the whole
 * array (or every het component) when ID is also the array's or het
 * job's id: an array task is named "ARRAY_TASK", a het component
 * "HET+OFFSET", so exactly this record is updated, as job_id did. */
static struct {
	uint32_t job_id;            /* the job id[] is for, 0 if none */
	char id[48];
} ctld;

static void _remember_id(const slurm_job_info_t *r)
{
	ctld.job_id = r->job_id;
	if (r->array_task_id != NO_VAL && r->array_job_id)
		snprintf(ctld.id, sizeof(ctld.id), "%u_%u", r->array_job_id,
			 r->array_task_id);
	else if (r->het_job_id && r->het_job_id != NO_VAL)
		snprintf(ctld.id, sizeof(ctld.id), "%u+%u", r->het_job_id,
			 r->het_job_offset);
	else
		snprintf(ctld.id, sizeof(ctld.id), "%u", r->job_id);
}

const char *rs_ctld_job_name(const rs_job_t *j)
{
	if (ctld.job_id != j->job_id) {
		ctld.job_id = j->job_id;
		snprintf(ctld.id, sizeof(ctld.id), "%u", j->job_id);
	}
	return ctld.id;
}

/* The job's record, or NULL (then *msg is NULL too); the caller frees
 * *msg with slurm_free_job_info_msg.  SHOW_LOCAL: one RPC, not a
 * federation lookup first. */
static slurm_job_info_t *_load(uint32_t job_id, job_info_msg_t **msg)
{
	*msg = NULL;
	if (slurm_load_job(msg, job_id, SHOW_ALL | SHOW_LOCAL) || !*msg ||
	    !(*msg)->record_count) {
		if (*msg)
			slurm_free_job_info_msg(*msg);
		*msg = NULL;
		return NULL;
	}
	return &(*msg)->job_array[0];
}

/* The job's identity for its metrics event. */
static void _identity(const rs_job_t *j, const slurm_job_info_t *r, rs_event_t *ev)
{
	struct passwd *pw = getpwuid(r->user_id);

	rs_event_free(ev);
	rs_event_init(ev);
	ev->cluster = strdup(j->pol.metrics.cluster ? j->pol.metrics.cluster
			     : r->cluster ? r->cluster : "unknown");
	ev->job_id = j->job_id;
	if (r->array_task_id != NO_VAL) {
		ev->array_job_id = r->array_job_id;
		ev->array_task_id = r->array_task_id;
	}
	ev->user = pw ? strdup(pw->pw_name) : NULL;
	ev->uid = r->user_id;
	ev->account = r->account ? strdup(r->account) : NULL;
	ev->partition = r->partition ? strdup(r->partition) : NULL;
	ev->qos = r->qos ? strdup(r->qos) : NULL;
	ev->job_name = r->name ? strdup(r->name) : NULL;
	ev->nodes = r->nodes ? strdup(r->nodes) : NULL;
	ev->num_nodes = r->num_nodes;
	ev->num_tasks = r->num_tasks;
	ev->num_cpus = r->num_cpus;
}

int rs_ctld_end_state(const rs_job_t *j, rs_attempt_end_t *end, int *requeue_allowed)
{
	job_info_msg_t *msg;
	slurm_job_info_t *r = _load(j->job_id, &msg);
	uint32_t st;

	if (!r)
		return -1;
	st = r->job_state;
	/* scontrol requeue (or preemption in REQUEUE mode) leaves the job
	 * pending, or completing with the requeue flag, before we see it. */
	end->requeued = (st & JOB_STATE_BASE) == JOB_PENDING ||
			(st & (JOB_REQUEUE | JOB_REQUEUE_HOLD));
	end->timed_out = (st & JOB_STATE_BASE) == JOB_TIMEOUT;
	end->preempted = (st & JOB_STATE_BASE) == JOB_PREEMPTED;
	end->cancelled = (st & JOB_STATE_BASE) == JOB_CANCELLED;
	*requeue_allowed = r->requeue != 0;
	slurm_free_job_info_msg(msg);
	return 0;
}

int rs_ctld_facts(rs_job_t *j)
{
	job_info_msg_t *msg;
	slurm_job_info_t *r = _load(j->job_id, &msg);
	unsigned used;

	if (!r)
		return -1;
	_remember_id(r);
	j->f.restart_count = r->restart_cnt;
	j->f.end_time = r->end_time;
	j->f.nnodes = r->num_nodes;
	j->f.batch = r->batch_flag != 0;
	if (r->time_limit != INFINITE && r->time_limit != NO_VAL)
		j->f.time_limit = r->time_limit * 60;
	snprintf(j->f.cluster, sizeof(j->f.cluster), "%s",
		 r->cluster ? r->cluster : "");
	if (rs_requeue_tag_parse(r->admin_comment, &used) == 0)
		j->trusted_retries = used;
	j->requeue_allowed = r->requeue != 0;
	if (j->step_id == RS_BATCH_STEP)
		_identity(j, r, &j->ident);
	slurm_free_job_info_msg(msg);
	return 0;
}

int rs_ctld_requeue(const rs_job_t *j, int hold)
{
	return slurm_requeue(j->job_id, hold ? JOB_REQUEUE_HOLD : 0) ? -1 : 0;
}
