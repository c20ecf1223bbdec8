/* fuzz_frame: the frame reader (shared/frame.c) fed one byte stream in
 * arbitrary pieces.  The input's first bytes pick the payload limit, the
 * way bytes go in (append, or the space/commit pair conn.c uses) and the
 * seed of the split points; the rest is the stream.  Whatever the split,
 * the frames handed out must be exactly those of a straight reading of the
 * whole stream, up to the same error. */
#include "frame.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum { REF_MORE = 0, REF_FRAME = 1 };

/* The straight reading: one frame at *pos, or why there is none. */
static int ref_next(const uint8_t *p, size_t n, size_t *pos, size_t max, size_t *flen) {
    size_t left = n - *pos;
    if (left < FRAME_HEADER)
        return REF_MORE;
    const uint8_t *h = p + *pos;
    uint32_t len = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
    if (len > max)
        return UV_E2BIG;
    if (len == 0)
        return UV_EPROTO;
    if (left - FRAME_HEADER < len)
        return REF_MORE;
    *flen = len;
    return REF_FRAME;
}

#define CHECK(x)                                                                              \
    do {                                                                                      \
        if (!(x)) {                                                                           \
            fprintf(stderr, "fuzz_frame: %s:%d: %s\n", __FILE__, __LINE__, #x);               \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3)
        return 0;
    static const size_t limits[] = {FRAME_MAX_DEFAULT, 1, 16, 255, 4096, 65535, 1u << 20, 0};
    uint8_t flags = data[0];
    uint32_t seed = ((uint32_t)data[1] << 8 | data[2]) * 2654435761u + 1;
    const uint8_t *s = data + 3;
    size_t n = size - 3;
    size_t max = limits[flags & 7];
    int use_space = flags & 8;
    size_t maxchunk = (flags >> 4) == 0 ? n + 1 : (size_t)1 << ((flags >> 4) - 1); /* 1..16384 */

    frame_reader r;
    frame_reader_init(&r, max);
    size_t fed = 0, refpos = 0, nframes = 0;
    int done = 0;
    while (!done) {
        /* Drain everything the reader has, comparing with the straight reading. */
        for (;;) {
            const char *p;
            size_t len, rlen = 0;
            int got = frame_reader_next(&r, &p, &len);
            int want = ref_next(s, fed, &refpos, max, &rlen);
            CHECK(got == want);
            if (got != 1) {
                if (got < 0)
                    done = 1; /* a receiver stops reading at the first error */
                break;
            }
            CHECK(len == rlen);
            CHECK(memcmp(p, s + refpos + FRAME_HEADER, len) == 0);
            refpos += FRAME_HEADER + len;
            nframes++;
            CHECK(frame_reader_pending(&r) == fed - refpos);
        }
        if (done || fed == n)
            break;
        seed ^= seed << 13, seed ^= seed >> 17, seed ^= seed << 5;
        size_t chunk = 1 + seed % maxchunk;
        if (chunk > n - fed)
            chunk = n - fed;
        if (use_space) {
            char *base;
            size_t room;
            /* conn.c asks for 16 KiB; ask for less sometimes to exercise compaction. */
            size_t want = (seed >> 8) & 1 && chunk < 16384 ? 16384 : chunk;
            CHECK(frame_reader_space(&r, want, &base, &room) == 0);
            CHECK(room >= want && room >= chunk);
            memcpy(base, s + fed, chunk);
            frame_reader_commit(&r, chunk);
        } else {
            CHECK(frame_reader_append(&r, (const char *)s + fed, chunk) == 0);
        }
        fed += chunk;
    }
    (void)nframes;
    frame_reader_free(&r);
    return 0;
}
