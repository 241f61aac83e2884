/*
 * jobref.h - a job as a person names it on the command line: "405"
 * (a job id), "405_10" (task 10 of array job 405), "405+1" (component 1
 * of heterogeneous job 405).  Pure; 0 / -EINVAL.
 */
#ifndef RS_JOBREF_H
#define RS_JOBREF_H

#include <stdint.h>

typedef enum { RS_JOBREF_JOB, RS_JOBREF_ARRAY_TASK, RS_JOBREF_HET } rs_jobref_kind_t;

typedef struct rs_jobref {
	rs_jobref_kind_t kind;
	uint32_t job;     /* 1..4294967293 (Slurm's NO_VAL/INFINITE excluded) */
	uint32_t index;   /* array task id (0..4294967293) or het offset */
} rs_jobref_t;

/* Whole decimal numbers only: no sign, no spaces, no leading "0x". */
int rs_jobref_parse(const char *s, rs_jobref_t *ref);

#endif
