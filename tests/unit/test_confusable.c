/* test_confusable: the tracker's look-alike rules (tracker/confusable.c,
 * ICU's spoof checker): skeletons that match for names that look alike
 * and differ for names that do not, and the script rules of TR39's
 * moderately restrictive level.  Whatever ICU version runs: the cases are
 * ones the confusables data has held for years. */
#include "test.h"

#include "../../tracker/confusable.h"
#include "name.h"

#include <uv.h>

static void skel(const char *name, char out[CONF_SKELETON_BUFLEN]) {
    char folded[NAME_BUFLEN];
    ASSERT_EQ(name_fold(name, strlen(name), folded), 0);
    int e = conf_skeleton(folded, strlen(folded), out);
    if (e)
        fprintf(stderr, "conf_skeleton(%s): %s\n", name, uv_strerror(e));
    ASSERT_EQ(e, 0);
}

static void alike(const char *a, const char *b) {
    char sa[CONF_SKELETON_BUFLEN], sb[CONF_SKELETON_BUFLEN];
    skel(a, sa);
    skel(b, sb);
    if (strcmp(sa, sb) != 0) {
        fprintf(stderr, "%s and %s should look alike: skeletons %s and %s\n", a, b, sa, sb);
        abort();
    }
}

static void unlike(const char *a, const char *b) {
    char sa[CONF_SKELETON_BUFLEN], sb[CONF_SKELETON_BUFLEN];
    skel(a, sa);
    skel(b, sb);
    if (strcmp(sa, sb) == 0) {
        fprintf(stderr, "%s and %s should differ: both skeletons are %s\n", a, b, sa);
        abort();
    }
}

static void init_and_version(void) {
    char err[256] = "";
    ASSERT_EQ(conf_init(err, sizeof err), 0);
    ASSERT_STR(err, "");
    const char *v = conf_version();
    ASSERT(strncmp(v, "ICU ", 4) == 0);
    ASSERT(strstr(v, ", Unicode ") != NULL);
    ASSERT_STR(conf_version(), v); /* the same every time */
}

static void lookalikes(void) {
    alike("alice", "\xd0\xb0lice");                  /* Cyrillic а (U+0430) */
    alike("alice", "\xd0\xb0lic\xd0\xb5");           /* and Cyrillic е */
    alike("paypal", "p\xd0\xb0yp\xd0\xb0l");
    alike("Alice", "ALICE");                          /* case: folded first */
    alike("bill", "bi11");                            /* digit one */
    alike("admin", "adrnin");                         /* m and rn */
    alike("google", "g00gle");                        /* zeros: O (after folding o) */
    alike("\xc3\xa9mile", "e\xcc\x81mile");           /* precomposed é and e + U+0301 */
    alike("scope", "\xd1\x95\xd1\x81\xd0\xbe\xd1\x80\xd0\xb5"); /* all Cyrillic: ѕсоре */
}

static void different(void) {
    unlike("alice", "alicf");
    unlike("alice", "bob");
    unlike("user01", "user02");
    unlike("\xe5\xb1\xb1\xe7\x94\xb0", "\xe7\x94\xb0\xe5\xb1\xb1"); /* 山田, 田山 */
    unlike("\xc3\xa9mile", "emile");                 /* an accent is not nothing */
}

static void skeleton_limits(void) {
    char out[CONF_SKELETON_BUFLEN];
    /* U+FDFA has the longest mapping of the data: 32 of them still fit. */
    char big[NAME_BUFLEN] = "";
    for (int i = 0; i < NAME_MAX_CHARS; i++)
        strcat(big, "\xef\xb7\xba");
    ASSERT_EQ(conf_skeleton(big, strlen(big), out), 0);
    ASSERT(strlen(out) > strlen(big));
    ASSERT_EQ(conf_skeleton("a\xff", 2, out), UV_EINVAL);
    ASSERT_EQ(conf_skeleton("\xed\xa0\x80", 3, out), UV_EINVAL); /* a surrogate */
}

static int check(const char *name) {
    return conf_check(name, strlen(name), NULL);
}

static const char *refused_why(const char *name) {
    const char *why = NULL;
    ASSERT_EQ(conf_check(name, strlen(name), &why), UV_EINVAL);
    ASSERT(why != NULL && strncmp(why, "name ", 5) == 0);
    return why;
}

static void scripts(void) {
    /* One script, any of them. */
    ASSERT_EQ(check("alice"), 0);
    ASSERT_EQ(check("\xc3\x89mile"), 0);                                     /* Émile */
    ASSERT_EQ(check("\xd1\x81\xd0\xb5\xd1\x80\xd0\xb3\xd0\xb5\xd0\xb9"), 0); /* сергей */
    ASSERT_EQ(check("\xce\xb5\xce\xbb\xce\xad\xce\xbd\xce\xb7"), 0);         /* ελένη */
    ASSERT_EQ(check("\xe5\xb1\xb1\xe7\x94\xb0"), 0);                         /* 山田 */
    ASSERT_EQ(check("bob_42"), 0);                    /* digits and _ go with any */
    ASSERT_EQ(check("\xf0\x9f\x98\x80\xf0\x9f\x98\x80"), 0);                 /* emoji */
    /* Latin with the scripts TR39 lets it mix with. */
    ASSERT_EQ(check("taro\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86\xe5\xb1\xb1\xe7\x94\xb0"), 0);
                                                      /* Latin, Hiragana, Han */
    ASSERT_EQ(check("tokyo\xe3\x83\x88\xe3\x82\xad\xe3\x83\xa7"), 0);       /* Latin, Katakana */
    ASSERT_EQ(check("kim\xea\xb9\x80"), 0);          /* Latin, Hangul */
    ASSERT_EQ(check("ali\xd7\x90"), 0);              /* Latin and Hebrew: moderately */
    /* Latin with Cyrillic or Greek: look-alike material. */
    const char *why = refused_why("\xd0\xb0lice");    /* а + lice */
    ASSERT(strstr(why, "mixes scripts") != NULL);
    refused_why("p\xd0\xb0yp\xd0\xb0l");
    refused_why("\xce\xa9mega");                     /* Ω + mega */
    refused_why("sergey\xd1\x81");
    /* Two scripts that are not Latin, and not Han with kana or Hangul. */
    refused_why("\xd7\x90\xd8\xa8");                 /* Hebrew, Arabic */
}

static void numbers_and_marks(void) {
    const char *why = refused_why("a1\xd9\xa3");      /* ASCII 1, Arabic-Indic 3 */
    ASSERT(strstr(why, "digits") != NULL);
    why = refused_why("e\xcc\x81\xcc\x81");           /* e, U+0301 twice */
    ASSERT(strstr(why, "combining mark") != NULL);
    ASSERT_EQ(check("e\xcc\x81"), 0);                 /* once is an accent */
    why = refused_why("ali\xcc\x87" "ce");           /* i + U+0307: the dot it has */
    ASSERT(strstr(why, "combining mark") != NULL);
}

TEST_MAIN(T(init_and_version), T(lookalikes), T(different), T(skeleton_limits), T(scripts),
          T(numbers_and_marks))
