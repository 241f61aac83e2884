/*
 * spec.h - the user's --resilience=SPEC: parse, validate, normalise.
 *
 * SPEC is a comma-separated list of key=value (plus the bare words `off`
 * and `help`).  Pure functions of their input: no Slurm, no I/O.
 * Return convention: 0 on success, -errno on failure with err filled with
 * one line naming the bad key or value and what is allowed.
 */
#ifndef RS_SPEC_H
#define RS_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Longest SPEC accepted; anything longer is refused (-E2BIG). */
#define RS_SPEC_MAX 4096
/* Longest path accepted for ckpt= and scratch= before expansion. */
#define RS_PATH_MAX 1024

/* Causes that make an attempt's failure retryable (requeue_on=). */
enum rs_cause {
	RS_CAUSE_EXIT      = 1u << 0,  /* any non-zero exit code */
	RS_CAUSE_SIGNAL    = 1u << 1,  /* killed by a signal */
	RS_CAUSE_TIMEOUT   = 1u << 2,  /* reached its time limit */
	RS_CAUSE_NODE_FAIL = 1u << 3,  /* node failure */
	RS_CAUSE_ANY       = RS_CAUSE_EXIT | RS_CAUSE_SIGNAL |
			     RS_CAUSE_TIMEOUT | RS_CAUSE_NODE_FAIL,
};

#define RS_MAX_EXIT_RANGES 16

typedef struct rs_exit_range {
	uint8_t lo, hi;                /* inclusive, 1..255 */
} rs_exit_range_t;

enum rs_exhausted { RS_EXHAUSTED_HOLD = 0, RS_EXHAUSTED_FAIL = 1 };

/* Bits of rs_spec_t.set: which keys the user gave explicitly. */
enum rs_key {
	RS_KEY_CKPT = 0, RS_KEY_SCRATCH, RS_KEY_SIGNAL, RS_KEY_GRACE,
	RS_KEY_KEEP, RS_KEY_RESTORE, RS_KEY_RETRIES, RS_KEY_REQUEUE_ON,
	RS_KEY_BACKOFF, RS_KEY_EXHAUSTED, RS_KEY_METRICS, RS_KEY_LEAD,
	RS_KEY_EVERY,
	RS_KEY_COUNT
};

typedef struct rs_spec {
	int off;                       /* `off`: no resilience for this job */
	int help;                      /* `help` was asked for */
	char ckpt[RS_PATH_MAX + 1];    /* "" = no checkpoints */
	char scratch[RS_PATH_MAX + 1]; /* "" = the job's TMPDIR */
	int signal;                    /* warning signal number */
	uint32_t grace;                /* seconds */
	uint32_t keep;                 /* >= 1 */
	int restore;                   /* 0/1 */
	uint32_t retries;
	unsigned causes;               /* enum rs_cause bits */
	rs_exit_range_t exits[RS_MAX_EXIT_RANGES]; /* exit:N / exit:N-M */
	unsigned nexits;
	uint32_t backoff;              /* seconds before a requeued attempt */
	uint32_t backoff_factor_milli; /* 1000 = fixed; 2000 = doubles */
	int exhausted;                 /* enum rs_exhausted */
	int metrics;                   /* 0/1 */
	uint32_t lead;                 /* seconds before the end; 0 = off */
	uint32_t every;                /* periodic interval; 0 = off */
	unsigned set;                  /* 1u << enum rs_key given explicitly */
} rs_spec_t;

/* Fill spec with the defaults (no checkpoint, USR1, grace 60 s, keep 2,
 * restore yes, retries 0, requeue_on any, backoff 0, exhausted hold,
 * metrics yes, lead 120 s (used only with ckpt=), every off). */
void rs_spec_defaults(rs_spec_t *spec);

/*
 * Parse text into spec (defaults first).  Errors: -EINVAL (bad key or value,
 * duplicate, empty element, trailing comma), -ERANGE (number out of range or
 * overflowing), -E2BIG (SPEC longer than RS_SPEC_MAX).  `off` and `help`
 * must stand alone.  NULL text is -EINVAL.
 */
int rs_spec_parse(const char *text, rs_spec_t *spec, rs_err_t *err);

/* Write the normalised SPEC (every key, canonical forms, fixed order) into
 * buf.  Returns 0, or -ENOSPC if len is too small (buf then holds "").
 * Parsing the output gives an equal spec. */
int rs_spec_format(const rs_spec_t *spec, char *buf, size_t len);

/* Human explanation of every key's effective value, one per line, for
 * `slurm-resilience check`.  Same return convention as rs_spec_format. */
int rs_spec_explain(const rs_spec_t *spec, char *buf, size_t len);

/* 1 if the attempt's end matches requeue_on: cause is one enum rs_cause
 * bit; exit_code is used for RS_CAUSE_EXIT. */
int rs_spec_cause_matches(const rs_spec_t *spec, unsigned cause,
			  int exit_code);

/* The grammar with worked examples, for --resilience=help. */
const char *rs_spec_help(void);

/* Comma-separated list of the valid keys, for error messages. */
const char *rs_spec_keys(void);

/* ---- value parsers shared with the site policy (pure) ---- */

/* "90", "90s", "2m", "1h", "1h30m", "1d" -> seconds.  Max 366 days. */
int rs_parse_duration(const char *s, uint32_t *out, rs_err_t *err);
/* Decimal unsigned in [min, max]; rejects sign, spaces, empty, overflow. */
int rs_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
		  rs_err_t *err);
/* "USR1", "SIGUSR1", "10" -> signal number (1..SIGRTMAX). */
int rs_parse_signal(const char *s, int *out, rs_err_t *err);
/* Canonical name ("USR1") of a signal, or NULL. */
const char *rs_signal_name(int sig);
/* Write a duration in its shortest canonical form ("1h30m", "0"). */
void rs_format_duration(uint32_t secs, char *buf, size_t len);
/* "yes"/"no" (also true/false, 1/0, on/off). */
int rs_parse_bool(const char *s, int *out, rs_err_t *err);

/* A Slurm time limit ("90" minutes, "MM:SS", "HH:MM:SS", "D-HH",
 * "D-HH:MM", "D-HH:MM:SS") -> seconds.  "INFINITE"/"UNLIMITED" give
 * -ENOENT (no limit), anything else -EINVAL. */
int rs_parse_slurm_time(const char *s, uint32_t *secs);

/* With checkpoints and a known time limit (seconds): refuse a lead= the
 * user set that, with grace, cannot fit it (-ERANGE naming both), and an
 * every= longer than the limit.  0 if it fits or nothing is known. */
int rs_spec_check_time_limit(const rs_spec_t *spec, uint32_t limit,
			     rs_err_t *err);

/* The self-timed warning's lead for a job with this time limit (seconds,
 * 0 = unknown): the user's lead= as given; the default (120 s) shrinks to
 * half the limit so that short jobs still checkpoint before their end. */
uint32_t rs_spec_effective_lead(const rs_spec_t *spec, uint32_t limit);

/* ckpt= and scratch= paths, as given and again after pattern expansion:
 * -EINVAL if a component is "." or ".." ("ckpt=/a/../b: '..' is not
 * allowed in ckpt=; give the folder's own path"), else 0.  key names the
 * option in the message. */
int rs_spec_check_path(const char *key, const char *path, rs_err_t *err);

/* Levenshtein distance, for "did you mean". */
unsigned rs_edit_distance(const char *a, const char *b);

#endif
