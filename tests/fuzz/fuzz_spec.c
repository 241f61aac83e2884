/* libFuzzer target: the SPEC parser.  Invariants checked beyond "no crash,
 * no UB": every accepted SPEC normalises, and the normal form parses back
 * to the same normal form. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char norm[RS_SPEC_MAX * 2], norm2[RS_SPEC_MAX * 2], expl[8192];
	rs_spec_t s, s2;
	rs_err_t e;

	memcpy(text, data, size);
	text[size] = '\0';
	if (rs_spec_parse(text, &s, &e) == 0 && !s.help) {
		if (rs_spec_format(&s, norm, sizeof(norm)))
			abort();
		if (rs_spec_parse(norm, &s2, &e))
			abort();
		if (rs_spec_format(&s2, norm2, sizeof(norm2)) ||
		    strcmp(norm, norm2))
			abort();
		if (rs_spec_explain(&s, expl, sizeof(expl)))
			abort();
	} else if (strlen(e.msg) == 0 && !s.help) {
		abort(); /* every refusal says why */
	}
	free(text);
	return 0;
}
