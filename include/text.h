/*
 * text.h - text that came from a user, made safe for a log line, a
 * terminal or an event.  Pure.
 *
 * Whatever root reads from a user (a status pipe, a ledger, a manifest,
 * an environment variable) may hold newlines (forged log lines), terminal
 * escape sequences, or invalid bytes.  Before such text reaches a log, a
 * terminal or an event it goes through rs_text_escape(): printable ASCII
 * (0x20-0x7e) is kept except the backslash, which becomes "\\"; every
 * other byte becomes "\xHH".  The output is always NUL-terminated and
 * never longer than len - 1 bytes; an escape is never cut in half (a
 * truncated result ends with "...").
 */
#ifndef RS_TEXT_H
#define RS_TEXT_H

#include <stddef.h>

/* Escape n bytes of in into out (len >= 4).  Returns out. */
char *rs_text_escape(char *out, size_t len, const char *in, size_t n);

/* The same for a NUL-terminated string (NULL gives ""). */
char *rs_text_escape_str(char *out, size_t len, const char *in);

/* 1 if s (NUL-terminated) holds only printable ASCII (0x20-0x7e), else 0. */
int rs_text_is_printable(const char *s);

#endif
