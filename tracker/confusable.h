/* confusable: look-alike names (Unicode TR39, "Unicode Security
 * Mechanisms") through ICU's spoof checker.  The only file of either
 * program that calls ICU: the tracker alone links it, the peer never does.
 *
 * Two things a new name is held to, beyond name_check:
 * - its scripts: TR39's "moderately restrictive" level (one script; or
 *   Latin with one other script that is not Cyrillic, Greek or Cherokee;
 *   or Latin with Han and Hiragana/Katakana, Han and Bopomofo, or Han and
 *   Hangul), digits of one numbering system, no repeated combining mark
 *   nor one hidden on a letter that has it already;
 * - its skeleton: what it looks like, the same string for "alice" and
 *   "аlice" (Cyrillic а).  The registry stores each name's skeleton and
 *   refuses a new name whose skeleton another key's name has.
 *
 * The checker is made once, on first use, and kept for the process. */
#ifndef PARLEY_CONFUSABLE_H
#define PARLEY_CONFUSABLE_H

#include <stddef.h>

/* A skeleton of a name of at most 32 characters: ICU 72's longest mapping
 * (U+FDFA) is 30 bytes per code point, so this leaves room for data that
 * grows. */
#define CONF_SKELETON_BUFLEN 2048

/* Makes the checker.  0, or UV_EIO with a message for the operator in err
 * (ICU without its data, say).  Every function below calls it first. */
int conf_init(char *err, size_t errlen);

/* "ICU 72.1, Unicode 15.0": what the skeletons were computed with.  A
 * skeleton may change from one ICU to the next (its confusables data does),
 * so a database records this beside them and recomputes them all when it
 * differs (registry.c). */
const char *conf_version(void);

/* 0 when the name (valid for name_check, len bytes) passes the script
 * rules above; UV_EINVAL with a short reason in *why (a static string,
 * "name ..." like name_check's) otherwise, or UV_EIO when the checker
 * failed. */
int conf_check(const char *name, size_t len, const char **why);

/* The skeleton of a folded name (name_fold's form, len bytes), itself
 * folded (TR39's prototypes keep their case: digit 0 maps to capital O),
 * as UTF-8, NUL-terminated, into out.  0, UV_EINVAL when the bytes are not valid
 * UTF-8, UV_ENOBUFS when it does not fit, or UV_EIO. */
int conf_skeleton(const char *folded, size_t len, char out[CONF_SKELETON_BUFLEN]);

#endif
