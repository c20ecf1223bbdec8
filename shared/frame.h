/* frame: the length-prefixed framing every parley connection carries.
 * A frame is a 4-byte big-endian length N followed by N payload bytes.
 * The reader collects bytes as TCP delivers them (one at a time, or many
 * frames per read) and hands out whole frames. */
#ifndef PARLEY_FRAME_H
#define PARLEY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4
#define FRAME_MAX_DEFAULT (64 * 1024) /* largest payload accepted by default */

/* Plain value, embedded in its owner's connection struct. */
typedef struct frame_reader {
    char *buf;
    size_t start; /* first unconsumed byte */
    size_t end;   /* one past the last received byte */
    size_t cap;
    size_t max;   /* payload limit */
} frame_reader;

void frame_reader_init(frame_reader *r, size_t max_payload);
void frame_reader_free(frame_reader *r);

/* Space for the next read: *base and *len describe at least `want` free
 * bytes (the reader grows or compacts as needed).  0 or UV_ENOMEM. */
int frame_reader_space(frame_reader *r, size_t want, char **base, size_t *len);

/* Marks n bytes of the space just handed out as received. */
void frame_reader_commit(frame_reader *r, size_t n);

/* Copies bytes in (for callers that do not read into frame_reader_space). */
int frame_reader_append(frame_reader *r, const char *data, size_t n);

/* The next complete frame: 1 with *payload and *len set (valid until the next
 * call into the reader), 0 when more bytes are needed, UV_E2BIG when the
 * announced length exceeds the limit, UV_EPROTO for a zero length. */
int frame_reader_next(frame_reader *r, const char **payload, size_t *len);

/* Bytes received but not yet handed out as a frame. */
size_t frame_reader_pending(const frame_reader *r);

static inline void frame_put_len(char *p, uint32_t n) {
    p[0] = (char)(n >> 24), p[1] = (char)(n >> 16), p[2] = (char)(n >> 8), p[3] = (char)n;
}

#endif
