/* test_text.c - rs_text_escape(): what a user's bytes look like once they
 * reach a log line or a terminal, exactly, at every truncation point. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* Escape into a buffer of len bytes with guard bytes after it, and check
 * the guard is intact. */
static const char *_esc(const char *in, size_t n, size_t len)
{
	static char buf[256];

	ck_assert_uint_lt(len, sizeof(buf));
	memset(buf, 'Z', sizeof(buf));
	ck_assert_ptr_eq(rs_text_escape(buf, len, in, n), buf);
	for (size_t i = len; i < sizeof(buf); i++)
		ck_assert_int_eq(buf[i], 'Z');
	ck_assert_uint_lt(strlen(buf), len);
	return buf;
}

START_TEST(test_text_escape_control_bytes)
{
	ck_assert_str_eq(_esc("a\nb", 3, 64), "a\\x0ab");
	ck_assert_str_eq(_esc("\x1b[31mred\x1b[0m", 12, 64),
			 "\\x1b[31mred\\x1b[0m");
	ck_assert_str_eq(_esc("\x7f", 1, 64), "\\x7f");
	ck_assert_str_eq(_esc("\xff\x80", 2, 64), "\\xff\\x80");
	ck_assert_str_eq(_esc("a\\b", 3, 64), "a\\\\b");
	ck_assert_str_eq(_esc("\r\t", 2, 64), "\\x0d\\x09");
	/* n counts bytes: an embedded NUL is escaped, not an end */
	ck_assert_str_eq(_esc("a\0b", 3, 64), "a\\x00b");
	/* printable ASCII is kept as it is, space and tilde included */
	ck_assert_str_eq(_esc(" ~azAZ09%=\"'", 12, 64), " ~azAZ09%=\"'");
	ck_assert_str_eq(_esc("", 0, 64), "");
	ck_assert_str_eq(_esc(NULL, 5, 64), "");
}
END_TEST

START_TEST(test_text_escape_truncates_between_escapes)
{
	/* "ab\ncd" escapes to "ab\x0acd" (8 bytes + NUL) */
	static const char *const want[] = {
		[4] = "...",
		[5] = "a...",
		[6] = "ab...",
		[7] = "ab...",   /* "\x0a" would need 4 more plus "..." */
		[8] = "ab...",
		[9] = "ab\\x0acd",
		[10] = "ab\\x0acd",
	};

	for (size_t len = 4; len <= 10; len++)
		ck_assert_str_eq(_esc("ab\ncd", 5, len), want[len]);
	/* a line that fits exactly is not marked; one more byte is */
	ck_assert_str_eq(_esc("abc", 3, 4), "abc");
	ck_assert_str_eq(_esc("abcd", 4, 4), "...");
	ck_assert_str_eq(_esc("abcd", 4, 5), "abcd");
	ck_assert_str_eq(_esc("abcdefgh", 8, 8), "abcd...");
	/* a backslash escape is never cut either */
	ck_assert_str_eq(_esc("\\\\\\", 3, 6), "\\\\...");
	ck_assert_str_eq(_esc("\\\\\\", 3, 7), "\\\\\\\\\\\\");
	ck_assert_str_eq(_esc("x\\\\\\", 4, 7), "x\\\\...");
	/* every length of a long all-escaped input: whole escapes + "..." */
	for (size_t len = 4; len < 40; len++) {
		const char *s = _esc("\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c",
				     10, len);
		size_t l = strlen(s);

		ck_assert_uint_ge(l, 3);
		ck_assert_str_eq(s + l - 3, "...");
		ck_assert_uint_eq((l - 3) % 4, 0);
		ck_assert_uint_le(l, len - 1);
		ck_assert_uint_gt(l + 4, len - 1); /* no room wasted */
	}
	ck_assert_str_eq(_esc("\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c", 10, 41),
			 "\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\x0b\\x0c");
}
END_TEST

START_TEST(test_text_escape_below_the_contract_stays_in_bounds)
{
	/* len < 4 is outside the contract: still NUL-terminated, in bounds */
	ck_assert_str_eq(_esc("abc", 3, 1), "");
	ck_assert_str_eq(_esc("\n", 1, 3), "");
	ck_assert_ptr_null(rs_text_escape(NULL, 10, "a", 1));
}
END_TEST

START_TEST(test_text_escape_str)
{
	char buf[32];

	ck_assert_str_eq(rs_text_escape_str(buf, sizeof(buf), "x\n[2026] y"),
			 "x\\x0a[2026] y");
	ck_assert_str_eq(rs_text_escape_str(buf, sizeof(buf), NULL), "");
	ck_assert_str_eq(rs_text_escape_str(buf, 4, "abcd"), "...");
}
END_TEST

START_TEST(test_text_is_printable)
{
	ck_assert_int_eq(rs_text_is_printable(""), 1);
	ck_assert_int_eq(rs_text_is_printable(" signal ~\\"), 1);
	ck_assert_int_eq(rs_text_is_printable("a\nb"), 0);
	ck_assert_int_eq(rs_text_is_printable("\x1b[2J"), 0);
	ck_assert_int_eq(rs_text_is_printable("\x7f"), 0);
	ck_assert_int_eq(rs_text_is_printable("caf\xc3\xa9"), 0);
	ck_assert_int_eq(rs_text_is_printable("\t"), 0);
	ck_assert_int_eq(rs_text_is_printable(NULL), 0);
}
END_TEST

static Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("escape");

	tcase_add_test(tc, test_text_escape_control_bytes);
	tcase_add_test(tc, test_text_escape_truncates_between_escapes);
	tcase_add_test(tc, test_text_escape_below_the_contract_stays_in_bounds);
	tcase_add_test(tc, test_text_escape_str);
	suite_add_tcase(s, tc);
	tc = tcase_create("printable");
	tcase_add_test(tc, test_text_is_printable);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(text_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
