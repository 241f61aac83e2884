/*
 * rundir.h - the node-local folder the plugin keeps per-attempt state in
 * (RS_RUNDIR, default /run/slurm-resilience; a tmpfs emptied at boot).
 *
 *   RUNDIR/                      root's, 0711: users may traverse, not list
 *   RUNDIR/CLUSTER.JOB.aN.facts  root's, 0644: the job's facts (facts.h)
 *   RUNDIR/u<uid>/               the user's, 0700, created by root: the
 *                                private folder of the user's supervisors
 *   RUNDIR/u<uid>/CLUSTER.JOB.ready, .end   (RESILIENCE_CKPT_READY, the
 *                                attempt's end time)
 *
 * Other users cannot create anything in RUNDIR, so they cannot squat a
 * user's private folder (in /tmp they could).  Everything of a job is
 * removed when the job ends on the node (slurm_spank_job_epilog), and
 * whatever a crash leaves is swept by age; nothing grows with the number
 * of jobs ever run.  All functions run as root in slurmstepd or slurmd.
 * Return convention: 0 / -errno with err filled.
 */
#ifndef RS_RUNDIR_H
#define RS_RUNDIR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"

/* Create RUNDIR if missing (root, 0711) and check it: a real folder,
 * root's, writable by nobody else; a 0700 RUNDIR of an older version is
 * opened up to 0711.  Returns a descriptor (O_DIRECTORY) or -errno. */
int rs_rundir_open(const char *rundir, rs_err_t *err);

/* The user's private folder RUNDIR/u<uid>: created by root for uid:gid,
 * 0700, or checked (a real folder, uid's, 0700).  path gets its name. */
int rs_rundir_user(const char *rundir, uid_t uid, gid_t gid, char *path,
		   size_t len, rs_err_t *err);

/* s if it is a Slurm identifier of at most 63 characters (facts.h), else
 * "_": what a cluster or node name may put into a file name. */
const char *rs_rundir_token(const char *s);

/* Names of a job's ready and end-time files in the user's private folder:
 * u<uid>/CLUSTER.JOB.NODE.ready and .end (names that are not Slurm
 * identifiers become "_").  Per node: several slurmd may share a host
 * (and its RUNDIR), and one node's warning sequence must never remove
 * another node's answer. */
int rs_rundir_job_files(const char *rundir, uid_t uid, const char *cluster,
			uint32_t job, const char *node, char *ready, char *end, size_t len);

/* Write the attempt's end time (seconds since the epoch, one line) to
 * endfile atomically: ENDFILE.<pid> then rename, so a supervisor never
 * reads half a line; the temp name is what rs_rundir_sweep and
 * rs_rundir_job_end expect.  Runs as the job's user (the end-time
 * poller).  0 or -errno (nothing is left behind on failure). */
int rs_rundir_write_end(const char *endfile, time_t end);

/* The job has ended on this node: remove its facts (every attempt) and
 * its ready and end-time files.  Never follows a symlink.  Returns the
 * number of files removed, or -errno. */
int rs_rundir_job_end(const char *rundir, uid_t uid, const char *cluster,
		      uint32_t job);

/* Remove what crashed slurmstepds left behind: facts of attempts long
 * over, temp files, and private files older than a day.  At most once
 * per RS_RUNDIR_SWEEP_EVERY seconds per node (a stamp file), so a job
 * start never reads the folder twice in a row.  Returns files removed. */
#define RS_RUNDIR_SWEEP_EVERY 600
int rs_rundir_sweep(const char *rundir, time_t now);

#endif
