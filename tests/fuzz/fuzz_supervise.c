/* libFuzzer target: what the supervisor parses.  The status line is the
 * one that matters most: the plugin reads it as root from a file the user
 * can write.  Also the option parser (argv split on spaces) and the
 * end-time file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char a[RS_SUPERVISE_STATUS_MAX], b[RS_SUPERVISE_STATUS_MAX];
	char *text = malloc(size + 1), *argv[64], *save = NULL, *tok;
	rs_supervise_status_t s, t;
	rs_supervise_opts_t o;
	rs_err_t e;
	double end;
	int argc = 1;

	memcpy(text, data, size);
	text[size] = '\0';

	e.msg[0] = '\0';
	if (rs_supervise_status_parse(text, &s, &e) == 0) {
		/* What parses formats, and formats back to the same line. */
		if (rs_supervise_status_format(&s, a, sizeof(a)) < 0)
			abort();
		if (rs_supervise_status_parse(a, &t, NULL) != 0)
			abort();
		if (rs_supervise_status_format(&t, b, sizeof(b)) < 0 || strcmp(a, b) != 0)
			abort();
	} else if (!e.msg[0]) {
		abort();
	}
	rs_supervise_parse_end_time(text, &end, NULL);

	argv[0] = "sup";
	for (tok = strtok_r(text, " \n\t", &save); tok && argc < 63;
	     tok = strtok_r(NULL, " \n\t", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	e.msg[0] = '\0';
	if (rs_supervise_parse(argc, argv, &o, &e) != 0 && !e.msg[0])
		abort();
	free(text);
	return 0;
}
