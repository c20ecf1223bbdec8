/* chat_upgrade: a relayed chat keeps looking for a direct path.  The side
 * that asked for the relay (one side only, so the two never punch at each
 * other twice) runs dial_upgrade -- the ladder without the relay -- after
 * UPGRADE_FIRST_MS, then with a doubling backoff up to UPGRADE_MAX_MS, and
 * soon again whenever either side may have a new address (we registered
 * again, or the other user came online again).  The link it gets goes
 * through chat_attach like any other, where a direct link replaces a
 * relayed one (chat.c); one timer serves every conversation. */
#include "chat_impl.h"

#include "dial.h"

#define UPGRADE_FIRST_MS 1000
#define UPGRADE_MAX_MS 60000
#define UPGRADE_SOON_MS 200 /* after an address may have changed */

static int wants_upgrade(const conv *cv) {
    return cv->link && link_is_up(cv->link) && link_relayed(cv->link) && link_dialed(cv->link) &&
           !cv->said_bye;
}

/* The timer fires at the earliest due upgrade; stopped when none is. */
static void reschedule(chat *ch);

static void on_upgraded(void *data, chatlink *l, int status, const char *reason) {
    conv *cv = data;
    chat *ch = cv->ch;
    cv->upgrade = NULL;
    if (l) {
        chat_attach(ch, l, 0);
        return;
    }
    cv->up_backoff = cv->up_backoff * 2 > UPGRADE_MAX_MS ? UPGRADE_MAX_MS : cv->up_backoff * 2;
    cv->up_at = uv_now(ch->ctx->loop) + cv->up_backoff;
    log_info(&ch->ctx->lg, "no direct path to %s yet (%s); the chat stays on the relay, next try "
             "in %u s", cv->name, reason ? reason : uv_strerror(status), cv->up_backoff / 1000);
    reschedule(ch);
}

static void on_timer(uv_timer_t *h) {
    chat *ch = h->data;
    uint64_t now = uv_now(ch->ctx->loop);
    for (conv *cv = ch->convs; cv; cv = cv->next) {
        if (!wants_upgrade(cv) || cv->upgrade || cv->up_at > now)
            continue;
        log_debug(&ch->ctx->lg, "chat with %s is relayed: looking for a direct path", cv->name);
        if (dial_upgrade(ch->ctx, cv->name, on_upgraded, cv, &cv->upgrade)) {
            cv->upgrade = NULL;
            cv->up_at = now + UPGRADE_MAX_MS; /* out of memory: much later */
        }
    }
    reschedule(ch);
}

static void reschedule(chat *ch) {
    uint64_t now = uv_now(ch->ctx->loop), next = UINT64_MAX;
    for (conv *cv = ch->convs; cv; cv = cv->next)
        if (wants_upgrade(cv) && !cv->upgrade && cv->up_at < next)
            next = cv->up_at;
    if (next == UINT64_MAX)
        uv_timer_stop(ch->upgrade);
    else
        uv_timer_start(ch->upgrade, on_timer, next > now ? next - now : 0, 0);
}

void chat_upgrade_linked(chat *ch, conv *cv) {
    if (!link_relayed(cv->link)) {
        dial_cancel(cv->upgrade);
        cv->upgrade = NULL;
        return;
    }
    cv->up_backoff = UPGRADE_FIRST_MS;
    cv->up_at = uv_now(ch->ctx->loop) + UPGRADE_FIRST_MS;
    reschedule(ch);
}

void chat_upgrade_soon(chat *ch, conv *only) {
    uint64_t soon = uv_now(ch->ctx->loop) + UPGRADE_SOON_MS;
    for (conv *cv = ch->convs; cv; cv = cv->next) {
        if ((only && cv != only) || !wants_upgrade(cv))
            continue;
        cv->up_backoff = UPGRADE_FIRST_MS;
        if (cv->up_at > soon)
            cv->up_at = soon;
    }
    reschedule(ch);
}
