/* test_frame: the reassembly every connection relies on (shared/frame.c).
 * TCP keeps no message boundaries, so the reader must hand out the same
 * frames whether they arrive a byte at a time or many per read, and must
 * refuse lengths that break the protocol before buffering them. */
#include "frame.h"
#include "test.h"

#include <uv.h>

/* Appends one frame (header + payload) to out; returns its total size. */
static size_t put_frame(char *out, const char *payload, size_t n) {
    frame_put_len(out, (uint32_t)n);
    memcpy(out + FRAME_HEADER, payload, n);
    return FRAME_HEADER + n;
}

static void header_is_big_endian(void) {
    char h[4];
    frame_put_len(h, 0x01020304u);
    ASSERT_EQ(h[0], 1);
    ASSERT_EQ(h[1], 2);
    ASSERT_EQ(h[2], 3);
    ASSERT_EQ(h[3], 4);
}

static void one_frame(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    char buf[64];
    size_t n = put_frame(buf, "hello", 5);
    ASSERT_EQ(frame_reader_append(&r, buf, n), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    ASSERT_EQ(len, 5);
    ASSERT(memcmp(p, "hello", 5) == 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 0);
    ASSERT_EQ(frame_reader_pending(&r), 0);
    frame_reader_free(&r);
}

/* Every byte its own read, header included: no frame before the last byte. */
static void split_bytes(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    char payload[300];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i * 7);
    char buf[400];
    size_t n = put_frame(buf, payload, sizeof payload);
    const char *p;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        ASSERT_EQ(frame_reader_append(&r, buf + i, 1), 0);
        int got = frame_reader_next(&r, &p, &len);
        if (i + 1 < n) {
            ASSERT_EQ(got, 0);
            ASSERT_EQ(frame_reader_pending(&r), i + 1);
        } else {
            ASSERT_EQ(got, 1);
        }
    }
    ASSERT_EQ(len, sizeof payload);
    ASSERT(memcmp(p, payload, sizeof payload) == 0);
    ASSERT_EQ(frame_reader_pending(&r), 0);
    frame_reader_free(&r);
}

/* Split points that fall inside the header and inside the payload of two
 * consecutive frames, through the zero-copy space/commit path. */
static void split_through_space(void) {
    char buf[64];
    size_t n = put_frame(buf, "abc", 3);
    n += put_frame(buf + n, "defgh", 5);
    for (size_t cut = 1; cut < n; cut++) {
        frame_reader r;
        frame_reader_init(&r, FRAME_MAX_DEFAULT);
        size_t parts[2] = {cut, n - cut}, off = 0;
        int frames = 0;
        for (int k = 0; k < 2; k++) {
            char *base;
            size_t cap;
            ASSERT_EQ(frame_reader_space(&r, parts[k], &base, &cap), 0);
            ASSERT(cap >= parts[k]);
            memcpy(base, buf + off, parts[k]);
            frame_reader_commit(&r, parts[k]);
            off += parts[k];
            const char *p;
            size_t len;
            while (frame_reader_next(&r, &p, &len) == 1) {
                if (frames == 0) {
                    ASSERT_EQ(len, 3);
                    ASSERT(memcmp(p, "abc", 3) == 0);
                } else {
                    ASSERT_EQ(len, 5);
                    ASSERT(memcmp(p, "defgh", 5) == 0);
                }
                frames++;
            }
        }
        ASSERT_EQ(frames, 2);
        frame_reader_free(&r);
    }
}

/* Many frames in one read come out one by one, in order. */
static void coalesced(void) {
    enum { N = 1000 };
    static char buf[N * 16];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        char payload[12];
        int pl = snprintf(payload, sizeof payload, "frame%d", i);
        n += put_frame(buf + n, payload, (size_t)pl);
    }
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    ASSERT_EQ(frame_reader_append(&r, buf, n), 0);
    for (int i = 0; i < N; i++) {
        const char *p;
        size_t len;
        char want[12];
        int wl = snprintf(want, sizeof want, "frame%d", i);
        ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
        ASSERT_EQ(len, wl);
        ASSERT(memcmp(p, want, len) == 0);
    }
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 0);
    ASSERT_EQ(frame_reader_pending(&r), 0);
    frame_reader_free(&r);
}

/* A read that ends in the middle of a frame keeps the tail for the next. */
static void coalesced_with_partial_tail(void) {
    char buf[64];
    size_t n = put_frame(buf, "one", 3);
    n += put_frame(buf + n, "two", 3);
    size_t first = n + 2; /* two bytes into the third header */
    n += put_frame(buf + n, "three", 5);
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    ASSERT_EQ(frame_reader_append(&r, buf, first), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    ASSERT(len == 3 && memcmp(p, "one", 3) == 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    ASSERT(len == 3 && memcmp(p, "two", 3) == 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 0);
    ASSERT_EQ(frame_reader_pending(&r), 2);
    ASSERT_EQ(frame_reader_append(&r, buf + first, n - first), 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    ASSERT(len == 5 && memcmp(p, "three", 5) == 0);
    frame_reader_free(&r);
}

/* The limit itself is accepted; one byte more is refused as soon as the
 * header is in, before any payload is buffered. */
static void oversize(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    char h[FRAME_HEADER];
    frame_put_len(h, FRAME_MAX_DEFAULT + 1);
    ASSERT_EQ(frame_reader_append(&r, h, sizeof h), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), UV_E2BIG);
    frame_reader_free(&r);

    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    frame_put_len(h, 0xffffffffu);
    ASSERT_EQ(frame_reader_append(&r, h, sizeof h), 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), UV_E2BIG);
    frame_reader_free(&r);
}

static void at_limit(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    size_t n = FRAME_HEADER + FRAME_MAX_DEFAULT;
    char *buf = calloc(1, n);
    ASSERT(buf);
    frame_put_len(buf, FRAME_MAX_DEFAULT);
    buf[n - 1] = 'z';
    ASSERT_EQ(frame_reader_append(&r, buf, n), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    ASSERT_EQ(len, FRAME_MAX_DEFAULT);
    ASSERT_EQ(p[len - 1], 'z');
    free(buf);
    frame_reader_free(&r);
}

/* A smaller limit given at init is the one enforced. */
static void custom_limit(void) {
    frame_reader r;
    frame_reader_init(&r, 10);
    char buf[32];
    size_t n = put_frame(buf, "0123456789", 10);
    ASSERT_EQ(frame_reader_append(&r, buf, n), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    n = put_frame(buf, "0123456789a", 11);
    ASSERT_EQ(frame_reader_append(&r, buf, n), 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), UV_E2BIG);
    frame_reader_free(&r);
}

static void zero_length(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    char h[FRAME_HEADER];
    frame_put_len(h, 0);
    ASSERT_EQ(frame_reader_append(&r, h, sizeof h), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), UV_EPROTO);
    frame_reader_free(&r);
}

/* A valid frame followed by a zero length: the first still comes out. */
static void good_then_zero(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    char buf[32];
    size_t n = put_frame(buf, "ok", 2);
    frame_put_len(buf + n, 0);
    n += FRAME_HEADER;
    ASSERT_EQ(frame_reader_append(&r, buf, n), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
    ASSERT(len == 2 && memcmp(p, "ok", 2) == 0);
    ASSERT_EQ(frame_reader_next(&r, &p, &len), UV_EPROTO);
    frame_reader_free(&r);
}

/* Garbage is whatever its first four bytes say: ASCII text reads as a huge
 * length and is refused at once instead of being buffered. */
static void garbage(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    const char *junk = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(frame_reader_append(&r, junk, strlen(junk)), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), UV_E2BIG);
    frame_reader_free(&r);

    /* Random bytes: whatever happens, never a frame longer than the limit
     * and never a read past what was appended. */
    unsigned seed = 12345;
    for (int round = 0; round < 200; round++) {
        frame_reader_init(&r, 1000);
        char buf[2048];
        for (size_t i = 0; i < sizeof buf; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (char)(seed >> 16);
        }
        if (round % 2)
            buf[0] = buf[1] = 0; /* small lengths, so some frames come out */
        ASSERT_EQ(frame_reader_append(&r, buf, sizeof buf), 0);
        size_t total = 0;
        int got;
        while ((got = frame_reader_next(&r, &p, &len)) == 1) {
            ASSERT(len >= 1 && len <= 1000);
            ASSERT(p >= r.buf && p + len <= r.buf + r.end);
            total += FRAME_HEADER + len;
        }
        ASSERT(got == 0 || got == UV_E2BIG || got == UV_EPROTO);
        ASSERT(total <= sizeof buf);
        frame_reader_free(&r);
    }
}

/* Reading, consuming and reading again forever must not grow the buffer
 * without bound: consumed bytes are reclaimed. */
static void buffer_reused(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    char payload[100], buf[128];
    memset(payload, 'x', sizeof payload);
    size_t n = put_frame(buf, payload, sizeof payload);
    size_t max_cap = 0;
    for (int i = 0; i < 10000; i++) {
        /* Feed in uneven pieces so frames straddle the reads. */
        size_t a = 1 + (size_t)(i % 37);
        ASSERT_EQ(frame_reader_append(&r, buf, a), 0);
        ASSERT_EQ(frame_reader_append(&r, buf + a, n - a), 0);
        const char *p;
        size_t len;
        ASSERT_EQ(frame_reader_next(&r, &p, &len), 1);
        ASSERT_EQ(len, 100);
        if (r.cap > max_cap)
            max_cap = r.cap;
    }
    ASSERT(max_cap <= 8192);
    frame_reader_free(&r);
}

/* Appending nothing is a no-op, even before the first allocation. */
static void append_empty(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    ASSERT_EQ(frame_reader_append(&r, "", 0), 0);
    ASSERT_EQ(frame_reader_pending(&r), 0);
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 0);
    frame_reader_free(&r);
}

static void free_is_reusable(void) {
    frame_reader r;
    frame_reader_init(&r, FRAME_MAX_DEFAULT);
    frame_reader_free(&r);
    frame_reader_free(&r); /* twice: memset to zero, free(NULL) */
    const char *p;
    size_t len;
    ASSERT_EQ(frame_reader_next(&r, &p, &len), 0);
}

/* Regression, found with the fuzz_frame corpus: a length header
 * announcing more than the limit must be refused from its 4 header bytes
 * alone, even split one byte per read. */
static void oversize_header_bytewise(void) {
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

TEST_MAIN(T(header_is_big_endian), T(one_frame), T(split_bytes), T(split_through_space),
          T(coalesced), T(coalesced_with_partial_tail), T(oversize), T(at_limit),
          T(custom_limit), T(zero_length), T(good_then_zero), T(garbage), T(buffer_reused),
          T(append_empty), T(free_is_reusable), T(oversize_header_bytewise))
