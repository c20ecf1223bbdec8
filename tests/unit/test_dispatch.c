/* test_dispatch: shared/dispatch.c, the one table-driven dispatcher: every
 * refusal kind with its protocol code, legal states as data, sealed and
 * unsealed entries kept apart, the admit hook first. */
#include "dispatch.h"
#include "frame.h"
#include "test.h"

#include <uv.h>

enum { ST_A, ST_B, ST_C };

typedef struct owner {
    int a, b, admitted, refused;
    int admit_says; /* what admit returns */
    disp_why why;
    char code[32], text[200];
    unsigned state;
    int had_msg;
} owner;

static void h_a(void *o, const msg_in *m) { ((owner *)o)->a++; }
static void h_b(void *o, const msg_in *m) { ((owner *)o)->b++; }

static int admit(void *o, const msg_in *m) {
    owner *w = o;
    w->admitted++;
    return w->admit_says;
}

static void refuse(void *o, const disp_refusal *r) {
    owner *w = o;
    w->refused++;
    w->why = r->why;
    w->state = r->state;
    w->had_msg = r->m != NULL;
    snprintf(w->code, sizeof w->code, "%s", r->code);
    snprintf(w->text, sizeof w->text, "%s", r->text);
}

static const disp_entry entries[] = {
    {"alpha", DISP_IN(ST_A) | DISP_IN(ST_B), 0, h_a},
    {"beta", DISP_IN(ST_B), DISP_SEALED, h_b},
};
static const disp_table table = DISP_TABLE(entries, "in this test", admit, refuse);
static const disp_table plain = DISP_TABLE(entries, "in this test", NULL, refuse);

/* The payload of a frame of type t with one more field. */
static size_t payload(const char *t, char *out, size_t cap) {
    msg_out m;
    const char *buf;
    size_t len;
    msg_out_init(&m, t, 1);
    msg_put_uint(&m, "id", 7);
    ASSERT_EQ(msg_out_view(&m, FRAME_MAX_DEFAULT, &buf, &len), 0);
    ASSERT(len - FRAME_HEADER <= cap);
    memcpy(out, buf + FRAME_HEADER, len - FRAME_HEADER);
    msg_out_discard(&m);
    return len - FRAME_HEADER;
}

static void legal_state_calls_handler(void) {
    owner w = {0};
    char p[64];
    size_t n = payload("alpha", p, sizeof p);
    ASSERT_EQ(disp_frame(&table, &w, ST_A, 0, p, n), 0);
    ASSERT_EQ(disp_frame(&table, &w, ST_B, 0, p, n), 0);
    ASSERT_EQ(w.a, 2);
    ASSERT_EQ(w.admitted, 2);
    ASSERT_EQ(w.refused, 0);
}

static void wrong_state_refused(void) {
    owner w = {0};
    char p[64];
    size_t n = payload("alpha", p, sizeof p);
    ASSERT_EQ(disp_frame(&table, &w, ST_C, 0, p, n), DISP_WRONG_STATE + 1);
    ASSERT_EQ(w.a, 0);
    ASSERT_EQ(w.why, DISP_WRONG_STATE);
    ASSERT_STR(w.code, "bad_message");
    ASSERT_STR(w.text, "unexpected alpha in this test");
    ASSERT_EQ(w.state, ST_C);
    ASSERT(w.had_msg);
}

static void unknown_type_made_printable(void) {
    owner w = {0};
    char p[64];
    size_t n = payload("ga\x01ma", p, sizeof p);
    ASSERT_EQ(disp_frame(&plain, &w, ST_A, 0, p, n), DISP_UNKNOWN_TYPE + 1);
    ASSERT_EQ(w.why, DISP_UNKNOWN_TYPE);
    ASSERT_STR(w.code, "unknown_type");
    ASSERT_STR(w.text, "unknown message type \"ga?ma\"");
}

static void sealing_kept_apart(void) {
    owner w = {0};
    char p[64];
    size_t n = payload("beta", p, sizeof p);
    ASSERT_EQ(disp_frame(&plain, &w, ST_B, 0, p, n), DISP_WRONG_SEAL + 1);
    ASSERT_STR(w.text, "beta must be sealed");
    ASSERT_EQ(disp_frame(&plain, &w, ST_B, DISP_SEALED, p, n), 0);
    ASSERT_EQ(w.b, 1);
    n = payload("alpha", p, sizeof p);
    ASSERT_EQ(disp_frame(&plain, &w, ST_B, DISP_SEALED, p, n), DISP_WRONG_SEAL + 1);
    ASSERT_STR(w.text, "alpha must not be sealed");
    ASSERT_EQ(w.a, 0);
    ASSERT_EQ(w.refused, 2);
}

static void bad_frame_refused(void) {
    owner w = {0};
    static const char not_map[] = "\x93\x01\x02\x03"; /* an array */
    ASSERT_EQ(disp_frame(&table, &w, ST_A, 0, not_map, 4), DISP_BAD_FRAME + 1);
    ASSERT_EQ(w.why, DISP_BAD_FRAME);
    ASSERT_STR(w.code, "bad_frame");
    ASSERT(!w.had_msg);
    ASSERT_EQ(w.admitted, 0); /* admit sees decoded frames only */
    ASSERT_EQ(disp_frame(&table, &w, ST_A, DISP_SEALED, not_map, 4), DISP_BAD_FRAME + 1);
    ASSERT_STR(w.text, "the sealed frame holds no msgpack map with a string t");
    ASSERT_EQ(disp_frame(&table, &w, ST_A, 0, "", 0), DISP_BAD_FRAME + 1);
    ASSERT_EQ(w.refused, 3);
}

static void admit_can_take_a_frame(void) {
    owner w = {0};
    w.admit_says = 1;
    char p[64];
    size_t n = payload("alpha", p, sizeof p);
    ASSERT_EQ(disp_frame(&table, &w, ST_A, 0, p, n), 0);
    n = payload("nosuch", p, sizeof p); /* taken before the type is looked up */
    ASSERT_EQ(disp_frame(&table, &w, ST_A, 0, p, n), 0);
    ASSERT_EQ(w.admitted, 2);
    ASSERT_EQ(w.a, 0);
    ASSERT_EQ(w.refused, 0);
}

static void find_by_type(void) {
    ASSERT(disp_find(&table, "beta") == &entries[1]);
    ASSERT(disp_find(&table, "alph") == NULL);
}

TEST_MAIN(T(legal_state_calls_handler), T(wrong_state_refused), T(unknown_type_made_printable),
          T(sealing_kept_apart), T(bad_frame_refused), T(admit_can_take_a_frame),
          T(find_by_type))
