/* test_msg: the codec (shared/msg.c).  Every field kind must survive a round
 * trip, and every way a frame can be malformed must come back as the code a
 * dispatcher turns into an error frame: UV_EPROTO for a payload that is not
 * one map with a string "t", UV_ENOENT for a missing field, UV_EINVAL for a
 * field of the wrong type or size. */
#include "frame.h"
#include "msg.h"
#include "test.h"

#include <uv.h>

/* Finishes m and checks the header against the payload; returns the payload
 * (pointing into *buf, which the caller frees). */
static const char *finish(msg_out *m, char **buf, size_t *len) {
    size_t total;
    ASSERT_EQ(msg_out_finish(m, FRAME_MAX_DEFAULT, buf, &total), 0);
    ASSERT(total > FRAME_HEADER);
    const unsigned char *h = (const unsigned char *)*buf;
    uint32_t n = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    ASSERT_EQ(n, total - FRAME_HEADER);
    *len = n;
    return *buf + FRAME_HEADER;
}

/* Packs an arbitrary msgpack value with the raw packer, for the frames the
 * encoder API cannot produce. */
typedef struct raw {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} raw;

static void raw_init(raw *r) {
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
}

static void raw_str(raw *r, const char *s) {
    msgpack_pack_str(&r->pk, strlen(s));
    msgpack_pack_str_body(&r->pk, s, strlen(s));
}

static void round_trip(void) {
    static const unsigned char key[32] = {1, 2, 3, 0, 255, 128};
    msg_out m;
    msg_out_init(&m, "register", 11);
    msg_put_str(&m, "name", "Émile");
    msg_put_strn(&m, "part", "abcdef", 3);
    msg_put_uint(&m, "u", UINT64_MAX);
    msg_put_uint(&m, "small", 7);
    msg_put_int(&m, "neg", INT64_MIN);
    msg_put_int(&m, "pos", 42);
    msg_put_bool(&m, "yes", true);
    msg_put_bool(&m, "no", false);
    msg_put_bin(&m, "key", key, sizeof key);
    msg_put_nil(&m, "gone");
    msg_put_key(&m, "endpoints");
    msgpack_pack_array(&m.pk, 2);
    msg_pack_str(&m, "127.0.0.1:1", 11);
    msg_pack_str(&m, "[::1]:2", 7);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);

    msg_in in;
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    ASSERT_STR(in.type, "register");
    const char *s;
    size_t n;
    ASSERT_EQ(msg_str(&in, "name", &s, &n), 0);
    ASSERT(n == strlen("Émile") && memcmp(s, "Émile", n) == 0);
    ASSERT_EQ(msg_str(&in, "part", &s, &n), 0);
    ASSERT(n == 3 && memcmp(s, "abc", 3) == 0);
    uint64_t u;
    ASSERT_EQ(msg_uint(&in, "u", &u), 0);
    ASSERT(u == UINT64_MAX);
    ASSERT_EQ(msg_uint(&in, "small", &u), 0);
    ASSERT_EQ(u, 7);
    int64_t i;
    ASSERT_EQ(msg_int(&in, "neg", &i), 0);
    ASSERT(i == INT64_MIN);
    ASSERT_EQ(msg_int(&in, "pos", &i), 0); /* a positive int reads as int too */
    ASSERT_EQ(i, 42);
    bool b;
    ASSERT_EQ(msg_bool(&in, "yes", &b), 0);
    ASSERT(b);
    ASSERT_EQ(msg_bool(&in, "no", &b), 0);
    ASSERT(!b);
    const unsigned char *bin;
    ASSERT_EQ(msg_bin(&in, "key", &bin, 32), 0);
    ASSERT(memcmp(bin, key, 32) == 0);
    ASSERT_EQ(msg_get(&in, "gone", &(const msgpack_object *){0}), UV_ENOENT); /* nil = absent */
    const msgpack_object_array *a;
    ASSERT_EQ(msg_array(&in, "endpoints", &a), 0);
    ASSERT_EQ(a->size, 2);
    char addr[64];
    ASSERT_EQ(msg_obj_cstr(&a->ptr[0], addr, sizeof addr), 0);
    ASSERT_STR(addr, "127.0.0.1:1");
    ASSERT_EQ(msg_obj_cstr(&a->ptr[1], addr, sizeof addr), 0);
    ASSERT_STR(addr, "[::1]:2");
    ASSERT_EQ(msg_obj_cstr(&a->ptr[1], addr, 7), UV_EINVAL); /* does not fit */
    msg_in_free(&in);
    free(buf);
}

/* Empty strings and binaries, and a map with only "t". */
static void round_trip_empty(void) {
    msg_out m;
    msg_out_init(&m, "ping", 2);
    msg_put_str(&m, "s", "");
    msg_put_bin(&m, "b", "", 0);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    ASSERT_STR(in.type, "ping");
    const char *s;
    size_t n = 99;
    ASSERT_EQ(msg_str(&in, "s", &s, &n), 0);
    ASSERT_EQ(n, 0);
    const unsigned char *b;
    ASSERT_EQ(msg_bin(&in, "b", &b, 0), 0);
    msg_in_free(&in);
    free(buf);

    msg_out_init(&m, "pong", 0);
    p = finish(&m, &buf, &len);
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    ASSERT_STR(in.type, "pong");
    msg_in_free(&in);
    free(buf);
}

static void missing_field(void) {
    msg_out m;
    msg_out_init(&m, "lookup", 1);
    msg_put_uint(&m, "id", 1);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    const char *s;
    size_t n;
    uint64_t u;
    int64_t i;
    bool b;
    const unsigned char *bin;
    const msgpack_object_array *a;
    ASSERT_EQ(msg_str(&in, "name", &s, &n), UV_ENOENT);
    ASSERT_EQ(msg_uint(&in, "x", &u), UV_ENOENT);
    ASSERT_EQ(msg_int(&in, "x", &i), UV_ENOENT);
    ASSERT_EQ(msg_bool(&in, "x", &b), UV_ENOENT);
    ASSERT_EQ(msg_bin(&in, "x", &bin, 32), UV_ENOENT);
    ASSERT_EQ(msg_array(&in, "x", &a), UV_ENOENT);
    /* Keys match exactly, not by prefix. */
    ASSERT_EQ(msg_uint(&in, "i", &u), UV_ENOENT);
    ASSERT_EQ(msg_uint(&in, "idx", &u), UV_ENOENT);
    msg_in_free(&in);
    free(buf);
}

static void wrong_type(void) {
    static const unsigned char key[31] = {0};
    msg_out m;
    msg_out_init(&m, "register", 6);
    msg_put_str(&m, "s", "text");
    msg_put_uint(&m, "u", 5);
    msg_put_int(&m, "neg", -5);
    msg_put_bool(&m, "b", true);
    msg_put_bin(&m, "key", key, sizeof key);
    msg_put_uint(&m, "big", UINT64_MAX);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    const char *s;
    size_t n;
    uint64_t u;
    int64_t i;
    bool b;
    const unsigned char *bin;
    const msgpack_object_array *a;
    ASSERT_EQ(msg_str(&in, "u", &s, &n), UV_EINVAL);
    ASSERT_EQ(msg_str(&in, "key", &s, &n), UV_EINVAL); /* bin is not str */
    ASSERT_EQ(msg_uint(&in, "s", &u), UV_EINVAL);
    ASSERT_EQ(msg_uint(&in, "neg", &u), UV_EINVAL);    /* negative is not uint */
    ASSERT_EQ(msg_uint(&in, "b", &u), UV_EINVAL);
    ASSERT_EQ(msg_int(&in, "s", &i), UV_EINVAL);
    ASSERT_EQ(msg_int(&in, "big", &i), UV_EINVAL);     /* does not fit int64 */
    ASSERT_EQ(msg_bool(&in, "u", &b), UV_EINVAL);
    ASSERT_EQ(msg_bin(&in, "s", &bin, 4), UV_EINVAL);  /* str is not bin */
    ASSERT_EQ(msg_bin(&in, "key", &bin, 32), UV_EINVAL); /* sizes are exact */
    ASSERT_EQ(msg_bin(&in, "key", &bin, 30), UV_EINVAL);
    ASSERT_EQ(msg_bin(&in, "key", &bin, 31), 0);
    ASSERT_EQ(msg_array(&in, "s", &a), UV_EINVAL);
    msg_in_free(&in);
    free(buf);
}

/* Each payload here must be refused by msg_parse with UV_EPROTO. */
static void expect_eproto(const char *data, size_t len) {
    msg_in in;
    ASSERT_EQ(msg_parse(&in, data, len), UV_EPROTO);
}

static void not_a_map(void) {
    raw r;
    raw_init(&r);
    msgpack_pack_array(&r.pk, 2);
    raw_str(&r, "t");
    raw_str(&r, "ping");
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    raw_str(&r, "ping");
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    msgpack_pack_uint32(&r.pk, 5);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    msgpack_pack_nil(&r.pk);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_destroy(&r.sb);
}

static void no_type(void) {
    raw r;
    raw_init(&r);
    /* no "t" */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "id");
    msgpack_pack_uint32(&r.pk, 1);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* empty map */
    msgpack_pack_map(&r.pk, 0);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* "t" not a string */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    msgpack_pack_uint32(&r.pk, 1);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* "t" as bin */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    msgpack_pack_bin(&r.pk, 4);
    msgpack_pack_bin_body(&r.pk, "ping", 4);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* "t" nil */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    msgpack_pack_nil(&r.pk);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* "t" empty */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    raw_str(&r, "");
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* "t" holding a NUL */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    msgpack_pack_str(&r.pk, 5);
    msgpack_pack_str_body(&r.pk, "pi\0ng", 5);
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_clear(&r.sb);
    /* "t" longer than any type name could be */
    msgpack_pack_map(&r.pk, 1);
    raw_str(&r, "t");
    raw_str(&r, "a_type_name_much_too_long_to_be_real");
    expect_eproto(r.sb.data, r.sb.size);
    msgpack_sbuffer_destroy(&r.sb);
}

static void trailing_bytes(void) {
    msg_out m;
    msg_out_init(&m, "ping", 0);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    char *more = malloc(len + 1);
    ASSERT(more);
    memcpy(more, p, len);
    more[len] = (char)0xc0; /* a whole nil after the map */
    expect_eproto(more, len + 1);
    /* Two maps in one payload. */
    char *two = malloc(2 * len);
    ASSERT(two);
    memcpy(two, p, len);
    memcpy(two + len, p, len);
    expect_eproto(two, 2 * len);
    free(two);
    free(more);
    free(buf);
}

/* Every strict prefix of a valid payload is truncated msgpack. */
static void truncated(void) {
    static const unsigned char key[32] = {9};
    msg_out m;
    msg_out_init(&m, "register", 3);
    msg_put_str(&m, "name", "alice");
    msg_put_bin(&m, "key", key, sizeof key);
    msg_put_uint(&m, "id", 1u << 20);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    for (size_t cut = 1; cut < len; cut++) {
        char *copy = malloc(cut); /* exact size so ASan catches over-reads */
        ASSERT(copy);
        memcpy(copy, p, cut);
        expect_eproto(copy, cut);
        free(copy);
    }
    free(buf);
}

static void garbage(void) {
    static const unsigned char bytes[][6] = {
        {0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1}, /* 0xc1 is never used */
        {0x81, 0xa1, 't', 0xc1, 0, 0},
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0x00}, /* map32 of 4G entries */
        {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, /* array32 of 4G entries */
    };
    for (size_t i = 0; i < sizeof bytes / sizeof *bytes; i++) {
        char *copy = malloc(6);
        ASSERT(copy);
        memcpy(copy, bytes[i], 6);
        expect_eproto(copy, 6);
        free(copy);
    }
}

/* Non-string keys are skipped, not mistaken for fields. */
static void odd_keys(void) {
    raw r;
    raw_init(&r);
    msgpack_pack_map(&r.pk, 3);
    raw_str(&r, "t");
    raw_str(&r, "ping");
    msgpack_pack_uint32(&r.pk, 1);
    msgpack_pack_uint32(&r.pk, 2);
    msgpack_pack_bin(&r.pk, 2);
    msgpack_pack_bin_body(&r.pk, "id", 2);
    msgpack_pack_uint32(&r.pk, 3);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, r.sb.data, r.sb.size), 0);
    uint64_t u;
    ASSERT_EQ(msg_uint(&in, "id", &u), UV_ENOENT);
    msg_in_free(&in);
    msgpack_sbuffer_destroy(&r.sb);
}

static void finish_over_limit(void) {
    char *big = malloc(FRAME_MAX_DEFAULT + 1);
    ASSERT(big);
    memset(big, 'a', FRAME_MAX_DEFAULT);
    big[FRAME_MAX_DEFAULT] = '\0';
    msg_out m;
    msg_out_init(&m, "msg", 1);
    msg_put_str(&m, "text", big);
    char *buf = NULL;
    size_t len = 0;
    ASSERT_EQ(msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &len), UV_E2BIG);
    ASSERT(buf == NULL); /* and no leak: m was released */

    /* The limit is on the payload: a payload of exactly max fits, one more
     * byte does not. */
    msg_out_init(&m, "msg", 1);
    msg_put_str(&m, "text", "0123456789");
    size_t payload = m.len - FRAME_HEADER;
    ASSERT_EQ(msg_out_finish(&m, payload - 1, &buf, &len), UV_E2BIG);
    msg_out_init(&m, "msg", 1);
    msg_put_str(&m, "text", "0123456789");
    ASSERT_EQ(msg_out_finish(&m, payload, &buf, &len), 0);
    ASSERT_EQ(len, payload + FRAME_HEADER);
    free(buf);
    free(big);
}

/* A frame starts in msg_out's inline buffer and moves to the heap when it
 * outgrows it; view and finish must give the same bytes either way. */
static void view_and_growth(void) {
    static const size_t sizes[] = {10, MSG_OUT_INLINE - 40, MSG_OUT_INLINE, 3 * MSG_OUT_INLINE, 40000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *text = malloc(sizes[i] + 1);
        ASSERT(text);
        for (size_t k = 0; k < sizes[i]; k++)
            text[k] = (char)('a' + k % 26);
        text[sizes[i]] = '\0';
        msg_out m;
        msg_out_init(&m, "msg", 2);
        msg_put_uint(&m, "id", 7);
        msg_put_str(&m, "text", text);
        const char *view;
        size_t vlen;
        ASSERT_EQ(msg_out_view(&m, FRAME_MAX_DEFAULT, &view, &vlen), 0);
        char *copy = malloc(vlen);
        ASSERT(copy);
        memcpy(copy, view, vlen);
        msg_out_discard(&m);

        msg_out_init(&m, "msg", 2);
        msg_put_uint(&m, "id", 7);
        msg_put_str(&m, "text", text);
        char *buf;
        size_t len;
        ASSERT_EQ(msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &len), 0);
        ASSERT_EQ(len, vlen);
        ASSERT(memcmp(buf, copy, len) == 0);
        ASSERT_EQ(((size_t)(unsigned char)buf[0] << 24 | (size_t)(unsigned char)buf[1] << 16 |
                   (size_t)(unsigned char)buf[2] << 8 | (unsigned char)buf[3]),
                  len - FRAME_HEADER); /* big-endian length prefix */

        msg_in in;
        ASSERT_EQ(msg_parse(&in, buf + FRAME_HEADER, len - FRAME_HEADER), 0);
        const char *got;
        size_t glen;
        uint64_t id;
        ASSERT_EQ(msg_str(&in, "text", &got, &glen), 0);
        ASSERT_EQ(glen, sizes[i]);
        ASSERT(memcmp(got, text, glen) == 0);
        ASSERT_EQ(msg_uint(&in, "id", &id), 0);
        ASSERT_EQ(id, 7);
        msg_in_free(&in);
        free(buf);
        free(copy);
        free(text);
    }
}

static void discard(void) {
    msg_out m;
    msg_out_init(&m, "msg", 1);
    msg_put_str(&m, "text", "never sent");
    msg_out_discard(&m); /* LeakSanitizer checks this frees everything */
}

static void error_frame(void) {
    char *buf;
    size_t total;
    ASSERT_EQ(msg_error_frame("not_found", "no user named bob", 17, &buf, &total), 0);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, buf + FRAME_HEADER, total - FRAME_HEADER), 0);
    ASSERT_STR(in.type, "error");
    char code[32], text[128];
    msg_error_fields(&in, code, sizeof code, text, sizeof text);
    ASSERT_STR(code, "not_found");
    ASSERT_STR(text, "no user named bob");
    uint64_t id;
    ASSERT_EQ(msg_uint(&in, "id", &id), 0);
    ASSERT_EQ(id, 17);
    msg_in_free(&in);
    free(buf);

    /* id 0 means none: the field is left out. */
    ASSERT_EQ(msg_error_frame("bad_frame", "zero-length frame", 0, &buf, &total), 0);
    ASSERT_EQ(msg_parse(&in, buf + FRAME_HEADER, total - FRAME_HEADER), 0);
    ASSERT_EQ(msg_uint(&in, "id", &id), UV_ENOENT);
    msg_in_free(&in);
    free(buf);
}

/* A hostile error frame: control bytes are never copied out, long text is
 * cut to fit, and missing fields come back empty. */
static void error_fields_sanitized(void) {
    msg_out m;
    msg_out_init(&m, "error", 2);
    msg_put_str(&m, "code", "x\x1b[31my");
    msg_put_str(&m, "msg", "a very long message that will not fit");
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    char code[32], text[8];
    msg_error_fields(&in, code, sizeof code, text, sizeof text);
    ASSERT_STR(code, "x?[31my");
    ASSERT_STR(text, "a very ");
    msg_in_free(&in);
    free(buf);

    msg_out_init(&m, "error", 0);
    p = finish(&m, &buf, &len);
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    msg_error_fields(&in, code, sizeof code, text, sizeof text);
    ASSERT_STR(code, "");
    ASSERT_STR(text, "");
    msg_in_free(&in);
    free(buf);
}

static void cstr_rejects_nul(void) {
    msg_out m;
    msg_out_init(&m, "x", 1);
    msg_put_strn(&m, "s", "a\0b", 3);
    char *buf;
    size_t len;
    const char *p = finish(&m, &buf, &len);
    msg_in in;
    ASSERT_EQ(msg_parse(&in, p, len), 0);
    const msgpack_object *o;
    ASSERT_EQ(msg_get(&in, "s", &o), 0);
    char out[16];
    ASSERT_EQ(msg_obj_cstr(o, out, sizeof out), UV_EINVAL);
    const msgpack_object *t;
    ASSERT_EQ(msg_get(&in, "t", &t), 0);
    ASSERT_EQ(msg_obj_cstr(t, out, sizeof out), 0);
    ASSERT_STR(out, "x");
    msg_in_free(&in);
    free(buf);
}

/* Regression, found with the fuzz_msg corpus: a map32 header
 * claiming 4 billion entries in a 5-byte payload is refused without
 * allocating for them (garbage above has the same header with a byte
 * after it; here the payload ends with the header). */
static void huge_map_header(void) {
    msg_in m;
    ASSERT_EQ(msg_parse(&m, "\xdf\xff\xff\xff\xff", 5), UV_EPROTO);
    ASSERT_EQ(msg_parse(&m, "\xdd\xff\xff\xff\xff", 5), UV_EPROTO);
}

/* Regression: fuzz_msg crash a8288a9d (UBSan: null pointer
 * passed to memcmp in msg_get): msgpack-c decodes an empty string with a
 * NULL pointer, which msg_get, msg_str's callers (memchr/memcpy of a list
 * cursor "") and msg_obj_cstr then passed to the string functions. */
static void empty_string_never_null(void) {
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

TEST_MAIN(T(round_trip), T(round_trip_empty), T(missing_field), T(wrong_type), T(not_a_map),
          T(no_type), T(trailing_bytes), T(truncated), T(garbage), T(odd_keys),
          T(finish_over_limit), T(view_and_growth), T(discard), T(error_frame), T(error_fields_sanitized),
          T(cstr_rejects_nul), T(huge_map_header), T(empty_string_never_null))
