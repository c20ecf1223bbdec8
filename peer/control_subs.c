/* control_subs: the names whose presence this peer asks its tracker for
 * (PROTOCOL.md, "subscribe").  A tracker that lists "subscribe" tells a
 * peer that announced it only of the names it subscribed to; this file
 * keeps that set for the connection's life and sends it again after each
 * registration.  The set grows from what the user touches: conversations
 * and pinned peers (main.c feeds them at start), users looked up and the
 * names of each list (control_requests.c), up to CTL_WATCH_MAX.  It also
 * asks for all mode first, which a small tracker grants: the TUI panel and
 * /list then stay as exact as with an older tracker, which pushes
 * everything. */
#include "control_impl.h"

#include "grow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our subscribe ids carry the top bit, so their answers and errors are
 * told apart from the requests' (control_requests.c counts from 1). */
#define SUB_ID_BIT (1ull << 63)

/* Sends subscribe for names[0..n) (folded), in frames the tracker takes. */
static void send_subscribe(ctl *t, char (*names)[NAME_BUFLEN], size_t n) {
    for (size_t i = 0; i < n;) {
        size_t k = n - i < CTL_WATCH_PER_FRAME ? n - i : CTL_WATCH_PER_FRAME;
        msg_out m;
        msg_out_init(&m, "subscribe", 2);
        msg_put_uint(&m, "id", SUB_ID_BIT | ++t->sub_seq);
        msg_put_key(&m, "names");
        msgpack_pack_array(&m.pk, k);
        for (size_t j = 0; j < k; j++)
            msg_pack_str(&m, names[i + j], strlen(names[i + j]));
        if (conn_send_msg(t->c, &m))
            return;
        i += k;
    }
}

int ctl_watch(ctl *t, const char *const *names, size_t n) {
    size_t first = t->nwatch;
    for (size_t i = 0; i < n && t->nwatch < CTL_WATCH_MAX; i++) {
        char fold[NAME_BUFLEN];
        const char *why;
        size_t len = strlen(names[i]);
        if (name_check(names[i], len, &why) || name_fold(names[i], len, fold))
            continue;
        if (strcmp(fold, t->ctx->user_fold) == 0)
            continue; /* the tracker never tells us of ourselves */
        size_t j = 0;
        while (j < t->nwatch && strcmp(t->watch[j], fold) != 0)
            j++;
        if (j < t->nwatch)
            continue;
        char (*w)[NAME_BUFLEN] = grow(t->watch, &t->watchcap, t->nwatch + 1, sizeof *w, 32);
        if (!w)
            return UV_ENOMEM;
        t->watch = w;
        memcpy(t->watch[t->nwatch++], fold, strlen(fold) + 1);
    }
    if (t->nwatch > first && ctl_ready(t) && t->tracker_subscribe)
        send_subscribe(t, t->watch + first, t->nwatch - first);
    return 0;
}

void ctl_subs_registered(ctl *t) {
    if (!t->tracker_subscribe)
        return;
    /* Alone in its frame: a refusal of all mode refuses nothing else. */
    msg_out m;
    msg_out_init(&m, "subscribe", 2);
    msg_put_uint(&m, "id", SUB_ID_BIT | ++t->sub_seq);
    msg_put_bool(&m, "all", true);
    if (conn_send_msg(t->c, &m) == 0)
        send_subscribe(t, t->watch, t->nwatch);
}

int ctl_subs_refused(ctl *t, uint64_t id, const char *code, const char *text) {
    if (!(id & SUB_ID_BIT))
        return 0;
    /* all mode refused on a large tracker is the normal case: the
     * subscriptions carry on without it */
    log_info(t->lg, "tracker: presence subscription refused (%s): %s", code, text);
    return 1;
}

void ctl_on_subscribed(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t count = 0;
    msg_uint(m, "count", &count);
    log_debug(t->lg, "tracker: subscribed to the presence of %llu name(s)",
              (unsigned long long)count);
}

static void on_relisted(void *data, int status, char **names, size_t n) {
    /* nothing more: ctl_req_listed subscribed to the names */
}

/* The tracker outgrew all mode and ended ours: from now on we hear only of
 * what we subscribe to, so the users online now join the set (a list,
 * bounded as every list is) and the TUI panel still sees them go. */
void ctl_on_presence_mode(void *owner, const msg_in *m) {
    ctl *t = owner;
    bool all = true;
    if (msg_bool(m, "all", &all) || all)
        return;
    log_info(t->lg, "tracker: all presence mode ended (the tracker grew); following the users "
             "online now and those we know");
    if (ctl_list(t, NULL, on_relisted, t))
        log_warn(t->lg, "cannot list the users online to follow them: out of memory");
}

void ctl_subs_free(ctl *t) {
    free(t->watch);
    t->watch = NULL;
    t->nwatch = t->watchcap = 0;
}
