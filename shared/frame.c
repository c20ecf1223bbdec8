/* frame: the reassembly buffer behind every connection's read callback.
 * Reads land directly in the buffer; frames are handed out in place, and the
 * buffer is compacted only when the free tail gets too short. */
#include "frame.h"
#include "grow.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

void frame_reader_init(frame_reader *r, size_t max_payload) {
    memset(r, 0, sizeof *r);
    r->max = max_payload;
}

void frame_reader_free(frame_reader *r) {
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int frame_reader_space(frame_reader *r, size_t want, char **base, size_t *len) {
    if (r->start == r->end)
        r->start = r->end = 0;
    if (r->cap - r->end < want && r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    char *nb = grow(r->buf, &r->cap, r->end + want, 1, 4096);
    if (!nb)
        return UV_ENOMEM;
    r->buf = nb;
    *base = r->buf + r->end;
    *len = r->cap - r->end;
    return 0;
}

void frame_reader_commit(frame_reader *r, size_t n) {
    r->end += n;
}

int frame_reader_append(frame_reader *r, const char *data, size_t n) {
    if (n == 0)
        return 0;
    char *base;
    size_t len;
    int err = frame_reader_space(r, n, &base, &len);
    if (err)
        return err;
    memcpy(base, data, n);
    frame_reader_commit(r, n);
    return 0;
}

int frame_reader_next(frame_reader *r, const char **payload, size_t *len) {
    size_t avail = r->end - r->start;
    if (avail < FRAME_HEADER)
        return 0;
    const unsigned char *p = (const unsigned char *)r->buf + r->start;
    uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if (n > r->max)
        return UV_E2BIG;
    if (n == 0)
        return UV_EPROTO;
    if (avail - FRAME_HEADER < n)
        return 0;
    *payload = r->buf + r->start + FRAME_HEADER;
    *len = n;
    r->start += FRAME_HEADER + n;
    return 1;
}

size_t frame_reader_pending(const frame_reader *r) {
    return r->end - r->start;
}
