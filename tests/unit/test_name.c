/* test_name: username rules (shared/name.c), the same on the tracker and in
 * every peer: 1 to 32 code points of valid UTF-8, no whitespace, no control
 * characters, no invisible formatting ones, compared by their case-folded
 * form. */
#include "name.h"
#include "test.h"

#include <uv.h>

static int check(const char *s) {
    return name_check(s, strlen(s), NULL);
}

/* Asserts s is refused, with a reason. */
static const char *refused(const char *s, size_t len) {
    const char *why = NULL;
    if (name_check(s, len, &why) != UV_EINVAL) {
        fprintf(stderr, "name accepted but should be refused:");
        for (size_t i = 0; i < len; i++)
            fprintf(stderr, " %02x", (unsigned char)s[i]);
        fprintf(stderr, "\n");
        abort();
    }
    ASSERT(why != NULL && *why != '\0');
    char out[NAME_BUFLEN];
    ASSERT_EQ(name_fold(s, len, out), UV_EINVAL);
    return why;
}

/* Asserts s is refused as invisible, not as whitespace: a user who sees
 * "alice" must not be told it holds a space. */
static void invisible(const char *s, size_t len) {
    ASSERT_STR(refused(s, len), "name contains an invisible or formatting character");
}

static void ascii(void) {
    ASSERT_EQ(check("alice"), 0);
    ASSERT_EQ(check("a"), 0);
    ASSERT_EQ(check("Bob_42"), 0);
    ASSERT_EQ(check("x-y.z@example!#"), 0);
    ASSERT_EQ(check("~"), 0);
}

static void accents(void) {
    ASSERT_EQ(check("Émile"), 0);
    ASSERT_EQ(check("zoë"), 0);
    ASSERT_EQ(check("Łukasz"), 0);
    ASSERT_EQ(check("Ελένη"), 0);
    ASSERT_EQ(check("Сергей"), 0);
}

static void cjk(void) {
    ASSERT_EQ(check("山田太郎"), 0);
    ASSERT_EQ(check("김민준"), 0);
    ASSERT_EQ(check("さくら"), 0);
}

static void emoji(void) {
    ASSERT_EQ(check("😀"), 0);
    ASSERT_EQ(check("cat🐈"), 0);
    ASSERT_EQ(check("\xf4\x8f\xbf\xbf"), 0); /* U+10FFFF, the last code point */
}

/* The limit counts characters, not bytes. */
static void length_32_vs_33(void) {
    char s[200];
    memset(s, 'a', 32);
    s[32] = '\0';
    ASSERT_EQ(check(s), 0);
    s[32] = 'a';
    s[33] = '\0';
    refused(s, 33);

    /* 32 emoji are 128 bytes and still one legal name. */
    s[0] = '\0';
    for (int i = 0; i < 32; i++)
        strcat(s, "😀");
    ASSERT_EQ(strlen(s), 128);
    ASSERT_EQ(check(s), 0);
    char out[NAME_BUFLEN];
    ASSERT_EQ(name_fold(s, strlen(s), out), 0);
    ASSERT_STR(out, s);
    strcat(s, "😀");
    refused(s, strlen(s));

    /* 32 two-byte letters. */
    s[0] = '\0';
    for (int i = 0; i < 32; i++)
        strcat(s, "É");
    ASSERT_EQ(check(s), 0);
    ASSERT_EQ(name_fold(s, strlen(s), out), 0);
    strcat(s, "é");
    refused(s, strlen(s));
}

static void empty(void) {
    refused("", 0);
}

static void space(void) {
    refused("alice bob", 9);
    refused(" alice", 6);
    refused("alice ", 6);
    refused(" ", 1);
}

static void tab(void) {
    refused("alice\tbob", 9);
    refused("alice\n", 6);
    refused("alice\r", 6);
    refused("a\vb", 3);
    refused("a\fb", 3);
}

static void control_chars(void) {
    refused("a\x01" "b", 3);
    refused("\x1b[31m", 5);
    refused("a\x7f", 2);
    refused("a\xc2\x80", 3);  /* U+0080, C1 */
    refused("a\xc2\x9f", 3);  /* U+009F, C1 */
    refused("a\0b", 3);       /* an embedded NUL */
    ASSERT_EQ(check("a\xc2\xa1"), 0); /* U+00A1 is the first after C1 */
}

static void unicode_whitespace(void) {
    static const char ws[] = "name contains whitespace";
    ASSERT_STR(refused("a\xc2\xa0" "b", 4), ws);         /* no-break space */
    ASSERT_STR(refused("a\xe3\x80\x80" "b", 5), ws);     /* ideographic space */
    ASSERT_STR(refused("a\xe2\x80\x83" "b", 5), ws);     /* em space */
    ASSERT_STR(refused("a\xe2\x80\x8a" "b", 5), ws);     /* hair space, the last of U+2000.. */
    ASSERT_STR(refused("a\xe2\x80\xa8" "b", 5), ws);     /* line separator */
    refused("a\xc2\x85" "b", 4);         /* next line (a C1 control, said so) */
}

static void zero_width_and_bidi(void) {
    invisible("ali\xe2\x80\x8b" "ce", 8);  /* U+200B zero-width space */
    invisible("ali\xe2\x80\x8c" "ce", 8);  /* U+200C zero-width non-joiner */
    invisible("ali\xe2\x80\x8d" "ce", 8);  /* U+200D zero-width joiner */
    invisible("ali\xe2\x81\xa0" "ce", 8);  /* U+2060 word joiner */
    invisible("ali\xe2\x81\xa4" "ce", 8);  /* U+2064 invisible plus */
    invisible("\xef\xbb\xbf" "alice", 8);  /* U+FEFF BOM */
    invisible("\xe2\x80\xaa" "alice", 8);  /* U+202A left-to-right embedding */
    invisible("\xe2\x80\xae" "ecila", 8);  /* U+202E right-to-left override */
    invisible("\xe2\x80\x8e" "alice", 8);  /* U+200E left-to-right mark */
    invisible("\xe2\x80\x8f" "alice", 8);  /* U+200F right-to-left mark */
}

static void invalid_utf8(void) {
    refused("\xc0\xaf", 2);              /* overlong '/' */
    refused("\xe0\x80\xaf", 3);          /* overlong, 3 bytes */
    refused("\xf0\x80\x80\xaf", 4);      /* overlong, 4 bytes */
    refused("\xc1\xbf", 2);              /* overlong */
    refused("a\xed\xa0\x80", 4);         /* U+D800, a surrogate */
    refused("a\xed\xbf\xbf", 4);         /* U+DFFF */
    refused("a\xc3", 2);                 /* truncated 2-byte */
    refused("a\xe2\x82", 3);             /* truncated 3-byte */
    refused("\xf0\x9f\x98", 3);          /* truncated emoji */
    refused("a\xa9" "b", 3);             /* lone continuation byte */
    refused("a\xc3" "b", 3);             /* lead without continuation */
    refused("\xf4\x90\x80\x80", 4);      /* above U+10FFFF */
    refused("\xf8\x88\x80\x80\x80", 5);  /* 5-byte form */
    refused("\xff", 1);
    refused("\xfe", 1);
}

static void utf8_decoder(void) {
    unsigned cp = 0;
    ASSERT_EQ(utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    ASSERT_EQ(cp, 'A');
    ASSERT_EQ(utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
    ASSERT_EQ(cp, 0xe9);
    ASSERT_EQ(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp), 3);
    ASSERT_EQ(cp, 0x20ac);
    ASSERT_EQ(utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
    ASSERT_EQ(cp, 0x1f600);
    /* The length limit is respected even when more bytes follow in memory. */
    ASSERT_EQ(utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 3, &cp), 0);
    ASSERT_EQ(utf8_decode((const unsigned char *)"A", 0, &cp), 0);
}

static void fold_equal(const char *a, const char *b) {
    char fa[NAME_BUFLEN], fb[NAME_BUFLEN];
    ASSERT_EQ(name_fold(a, strlen(a), fa), 0);
    ASSERT_EQ(name_fold(b, strlen(b), fb), 0);
    ASSERT_STR(fa, fb);
}

static void case_folding(void) {
    fold_equal("Alice", "alice");
    fold_equal("ALICE", "alice");
    fold_equal("Émile", "éMILE");
    fold_equal("ÉMILE", "émile");
    fold_equal("ΕΛΈΝΗ", "ελένη");
    fold_equal("СЕРГЕЙ", "сергей");
    char out[NAME_BUFLEN];
    ASSERT_EQ(name_fold("Alice", 5, out), 0);
    ASSERT_STR(out, "alice");
    ASSERT_EQ(name_fold("Émile", strlen("Émile"), out), 0);
    ASSERT_STR(out, "émile");
    /* Scripts without case and symbols are left alone. */
    ASSERT_EQ(name_fold("山田😀_1", strlen("山田😀_1"), out), 0);
    ASSERT_STR(out, "山田😀_1");
    /* Different names stay different. */
    char o2[NAME_BUFLEN];
    ASSERT_EQ(name_fold("alice", 5, out), 0);
    ASSERT_EQ(name_fold("alicf", 5, o2), 0);
    ASSERT(strcmp(out, o2) != 0);
}

/* Folding must not depend on the process locale (the C locale at start-up
 * knows no accented letters). */
static void folding_ignores_locale(void) {
    char out[NAME_BUFLEN];
    ASSERT_EQ(name_fold("ÉMILE", strlen("ÉMILE"), out), 0);
    ASSERT_STR(out, "émile");
}

/* Regression, found by the hostile-client test
 * test_hostile_names_rejected_and_db_clean (now in integration/test_malformed):
 * names with the bidi isolates (U+2066..2069) and the Arabic letter mark
 * (U+061C) were accepted, though PROTOCOL.md excludes every bidirectional
 * formatting mark: "ad<LRI>min" displays as "admin". */
static void bidi_isolates_rejected(void) {
    static const char *const bad[] = {
        "ad\xe2\x81\xa6min",     /* U+2066 LEFT-TO-RIGHT ISOLATE */
        "ad\xe2\x81\xa7min",     /* U+2067 RIGHT-TO-LEFT ISOLATE */
        "ad\xe2\x81\xa8min",     /* U+2068 FIRST STRONG ISOLATE */
        "admin\xe2\x81\xa9",     /* U+2069 POP DIRECTIONAL ISOLATE */
        "ad\xd8\x9cmin",         /* U+061C ARABIC LETTER MARK */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = NULL;
        char fold[NAME_BUFLEN];
        ASSERT_EQ(name_check(bad[i], strlen(bad[i]), &why), UV_EINVAL);
        ASSERT_STR(why, "name contains an invisible or formatting character");
        ASSERT_EQ(name_fold(bad[i], strlen(bad[i]), fold), UV_EINVAL);
    }
    /* Neighbours that are ordinary characters stay valid. */
    ASSERT_EQ(name_check("a\xe2\x81\xb0" "b", 5, NULL), 0);   /* U+2070 SUPERSCRIPT ZERO */
    ASSERT_EQ(name_check("\xd8\x9b" "a", 3, NULL), 0);        /* U+061B ARABIC SEMICOLON */
}

TEST_MAIN(T(ascii), T(accents), T(cjk), T(emoji), T(length_32_vs_33), T(empty), T(space),
          T(tab), T(control_chars), T(unicode_whitespace), T(zero_width_and_bidi),
          T(invalid_utf8), T(utf8_decoder), T(case_folding), T(folding_ignores_locale),
          T(bidi_isolates_rejected))
