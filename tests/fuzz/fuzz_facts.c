/* libFuzzer target: the facts line root reads back in slurmstepd
 * (facts.h).  Beyond "no crash, no UB": every refusal says why, and what
 * parses formats and parses back to the same facts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "facts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), line[512];
	rs_facts_t f, g;
	rs_err_t e;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	e.msg[0] = '\0';
	if (rs_facts_parse(text, &f, &e) == 0) {
		if (rs_facts_format(&f, line, sizeof(line)) != 0)
			abort();
		if (rs_facts_parse(line, &g, &e) != 0)
			abort();
		if (f.uid != g.uid || f.restart_count != g.restart_count ||
		    f.nnodes != g.nnodes || f.batch != g.batch ||
		    f.end_time != g.end_time || f.time_limit != g.time_limit ||
		    strcmp(f.cluster, g.cluster))
			abort();
	} else if (!e.msg[0]) {
		abort();
	}
	free(text);
	return 0;
}
