/* text.c - user text made safe for a log line or a terminal.  See text.h. */
#include <string.h>

#include "text.h"

/* Bytes one input byte becomes: itself, "\\", or "\xhh". */
static size_t _width(unsigned char c)
{
	if (c == '\\')
		return 2;
	return c >= 0x20 && c <= 0x7e ? 1 : 4;
}

char *rs_text_escape(char *out, size_t len, const char *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, i, need = 0, room;

	if (!out || len == 0)
		return out;
	out[0] = '\0';
	if (!in)
		return out;
	/* Does all of it fit?  (Stop counting as soon as it cannot.) */
	for (i = 0; i < n && need < len; i++)
		need += _width(p[i]);
	/* Otherwise keep whole escapes only, and room for "..." after them
	 * (len >= 4 by contract; below that the mark is dropped). */
	room = need < len ? len - 1 : (len >= 4 ? len - 4 : len - 1);
	for (i = 0; i < n; i++) {
		size_t w = _width(p[i]);

		if (o + w > room)
			break;
		if (w == 1) {
			out[o++] = (char)p[i];
		} else if (w == 2) {
			out[o++] = '\\';
			out[o++] = '\\';
		} else {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[p[i] >> 4];
			out[o++] = hex[p[i] & 15];
		}
	}
	if (i < n && len >= 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

char *rs_text_escape_str(char *out, size_t len, const char *in)
{
	return rs_text_escape(out, len, in ? in : "", in ? strlen(in) : 0);
}

int rs_text_is_printable(const char *s)
{
	if (!s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}
