/* ratelimit: token buckets.  One meters every decoded frame of a control
 * connection (--rate-limit, --rate-burst), but for the acknowledgements of
 * pushes, which get theirs back; mail.c keeps one per sender for its puts
 * (--mail-rate).  The arithmetic is integral: a bucket counts
 * tokens in whatever unit makes its refill per millisecond whole. */
#ifndef PARLEY_RATELIMIT_H
#define PARLEY_RATELIMIT_H

#include "msg.h"

#include <stdint.h>

typedef struct rate_bucket {
    uint64_t tokens;   /* in the owner's unit */
    uint64_t refilled; /* uv_now of the last refill */
} rate_bucket;

/* A bucket that holds cap tokens now. */
void rate_bucket_init(rate_bucket *b, uint64_t cap, uint64_t now);

/* Refills b by per_ms tokens for every millisecond since the last refill,
 * up to cap; then takes cost tokens if it holds them.  1 when taken, 0
 * when b is short (nothing is taken). */
int rate_take(rate_bucket *b, uint64_t per_ms, uint64_t cost, uint64_t cap, uint64_t now);

/* Gives cost tokens back, up to cap. */
void rate_give(rate_bucket *b, uint64_t cost, uint64_t cap);

/* 1 when b would be full at now: it has forgotten everything, and a fresh
 * bucket could replace it. */
int rate_full(const rate_bucket *b, uint64_t per_ms, uint64_t cap, uint64_t now);

struct session;

/* A full bucket, for a new connection. */
void rate_start(struct session *s);

/* Takes one frame's token.  0: m may go on.  1: over the rate, and m was
 * refused (a request with an id answered with rate_limited, the connection
 * kept; anything else, or a burst's worth of refused requests in a row,
 * failed); the caller drops it. */
int rate_admit(struct session *s, const msg_in *m);

/* Gives back the token of the frame being handled: an acknowledgement of
 * something the tracker pushed, whose pace the tracker set (mail.c). */
void rate_refund(struct session *s);

#endif
