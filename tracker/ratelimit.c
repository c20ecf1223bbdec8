/* ratelimit: rate_limit frames per second, rate_burst at once.  The bucket
 * counts thousandths of a frame so that a millisecond's refill is exact at
 * any rate up to the flag's maximum. */
#include "ratelimit.h"

#include <stdio.h>

void rate_start(session *s) {
    s->tokens = (uint64_t)s->ctx->cfg.rate_burst * 1000;
    s->refilled = uv_now(s->ctx->loop);
}

/* 1 when this frame may go on. */
static int take(session *s) {
    const tracker_config *cfg = &s->ctx->cfg;
    if (!cfg->rate_limit)
        return 1;
    uint64_t now = uv_now(s->ctx->loop), cap = (uint64_t)cfg->rate_burst * 1000;
    s->tokens += (now - s->refilled) * cfg->rate_limit;
    s->refilled = now;
    if (s->tokens > cap)
        s->tokens = cap;
    if (s->tokens < 1000)
        return 0;
    s->tokens -= 1000;
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
