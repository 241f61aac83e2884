/* libFuzzer target: the metrics event parser (what `metrics emit --event`
 * reads), and the invariants of every serialiser on what it accepts:
 * JSON round-trips byte for byte, the ClickHouse row is one line, the
 * Prometheus text ends in LF and has no CR, errors always carry a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), *a = NULL, *b = NULL, *row = NULL, *prom = NULL,
	     *path = NULL, *am = NULL, *aj = NULL;
	rs_event_t ev, back;
	rs_err_t e;

	memcpy(text, data, size);
	text[size] = '\0';
	e.msg[0] = '\0';
	if (rs_event_from_json(text, &ev, &e) != 0) {
		if (!e.msg[0] || ev.cluster)
			abort();
		free(text);
		return 0;
	}
	if (rs_event_to_json(&ev, &a, &e) || rs_event_from_json(a, &back, &e) ||
	    rs_event_to_json(&back, &b, &e) || strcmp(a, b) != 0)
		abort();
	if (rs_event_to_clickhouse(&ev, &row, &e) || strchr(row, '\n') != row + strlen(row) - 1)
		abort();
	if (rs_event_to_prometheus(&ev, &prom, &e) || strchr(prom, '\r') ||
	    prom[strlen(prom) - 1] != '\n')
		abort();
	if (rs_event_pushgateway_path(&ev, &path, &e) || strchr(path, '?') || strstr(path, "//"))
		abort();
	if (rs_event_to_alertmanager(&ev, &am, &e) || rs_event_to_alert_json(&ev, &aj, &e))
		abort();
	free(a);
	free(b);
	free(row);
	free(prom);
	free(path);
	free(am);
	free(aj);
	rs_event_free(&back);
	rs_event_free(&ev);
	free(text);
	return 0;
}
