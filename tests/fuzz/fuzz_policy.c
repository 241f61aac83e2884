/* libFuzzer target: plugstack arguments (split on spaces, as Slurm does)
 * and the submit-time check of a fixed SPEC against them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *argv[64], *save = NULL, *tok;
	static rs_policy_t pol;
	rs_spec_t spec;
	rs_err_t e;
	int argc = 0;

	memcpy(text, data, size);
	text[size] = '\0';
	for (tok = strtok_r(text, " \n\t", &save); tok && argc < 64;
	     tok = strtok_r(NULL, " \n\t", &save))
		argv[argc++] = tok;
	if (rs_policy_parse(argc, argv, &pol, &e) == 0) {
		/* A SPEC that parses ('..' no longer does), then one that
		 * starts with a $VARIABLE (no static prefix to check). */
		if (rs_spec_parse("ckpt=/lustre/p/%u/%j,retries=3,backoff=1m,"
				  "every=1h", &spec, NULL))
			abort();
		rs_policy_check_spec(&pol, &spec, &e);
		if (rs_spec_parse("ckpt=$SCRATCH/%j,retries=1", &spec, NULL))
			abort();
		rs_policy_check_spec(&pol, &spec, &e);
		rs_policy_check_ckpt_path(&pol, "/lustre/p/x/1", &e);
	} else if (!e.msg[0]) {
		abort();
	}
	free(text);
	return 0;
}
