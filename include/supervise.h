/*
 * supervise.h - pure logic of the task supervisor (resilience-supervisor).
 *
 * The supervisor sits between slurmstepd and the job's application: it is
 * the task pid Slurm knows, the application is its child.  It forwards every
 * signal, turns the warning signal (and, optionally, a self-timed "lead"
 * warning and periodic ticks) into a checkpoint of the scratch folder, and
 * leaves with the application's exact status.  docs/supervisor.md has the
 * whole picture; this header holds what can be decided without side
 * effects, so it can be unit-tested:
 *
 *   - option parsing                     rs_supervise_parse()
 *   - wait status -> how to leave        rs_supervise_exit_of()
 *   - which received signals to forward  rs_supervise_should_forward()
 *   - the checkpoint state machine       rs_supervise_sm_*()
 *   - the status-file line               rs_supervise_status_format/parse()
 *   - one-line messages for stderr       rs_supervise_format_save()
 *
 * Return convention: 0 (or a length) on success, -errno on failure with the
 * rs_err_t filled.  Nothing here allocates, so nothing needs freeing.
 * Not thread-safe per object; no global state.
 */
#ifndef RS_SUPERVISE_H
#define RS_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* ------------------------------------------------------------ options --- */

typedef enum rs_supervise_role {
	RS_SUPERVISE_SAVER = 0,  /* forwards signals and saves (local task 0) */
	RS_SUPERVISE_FORWARD,    /* forwards signals (and self-timed warnings) only */
} rs_supervise_role_t;

/*
 * Parsed command line.  Strings point into argv (nothing is copied).
 * Durations are seconds (decimals allowed: "0.5").  0 turns lead, every and
 * save_timeout off.  end_time is a UNIX time, 0 = unknown.
 */
typedef struct rs_supervise_opts {
	const char *ckpt_dir;      /* --ckpt DIR          (saver: required) */
	const char *scratch;       /* --scratch DIR       (saver: required) */
	int signal;                /* --signal SIG        default SIGUSR1 */
	double grace;              /* --grace SECONDS     default 60 */
	unsigned keep;             /* --keep N            default 2, >= 1 */
	const char *ready;         /* --ready FILE        default none */
	const char *job_id;        /* --job ID */
	unsigned attempt;          /* --attempt N         default 0 (unknown) */
	const char *node;          /* --node NAME */
	unsigned part;             /* --part K            default 0 */
	unsigned nparts;           /* --nparts N          default 1 */
	rs_supervise_role_t role;  /* --role saver|forward, default saver */
	const char *status;        /* --status FILE       default none */
	int status_fd;             /* --status-fd N: lines also to this
				    * inherited pipe (the plugin's), -1 none */
	double lead;               /* --lead SECONDS      default 0 (off) */
	double end_time;           /* --end-time UNIX     default 0 (unknown) */
	const char *end_time_file; /* --end-time-file FILE, re-read every tick */
	double every;              /* --every SECONDS     default 0 (off) */
	double save_timeout;       /* --save-timeout SECONDS default 3600 */
	unsigned batch_script;     /* --batch-script 1: the application is a
				    * batch script: a warning it does not
				    * handle goes to the processes under it
				    * that do (srun forwards it to its
				    * steps), never kills it */
	pid_t stepd;               /* --stepd PID: the slurmstepd of a step
				    * that signals every process it tracks
				    * (all but the batch step); signals it
				    * sends are not passed on, the
				    * application got its own.  0: none */
	pid_t pid;                 /* --pid PID: adopt this child, or 0 */
	char **argv;               /* -- PROG ARGS...: run this, or NULL */
} rs_supervise_opts_t;

/* Fill o with the defaults above. */
void rs_supervise_opts_init(rs_supervise_opts_t *o);

/*
 * Parse argv[1..argc-1] into o (initialised here).  Options take one value,
 * as `--opt VALUE` or `--opt=VALUE`; exactly one of `--pid PID` and
 * `-- PROG [ARGS...]` must be given, `--` ends the options.  A saver needs
 * --ckpt and --scratch; part < nparts.  Returns 0, or -EINVAL with err set
 * (unknown option, missing or malformed value, bad combination).  Even on
 * failure, o->pid and o->argv are set when they could be found, so the
 * caller can still run or adopt the application unsupervised.
 */
int rs_supervise_parse(int argc, char **argv, rs_supervise_opts_t *o,
		       rs_err_t *err);

/*
 * The plugin's side of the same contract: build the supervisor's command
 * line from o.  argv[0] = path, then every option that is set (strings
 * that are non-NULL, lead/every/end_time/attempt that are non-zero, the
 * rest always), then `--pid PID` if o->pid > 0, else a final `--` after
 * which the program goes (Slurm >= 23.11 prepends this argv to the task's).
 * o->argv is ignored.  Numbers are plain decimals the parser accepts;
 * strings are written into store.  Returns argc (argv[argc] is NULL), or
 * -ENOSPC with err if store or argv (argv_max entries) is too small.
 * rs_supervise_parse() of the result gives back o (seconds to 1 us).
 */
int rs_supervise_argv(const rs_supervise_opts_t *o, const char *path,
		      char *store, size_t store_len, char **argv,
		      size_t argv_max, rs_err_t *err);

/* Signal number from "USR1", "SIGUSR1", "usr1" or "10".  Refuses SIGKILL,
 * SIGSTOP and SIGCHLD (they cannot serve as a warning).  -EINVAL. */
int rs_supervise_parse_signal(const char *s, int *sig, rs_err_t *err);

/* Non-negative finite decimal seconds ("30", "0.5").  -EINVAL / -ERANGE. */
int rs_supervise_parse_seconds(const char *s, double *out, rs_err_t *err);

/*
 * Contents of an --end-time-file: one decimal UNIX time, optional
 * surrounding blanks/newline.  Empty or "0" means unknown (*end = 0).
 * -EINVAL on anything else.
 */
int rs_supervise_parse_end_time(const char *text, double *end, rs_err_t *err);

/* ------------------------------------------------------- exit mapping --- */

/* How the supervisor leaves so its parent sees what the app's would have. */
typedef struct rs_supervise_exit {
	int sig;   /* > 0: die by this signal (re-raised, default disposition) */
	int code;  /* exit code, when sig == 0 */
	int core;  /* the application dumped core (not reproducible: see docs) */
} rs_supervise_exit_t;

/* Map a waitpid() status.  -EINVAL for stopped/continued statuses. */
int rs_supervise_exit_of(int wstatus, rs_supervise_exit_t *out);

/* ---------------------------------------------------------- forwarding --- */

/*
 * Should a signal the supervisor received be passed to the application?
 * sig, code and sender come from the siginfo (signalfd).  No for: SIGCHLD
 * reporting on our own children (code > 0); signals the application or the
 * supervisor itself sent (no echo, no ping-pong); signals the kernel sent to
 * our whole process group (tty ^C/^Z, SI_KERNEL) when the application is
 * in that group too, because it got its own copy; signals from stepd, the
 * slurmstepd of a step that signals every process it tracks (every step
 * but the batch step: `scancel --signal` to a step, `--signal` without
 * B:, srun passing a signal on, the TERM at the end), because the
 * application got its own copy too (0: the batch step, whose slurmstepd
 * signals only the task it started, `--signal=B:`, `scancel -b`).  Yes
 * otherwise.  Returns 1 or 0.
 */
int rs_supervise_should_forward(int sig, int code, pid_t sender, pid_t self,
				pid_t app, pid_t my_pgrp, pid_t app_pgrp,
				pid_t stepd);

/* ------------------------------------------------------- state machine --- */

typedef enum rs_supervise_phase {
	RS_SUPERVISE_IDLE = 0,   /* no checkpoint sequence running */
	RS_SUPERVISE_WAITING,    /* warning sent; waiting for ready/exit/grace */
	RS_SUPERVISE_SAVING,     /* the save child runs */
} rs_supervise_phase_t;

typedef enum rs_supervise_reason {
	RS_SUPERVISE_SIGNAL = 0, /* the warning signal arrived */
	RS_SUPERVISE_LEAD,       /* self-timed: end of job minus --lead */
	RS_SUPERVISE_PERIODIC,   /* every --every seconds of run time */
} rs_supervise_reason_t;

typedef enum rs_supervise_event {
	RS_SUPERVISE_EV_WARNING = 0, /* the warning signal arrived from outside */
	RS_SUPERVISE_EV_TICK,        /* time passed: check deadlines */
	RS_SUPERVISE_EV_READY,       /* the ready file exists (waiting), or
				      * appeared anew (idle: another step's
				      * task answered a warning: save now) */
	RS_SUPERVISE_EV_APP_EXIT,    /* the application has been reaped */
	RS_SUPERVISE_EV_SAVE_DONE,   /* the save child has been reaped */
	RS_SUPERVISE_EV_TERM,        /* SIGTERM: the job is ending */
} rs_supervise_event_t;

typedef enum rs_supervise_action {
	RS_SUPERVISE_NONE = 0,
	/* Start a sequence: (saver) remove the ready file, then send the
	 * warning signal to the application (for EV_WARNING the caller
	 * forwards the received signal itself, after removing the file). */
	RS_SUPERVISE_BEGIN,
	RS_SUPERVISE_SAVE,        /* fork the save now */
	RS_SUPERVISE_ABORT_SAVE,  /* the save ran past --save-timeout: kill it */
} rs_supervise_action_t;

/*
 * The state machine.  Times are seconds on one monotonic clock, chosen by
 * the caller.  Fields are read-only for callers.
 */
typedef struct rs_supervise_sm {
	/* configuration */
	int saver;
	double grace, lead, every, save_timeout;
	double start;             /* when supervision began */
	double end;               /* end of the job on this clock, 0 = unknown */
	/* state */
	rs_supervise_phase_t phase;
	rs_supervise_reason_t reason; /* of the current/last sequence */
	double deadline;          /* WAITING: end of grace; SAVING: save bound
	                           * (0 = none, or already aborted) */
	unsigned seq;             /* sequences begun in this attempt */
	int warned;               /* a warning signal came since the attempt
	                           * began (or the end time last moved later) */
	int lead_done;            /* the self-timed warning fired (or was
	                           * covered by a sequence already running) */
	int term;                 /* SIGTERM seen: no new self-timed sequence */
	int preempted;            /* a TERM came with an earlier end: GraceTime */
	int app_gone;             /* the application has exited */
	double next_periodic;     /* next periodic tick, 0 = off */
} rs_supervise_sm_t;

/* Initialise from options at time now (end: the job's end on the same clock,
 * 0 if unknown). */
void rs_supervise_sm_init(rs_supervise_sm_t *sm, const rs_supervise_opts_t *o,
			  double now, double end);

/*
 * Feed one event at time now; returns the one action the caller must carry
 * out (and the state already reflects it).  After any event the caller
 * repeats EV_TICK until it returns NONE: e.g. with grace 0, BEGIN is followed
 * at once by SAVE.
 *
 * Rules: a warning signal starts a sequence only when idle; a second one
 * while waiting or saving is forwarded (by the caller) and ignored here.
 * The lead warning fires once at end - lead if no warning signal came and
 * nothing stopped it; a warning signal after it does not save again.
 * Periodic ticks fire on the grid start + k*every when idle, are skipped when
 * busy or when they fall in the lead window, and never overlap a sequence.
 * After SIGTERM only a warning signal starts a sequence; after the
 * application exits nothing does, but a sequence that was waiting saves at
 * once.  A forward-role machine only emits BEGIN for lead/periodic (so its
 * application gets the warning too) and never waits or saves.
 */
rs_supervise_action_t rs_supervise_sm_event(rs_supervise_sm_t *sm,
					    rs_supervise_event_t ev,
					    double now);

/* The job's end moved (end on the machine's clock, 0 = unknown).  Moving it
 * later re-arms the lead warning; so does moving it earlier after a
 * SIGTERM (preemption with GraceTime: TERM, then the end at now + grace). */
void rs_supervise_sm_set_end(rs_supervise_sm_t *sm, double end);

/* When the machine next needs an EV_TICK: an absolute time, or 0 if nothing
 * is scheduled. */
double rs_supervise_sm_next(const rs_supervise_sm_t *sm);

/* Next point of the grid start + k*every strictly after now (k >= 1). */
double rs_supervise_next_periodic(double start, double every, double now);

/* "signal", "lead", "periodic". */
const char *rs_supervise_reason_name(rs_supervise_reason_t r);

/* --------------------------------------------------------- status line --- */

/*
 * The --status file gets one line per event, appended with a single
 * write(2) on an O_APPEND descriptor (so lines of concurrent supervisors do
 * not interleave), at most RS_SUPERVISE_STATUS_MAX bytes with the newline:
 *
 *   rs1 EVENT key=value key=value ...\n
 *
 * EVENT is `warning` (a checkpoint sequence began), `save` (it ended) or
 * `exit` (the application ended).  Values are percent-encoded: '%', '=',
 * space, and bytes below 0x21 or above 0x7e become %XX.  Keys, in this order,
 * only those that apply (the parser accepts any order, refuses unknown
 * keys and repeated keys):
 *   time=UNIX.mmm pid=SUPERVISOR_PID job=ID attempt=N node=NAME part=K
 *   nparts=N                                                  (all events)
 *   reason=signal|lead|periodic seq=N                         (warning, save)
 *   result=ok|fail gen=N published=0|1 files=N copied=BYTES
 *   linked=BYTES seconds=S error=TEXT                         (save)
 *   code=N | sig=N core=0|1                                   (exit)
 */
#define RS_SUPERVISE_STATUS_MAX 4096

typedef enum rs_supervise_status_event {
	RS_SUPERVISE_ST_WARNING = 1,
	RS_SUPERVISE_ST_SAVE,
	RS_SUPERVISE_ST_EXIT,
} rs_supervise_status_event_t;

typedef struct rs_supervise_status {
	rs_supervise_status_event_t event;
	double time;              /* UNIX time */
	long pid;                 /* supervisor pid */
	char job[128];            /* "" if unknown */
	unsigned attempt;
	char node[256];           /* "" if unknown */
	unsigned part, nparts;
	rs_supervise_reason_t reason;   /* warning, save */
	unsigned seq;                   /* warning, save */
	int ok;                         /* save: 1 ok, 0 fail */
	long gen;                       /* save: generation, -1 unknown */
	int published;                  /* save */
	uint64_t files, copied, linked; /* save */
	double seconds;                 /* save */
	char error[RS_ERR_MAX];         /* save: failure reason, "" if ok */
	int sig;                        /* exit: signal, 0 if exited */
	int code;                       /* exit: exit code if sig == 0 */
	int core;                       /* exit: app dumped core */
} rs_supervise_status_t;

/* Format s as one line (with '\n', NUL-terminated) into buf.  Returns the
 * length without NUL, -ENOSPC if it does not fit, -EINVAL on a bad event. */
int rs_supervise_status_format(const rs_supervise_status_t *s, char *buf,
			       size_t len);

/*
 * Parse one line (trailing '\n' optional, at most RS_SUPERVISE_STATUS_MAX
 * bytes with it) into s.  -EINVAL with err on a malformed or longer line,
 * unknown version, event or key.
 *
 * The line comes from a process running as the job's user, who can write
 * anything into it, and its fields end up in slurmd's log: so after
 * decoding, job= and node= must be printable ASCII (0x20-0x7e) or the line
 * is refused (-EINVAL: an identifier rewritten would name something
 * else), and error= is kept: as it is when it is printable ASCII, else
 * escaped whole with rs_text_escape() (it may rightly quote a file name
 * with any byte in it; "\n" becomes "\x0a", "\" then "\\").  No field
 * of s ever holds a byte outside 0x20-0x7e, and formatting s and parsing
 * the line gives s back.
 */
int rs_supervise_status_parse(const char *line, rs_supervise_status_t *s,
			      rs_err_t *err);

/*
 * Read at most 1 MiB from fd (opened by the caller, who decides how it may
 * be opened safely) and return in s the last line whose event is `event`.
 * Malformed lines are skipped (a crash may leave a partial last line).
 * 0, -ENOENT if no such line, -errno on a read error.
 */
int rs_supervise_status_last(int fd, rs_supervise_status_event_t event,
			     rs_supervise_status_t *s, rs_err_t *err);

/* ------------------------------------------------------------- messages --- */

/* "1.2 MiB", "512 B": binary units, one decimal above bytes. */
void rs_supervise_format_bytes(uint64_t bytes, char *buf, size_t len);

/*
 * The one-line stderr message for a finished save, with '\n':
 *   resilience: checkpoint gen-000003 saved: 120 files, 1.2 MiB copied,
 *     3.4 MiB linked, 0.21 s                                  (one line)
 *   resilience: checkpoint gen-000003 part 1/3 saved: ... (other parts
 *     pending)                                       (multi-node, unpublished)
 *   resilience: checkpoint of SCRATCH into CKPT failed: WHY
 * s is a save status (ok, gen, published, files, ..., error).
 */
void rs_supervise_format_save(const rs_supervise_status_t *s,
			      const char *scratch, const char *ckpt,
			      char *buf, size_t len);

#endif
