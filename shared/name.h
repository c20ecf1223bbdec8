/* name: what a username may be, and its canonical (case-folded) form, which
 * is what the registry keys on and what both sides compare. */
#ifndef PARLEY_NAME_H
#define PARLEY_NAME_H

#include <stddef.h>

#define NAME_MAX_CHARS 32
#define NAME_MAX_BYTES (NAME_MAX_CHARS * 4)
#define NAME_BUFLEN (NAME_MAX_BYTES + 1)

/* 0 when s[0..len) is 1 to 32 characters of valid UTF-8 with no whitespace,
 * no control characters and no invisible formatting ones (zero-width, bidi
 * controls); UV_EINVAL otherwise, with a short reason in *why (a static
 * string) when why is not NULL.  The tracker holds a new name to more
 * (tracker/confusable.h): these are the rules both sides share. */
int name_check(const char *s, size_t len, const char **why);

/* Writes the case-folded form of a valid name, NUL-terminated, into out
 * (NAME_BUFLEN bytes).  0, or UV_EINVAL for an invalid name. */
int name_fold(const char *s, size_t len, char out[NAME_BUFLEN]);

/* name_fold's folding of any valid UTF-8 text, whatever its length and
 * characters (the tracker folds look-alike skeletons with it): into out,
 * cap bytes, NUL-terminated.  0, UV_EINVAL for invalid UTF-8, UV_ENOBUFS
 * when it does not fit. */
int utf8_fold(const char *s, size_t len, char *out, size_t cap);

/* Decodes one UTF-8 character at s (at most n bytes): its length, or 0 when
 * the bytes are not valid UTF-8 (overlong, surrogate, truncated, > U+10FFFF). */
size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp);

/* Encodes code point c (at most U+10FFFF, no surrogate) at out (4 bytes of
 * room): its length. */
size_t utf8_encode(unsigned c, char *out);

/* Copies n bytes of untrusted text into out (cap > 0 bytes, NUL-terminated)
 * for a log line or a hint passed on: valid UTF-8 without control
 * characters is kept, anything else becomes '?', and it is cut on a
 * character boundary to fit.  Returns the length written. */
size_t utf8_clean(const char *in, size_t n, char *out, size_t cap);

#endif
