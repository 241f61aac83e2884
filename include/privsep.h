/*
 * privsep.h - run a piece of work as the job's user, in a child process,
 * with a hard time bound.  slurmstepd runs some SPANK hooks as root; files
 * on user paths (the checkpoint folder, its manifest) must only be touched
 * with the user's privileges, and a hung file system must not hang
 * slurmstepd.  Return convention: 0 / -errno with err filled.
 */
#ifndef RS_PRIVSEP_H
#define RS_PRIVSEP_H

#include <stddef.h>
#include <sys/types.h>

#include "err.h"

#define RS_PRIVSEP_ROOT ((uid_t)-1)

/* Work done in the child: write at most out_max bytes of result to out_fd;
 * return 0 or -errno (err is passed back to the parent). */
typedef int (*rs_privsep_fn)(void *arg, int out_fd, rs_err_t *err);

/* How long rs_privsep_run waits for a child it has SIGKILLed. */
#define RS_PRIVSEP_REAP_MS 1000

/*
 * Fork; in the child become uid/gid (supplementary groups as set with
 * rs_privsep_set_groups, else of the user's name, or just gid), call fn,
 * exit.  Up to out_len bytes the child wrote are copied to out
 * (NUL-terminated), *out_n gets their number.  uid == RS_PRIVSEP_ROOT: run
 * as root (slurmstepd may have switched its effective uid to the user:
 * the child switches it back).
 *
 * The child keeps no descriptor of the caller's: before it switches ids,
 * fn's out_fd becomes 3, the error pipe 4, stdin/stdout/stderr /dev/null,
 * and every other descriptor is closed (close_range, else /proc/self/fd,
 * else up to RLIMIT_NOFILE), so slurmstepd's log and sockets never reach
 * code running as the user.
 *
 * Time bound: from the fork, the child has timeout_ms to close its pipes
 * and exit; then it gets SIGKILL and -ETIMEDOUT is returned.  The parent
 * never blocks in waitpid: after the SIGKILL it polls for at most
 * RS_PRIVSEP_REAP_MS and then gives up, so a call returns within about
 * timeout_ms + 1 s.  A child stuck in uninterruptible sleep (D state on a
 * dead NFS or Lustre server) then stays, and once it wakes and dies stays
 * a zombie until the caller exits or reaps it (waitpid(-1)).
 */
int rs_privsep_run(uid_t uid, gid_t gid, int timeout_ms, rs_privsep_fn fn,
		   void *arg, char *out, size_t out_len, size_t *out_n,
		   rs_err_t *err);

/* The supplementary groups children take (copied; n == -1 forgets them):
 * slurmstepd knows the job's own (S_JOB_SUPPLEMENTARY_GIDS), which are the
 * ones its tasks get, and setgroups() needs no NSS lookup.  Without this,
 * the groups come from initgroups() of the user's name.  0/-ENOMEM. */
int rs_privsep_set_groups(const gid_t *gids, int n);

/* Become uid/gid for good in the calling process (a child): supplementary
 * groups (above, else of the user), real/effective/saved ids; fails if root could be
 * regained.  RS_PRIVSEP_ROOT: take root back (after a seteuid).  0/-errno. */
int rs_privsep_become(uid_t uid, gid_t gid);

/* In a detached background process (after fork + setsid): default signal
 * dispositions (SIGPIPE, SIGHUP ignored), empty mask, stdio on /dev/null,
 * every other inherited file closed (slurmstepd's sockets, the job's
 * stdio pipes whose reader waits for EOF: holding one keeps a step from
 * ending) except `keep` (-1: none), cwd "/". */
void rs_privsep_detach(int keep);

/* In a detached process (root): leave every cgroup/v1 hierarchy where it
 * sits in a Slurm job's cgroup (proctrack/cgroup kills what is left in
 * the step's cgroup at the step's end) for Slurm's root of the node.
 * Best effort; cgroup v2 is left alone. */
void rs_privsep_leave_job_cgroups(void);

/* Start cmd argv as a detached process (fork, setsid, fork, detach,
 * leave the job's cgroups, exec; SIGALRM after backstop_s if non-zero):
 * the caller never waits
 * for it beyond the first fork's immediate exit.  0 / -errno. */
int rs_privsep_spawn_detached(const char *cmd, char *const argv[], unsigned backstop_s);

#endif
