/* test_regress: one test per bug that fuzzing or the hostile-client tests
 * (issue 7) found in the shared code, so it stays fixed.  Each test names
 * the input that showed the bug. */
#include "test.h"

#include "frame.h"
#include "msg.h"
#include "name.h"

#include <uv.h>

/* test_hostile: names with the bidi isolates (U+2066..2069) and the Arabic
 * letter mark (U+061C) were accepted, though PROTOCOL.md excludes every
 * bidirectional formatting mark: "ad<LRI>min" displays as "admin". */
static void test_name_bidi_isolates_rejected(void) {
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
        ASSERT_STR(why, "name contains whitespace");
        ASSERT_EQ(name_fold(bad[i], strlen(bad[i]), fold), UV_EINVAL);
    }
    /* Neighbours that are ordinary characters stay valid. */
    ASSERT_EQ(name_check("a\xe2\x81\xb0" "b", 5, NULL), 0);   /* U+2070 SUPERSCRIPT ZERO */
    ASSERT_EQ(name_check("\xd8\x9b" "a", 3, NULL), 0);        /* U+061B ARABIC SEMICOLON */
}

/* The frame corpus: a length header announcing more than the limit must be
 * refused from its 4 header bytes alone, even split one byte per read. */
static void test_frame_oversize_header_bytewise(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    const char hdr[4] = {0x00, 0x01, 0x00, 0x01}; /* 65537 */
    const char *p;
    size_t n;
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(frame_reader_append(&r, hdr + i, 1), 0);
        ASSERT_EQ(frame_reader_next(&r, &p, &n), 0);
    }
    ASSERT_EQ(frame_reader_append(&r, hdr + 3, 1), 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &n), UV_E2BIG);
    frame_reader_free(&r);
}

/* The msg corpus: a map32 header claiming 4 billion entries in a 5-byte
 * payload is refused without allocating for them. */
static void test_msg_huge_map_header(void) {
    msg_in m;
    ASSERT_EQ(msg_parse(&m, "\xdf\xff\xff\xff\xff", 5), UV_EPROTO);
    ASSERT_EQ(msg_parse(&m, "\xdd\xff\xff\xff\xff", 5), UV_EPROTO);
}

/* fuzz_msg crash a8288a9d (UBSan: null pointer passed to memcmp in
 * msg_get): msgpack-c decodes an empty string with a NULL pointer, which
 * msg_get, msg_str's callers (memchr/memcpy of a list cursor "") and
 * msg_obj_cstr then passed to the string functions. */
static void test_msg_empty_string_never_null(void) {
    static const char p[] = "\x83\xa1t\xa1x\xa6" "cursor\xa0\xa0\xa1v";
    msg_in m;
    ASSERT_EQ(msg_parse(&m, p, sizeof p - 1), 0);
    const char *s = NULL;
    size_t n = 99;
    ASSERT_EQ(msg_str(&m, "cursor", &s, &n), 0);
    ASSERT(s != NULL);
    ASSERT_EQ(n, 0);
    ASSERT(memchr(s, 0, n) == NULL);
    ASSERT_EQ(msg_str(&m, "", &s, &n), 0); /* the empty key */
    ASSERT(s != NULL && n == 1 && s[0] == 'v');
    const msgpack_object *o;
    char out[8] = "junk";
    ASSERT_EQ(msg_get(&m, "cursor", &o), 0);
    ASSERT_EQ(msg_obj_cstr(o, out, sizeof out), 0);
    ASSERT_STR(out, "");
    msg_in_free(&m);
}

TEST_MAIN({"name_bidi_isolates_rejected", test_name_bidi_isolates_rejected},
          {"frame_oversize_header_bytewise", test_frame_oversize_header_bytewise},
          {"msg_huge_map_header", test_msg_huge_map_header},
          {"msg_empty_string_never_null", test_msg_empty_string_never_null})
