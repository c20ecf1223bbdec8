/* ratelimit: the token buckets (ratelimit.h).  A connection's bucket counts
 * thousandths of a frame so that a millisecond's refill is exact at any
 * rate up to the flag's maximum. */
#include "ratelimit.h"

#include "session.h"

#include <stdio.h>

void rate_bucket_init(rate_bucket *b, uint64_t cap, uint64_t now) {
    b->tokens = cap;
    b->refilled = now;
}

static uint64_t refilled(const rate_bucket *b, uint64_t per_ms, uint64_t cap, uint64_t now) {
    uint64_t add = (now - b->refilled) * per_ms;
    return add >= cap || b->tokens >= cap - add ? cap : b->tokens + add;
}

int rate_take(rate_bucket *b, uint64_t per_ms, uint64_t cost, uint64_t cap, uint64_t now) {
    b->tokens = refilled(b, per_ms, cap, now);
    b->refilled = now;
    if (b->tokens < cost)
        return 0;
    b->tokens -= cost;
    return 1;
}

void rate_give(rate_bucket *b, uint64_t cost, uint64_t cap) {
    b->tokens = b->tokens >= cap - (cost < cap ? cost : cap) ? cap : b->tokens + cost;
}

int rate_full(const rate_bucket *b, uint64_t per_ms, uint64_t cap, uint64_t now) {
    return refilled(b, per_ms, cap, now) == cap;
}

void rate_start(session *s) {
    rate_bucket_init(&s->bucket, (uint64_t)s->ctx->cfg.rate_burst * 1000, uv_now(s->ctx->loop));
}

/* 1 when this frame may go on. */
static int take(session *s) {
    const tracker_config *cfg = &s->ctx->cfg;
    if (!cfg->rate_limit)
        return 1;
    if (!rate_take(&s->bucket, cfg->rate_limit, 1000, (uint64_t)cfg->rate_burst * 1000,
                   uv_now(s->ctx->loop)))
        return 0;
    s->refused = 0;
    return 1;
}

int rate_admit(session *s, const msg_in *m) {
    if (take(s))
        return 0;
    s->ctx->stats.rejected[STAT_REJ_RATE_LIMITED]++;
    char text[200];
    uint64_t id;
    snprintf(text, sizeof text, "more than %u requests per second (burst %u); slow down",
             s->ctx->cfg.rate_limit, s->ctx->cfg.rate_burst);
    /* A client that keeps sending while refused is not slowing down. */
    if (msg_uint(m, "id", &id) || id == 0 || ++s->refused > s->ctx->cfg.rate_burst)
        conn_fail(s->c, "rate_limited", text, 0);
    else
        sess_send_error(s, "rate_limited", text, id);
    return 1;
}

void rate_refund(session *s) {
    rate_give(&s->bucket, 1000, (uint64_t)s->ctx->cfg.rate_burst * 1000);
}
