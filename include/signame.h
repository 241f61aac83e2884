/*
 * signame.h - the one signal-name parser of the project: the SPEC's
 * signal= (spec.c) and the supervisor's --signal (supervise.c) both read
 * names through it, and add their own rules on which signals may warn.
 * Pure; a table, not sigabbrev_np(3), which glibc 2.28 (RHEL 8) lacks.
 */
#ifndef RS_SIGNAME_H
#define RS_SIGNAME_H

/* "USR1", "SIGusr1", "10", "RTMIN", "RTMIN+3", "SIGRTMAX-2" -> the signal
 * number (1..SIGRTMAX, no 32-33, which glibc keeps for itself).
 * 0, or -EINVAL if s is empty, unknown or out of range. */
int rs_signame_parse(const char *s, int *sig);

/* "USR1" for SIGUSR1; NULL for a signal without a name (realtime). */
const char *rs_signame(int sig);

#endif
