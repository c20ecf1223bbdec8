/* confusable: ICU's spoof checker for the tracker's names (confusable.h).
 * One USpoofChecker, made once and only read afterwards (ICU allows
 * concurrent use of a checker that is not being changed). */
#include "confusable.h"

#include "name.h"

#include <pthread.h>
#include <stdio.h>
#include <unicode/uspoof.h>
#include <unicode/uversion.h>
#include <uv.h>

/* The checks conf_check runs; uspoof_check reports the failed ones. */
#if U_ICU_VERSION_MAJOR_NUM >= 62
#define CONF_HIDDEN_OVERLAY USPOOF_HIDDEN_OVERLAY
#else
#define CONF_HIDDEN_OVERLAY 0
#endif
#define CONF_CHECKS \
    (USPOOF_RESTRICTION_LEVEL | USPOOF_MIXED_NUMBERS | USPOOF_INVISIBLE | CONF_HIDDEN_OVERLAY)

static USpoofChecker *checker;
static UErrorCode init_status = U_ZERO_ERROR;
static char version[64];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void make_checker(void) {
    UErrorCode st = U_ZERO_ERROR;
    USpoofChecker *sc = uspoof_open(&st);
    if (U_SUCCESS(st))
        uspoof_setChecks(sc, CONF_CHECKS, &st);
    if (U_SUCCESS(st))
        uspoof_setRestrictionLevel(sc, USPOOF_MODERATELY_RESTRICTIVE);
    if (U_FAILURE(st)) {
        if (sc)
            uspoof_close(sc);
        init_status = st;
        return;
    }
    checker = sc;
    UVersionInfo icu, uni;
    char icu_s[U_MAX_VERSION_STRING_LENGTH], uni_s[U_MAX_VERSION_STRING_LENGTH];
    u_getVersion(icu);
    u_getUnicodeVersion(uni);
    u_versionToString(icu, icu_s);
    u_versionToString(uni, uni_s);
    snprintf(version, sizeof version, "ICU %s, Unicode %s", icu_s, uni_s);
}

/* ICU would read a bad byte as U+FFFD, and two different bad names as one. */
static int valid_utf8(const char *s, size_t len) {
    unsigned cp;
    for (size_t i = 0, n; i < len; i += n)
        if ((n = utf8_decode((const unsigned char *)s + i, len - i, &cp)) == 0)
            return 0;
    return 1;
}

int conf_init(char *err, size_t errlen) {
    pthread_once(&once, make_checker);
    if (checker)
        return 0;
    if (err)
        snprintf(err, errlen,
                 "cannot start ICU's spoof checker (%s), which the tracker needs to refuse "
                 "look-alike names; check the ICU installation (Debian: libicu%d)",
                 u_errorName(init_status), U_ICU_VERSION_MAJOR_NUM);
    return UV_EIO;
}

const char *conf_version(void) {
    return conf_init(NULL, 0) == 0 ? version : "ICU unavailable";
}

int conf_check(const char *name, size_t len, const char **why) {
    const char *dummy;
    if (!why)
        why = &dummy;
    if (conf_init(NULL, 0)) {
        *why = "the tracker's spoof checker is not working";
        return UV_EIO;
    }
    if (!valid_utf8(name, len)) {
        *why = "name is not valid UTF-8";
        return UV_EINVAL;
    }
    UErrorCode st = U_ZERO_ERROR;
    int32_t failed = uspoof_checkUTF8(checker, name, (int32_t)len, NULL, &st);
    if (U_FAILURE(st)) {
        *why = "the tracker's spoof checker failed";
        return UV_EIO;
    }
    if (failed & USPOOF_RESTRICTION_LEVEL)
        *why = "name mixes scripts so that it can pass for another name (Latin with Cyrillic "
               "or Greek, for one); write it in one script (Latin may go with one other, or "
               "with Han and Japanese kana or Korean Hangul)";
    else if (failed & USPOOF_MIXED_NUMBERS)
        *why = "name mixes digits of different numbering systems";
    else if (failed & USPOOF_INVISIBLE)
        *why = "name repeats a combining mark, which shows as one";
    else if (failed & CONF_HIDDEN_OVERLAY)
        *why = "name puts a combining mark on a letter that already shows it (like i with a "
               "dot above)";
    else
        return 0;
    return UV_EINVAL;
}

int conf_skeleton(const char *folded, size_t len, char out[CONF_SKELETON_BUFLEN]) {
    if (conf_init(NULL, 0))
        return UV_EIO;
    if (!valid_utf8(folded, len))
        return UV_EINVAL;
    UErrorCode st = U_ZERO_ERROR;
    /* type 0: the one skeleton of TR39 (the case-specific kinds are gone
     * since ICU 58). */
    char raw[CONF_SKELETON_BUFLEN];
    int32_t n = uspoof_getSkeletonUTF8(checker, 0, folded, (int32_t)len, raw, sizeof raw, &st);
    if (st == U_BUFFER_OVERFLOW_ERROR || st == U_STRING_NOT_TERMINATED_WARNING ||
        n >= (int32_t)sizeof raw)
        return UV_ENOBUFS;
    if (U_FAILURE(st))
        return UV_EIO;
    /* The prototypes TR39 maps to keep their case: digit zero becomes
     * capital O, while the letter o of a folded name stays o.  Folding the
     * skeleton too makes "g00gle" look like "google", as it does. */
    return utf8_fold(raw, (size_t)n, out, CONF_SKELETON_BUFLEN);
}
