/*
 * cli.h - subcommands of the slurm-resilience CLI.  src/cli.c dispatches;
 * each src/cli_<name>.c implements one family.  Each returns the process
 * exit status (0 success, 1 failure or invalid input, 2 usage error unless
 * the subcommand documents otherwise) and prints its own messages.
 */
#ifndef RS_CLI_H
#define RS_CLI_H

#include <stddef.h>

int rs_cli_check(int argc, char **argv);   /* check SPEC          (cli.c) */
int rs_cli_config(int argc, char **argv);  /* config ARGS...      (cli.c) */
int rs_cli_ckpt(int argc, char **argv);    /* ckpt save|restore|list|verify|ready */
/* path made absolute against the current folder (not resolved); 0 or -1, errno */
int rs_cli_abspath(const char *path, char *out, size_t len);
int rs_cli_flush(int argc, char **argv);   /* flush the metrics spool */
int rs_cli_metrics(int argc, char **argv); /* metrics emit|list|check (cli_flush.c) */
int rs_cli_status(int argc, char **argv);  /* status JOBID|CKPT_DIR */
int rs_cli_poll_end(int argc, char **argv); /* the plugin's end-time poller */
int rs_cli_apply(int argc, char **argv);   /* carry out recorded decisions */

/* Carry out the decisions waiting in dir (decision.h), passing again for
 * up to for_s seconds while some wait; 0 none left, 1 some left. */
int rs_cli_apply_dir(const char *dir, long for_s, int quiet);
/* The same for SPOOL_DIR/decisions-CLUSTER of this slurm.conf's cluster
 * (root only; 0 for anyone else). */
int rs_cli_apply_spool(const char *spool_dir, long for_s, int quiet);

/* Initialise libslurm once, before the first call that talks to Slurm
 * (exits with Slurm's message if slurm.conf cannot be read). */
void rs_cli_slurm_init(void);

#endif
