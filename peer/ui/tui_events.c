/* tui_events: the terminal UI as an ev_frontend.  Each event updates the
 * model (tui_model.c) and marks the screen dirty; painting happens once per
 * loop pass (tui.c), however many events arrived. */
#include "tui_impl.h"

#include "chat.h"
#include "control.h"
#include "grow.h"
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_list(void *data, int status, char **names, size_t n) {
    tui *t = data;
    if (status) {
        tui_notice(t, NULL, NOTE_TRACKER, NULL, "cannot list users: %s", uv_strerror(status));
        tui_dirty(t);
        return;
    }
    /* The answer is a snapshot: whoever is not in it is offline. */
    for (size_t i = 0; i < t->nusers; i++)
        t->users[i].online = 0;
    for (size_t i = 0; i < n; i++)
        tui_user_set_online(t, names[i], 1);
    tui_dirty(t);
}

static void t_registered(void *fe, const char *name, const char *tracker, const char *observed) {
    tui *t = fe;
    t->trk = TRK_CONNECTED;
    uv_timer_stop(&t->countdown);
    snprintf(t->me, sizeof t->me, "%s", name);
    tui_notice_over(t, NOTE_TRACKER, NULL); /* whatever went wrong with the tracker is over */
    tui_conv_info(&t->system, "registered %s with tracker %s (seen as %s)", name, tracker,
                  observed[0] ? observed : "?");
    /* Presence pushes only tell changes; the list tells who is there now. */
    if (ctl_list(t->ctx->ctl, NULL, on_list, t))
        tui_notice(t, NULL, NOTE_TRACKER, NULL, "cannot list users: out of memory");
    tui_dirty(t);
}

static void on_countdown(uv_timer_t *h) { tui_dirty(h->data); }

static void t_tracker_lost(void *fe, const char *tracker, const char *why, unsigned delay_ms,
                           int repeat, int was_registered) {
    tui *t = fe;
    t->trk = TRK_RECONNECTING;
    t->retry_at = uv_now(t->ctx->loop) + delay_ms;
    /* Ticks only while reconnecting, to count the seconds down. */
    uv_timer_start(&t->countdown, on_countdown, 1000, 1000);
    /* Never reached since the start: maybe a wrong --tracker, so named. */
    char what[ADDR_STRLEN + 64];
    if (was_registered)
        snprintf(what, sizeof what, "tracker lost");
    else
        snprintf(what, sizeof what, "cannot reach the tracker %s (--tracker)", tracker);
    /* The status bar counts down each retry; the windows say it once. */
    if (!repeat)
        tui_conv_info(&t->system, "%s: %s; %s in %.1fs", what, why,
                      was_registered ? "reconnecting" : "retrying", delay_ms / 1000.0);
    tui_notice(t, repeat ? tui_here(t) : &t->system, NOTE_TRACKER, NULL, "%s: %s", what, why);
    tui_dirty(t);
}

static void t_presence(void *fe, const char *name, int online) {
    tui *t = fe;
    tui_user_set_online(t, name, online);
    tui_conv *cv = tui_conv_find(t, name);
    /* A chat that is up needs no "is online" (the tracker says it again
     * when either side registers anew, after a tracker restart). */
    if (cv && !(online && cv->linked))
        tui_conv_info(cv, "%s is %s", cv->name, online ? "online" : "offline");
    tui_dirty(t);
}

static void t_users(void *fe, char **names, size_t n) {
    tui *t = fe;
    tui_conv *cv = tui_here(t);
    char line[1024];
    size_t o = (size_t)snprintf(line, sizeof line, "users %zu:", n);
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(names[i]);
        if (o + k + 2 >= sizeof line) {
            tui_conv_info(cv, "%s", line);
            o = 0;
        }
        o += (size_t)snprintf(line + o, sizeof line - o, " %s", names[i]);
    }
    tui_conv_info(cv, "%s", line);
    tui_dirty(t);
}

static void t_connected(void *fe, const char *name, ev_path path, const char *how) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (cv) {
        cv->linked = 1;
        cv->path = path;
        cv->told_stored = 0;
        tui_conv_info(cv, "connected to %s (%s)", name, path == EV_PATH_RELAY ? "relay" : "direct");
    }
    tui_notice_over(t, NOTE_USER, name); /* "cannot reach NAME" is over */
    tui_dirty(t);
}

static void t_current(void *fe, const char *name) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (cv) {
        if (t->search.active && t->shown != cv)
            tui_search_stop(t, 1);
        t->shown = cv;
        cv->unread = 0;
        cv->mentioned = 0;
        snprintf(t->current, sizeof t->current, "%s", cv->fold);
    }
    tui_dirty(t);
}

/* Whether a message from someone else names us (the name we registered). */
static int names_me(const tui *t, const char *text, size_t len) {
    return tui_mentions(text, len, t->me[0] ? t->me : t->ctx->user);
}

static void t_msg(void *fe, const char *name, uint64_t id, int64_t ts, const char *text,
                  size_t len) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (!cv)
        return;
    tui_entry *e = tui_conv_add(cv, TE_IN, ts, 0, name, text, len);
    int mention = e && names_me(t, text, len);
    if (e)
        e->mention = mention;
    if (cv != t->shown) {
        cv->unread++;
        cv->mentioned |= mention;
    }
    /* Rung once at the next paint: for a window not on screen, and for
     * our name even in the one on screen (--no-bell wins over the file). */
    int bell = t->conf.bell;
    if (!t->ctx->no_bell && (mention ? bell != BELL_OFF : bell == BELL_ON && cv != t->shown))
        t->bell_pending = 1;
    tui_dirty(t);
}

static void t_sent(void *fe, const char *name, uint64_t seq, int64_t ts, const char *text,
                   size_t len) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (!cv)
        return;
    tui_conv_add(cv, TE_OUT, ts, seq, t->ctx->user, text, len);
    cv->scroll = 0; /* what you just sent is what you want to see */
    tui_dirty(t);
}

/* Moves our message #seq with name to state, forward only.  seq restarts
 * when a conversation without history.db is ended and begun again: of the
 * entries shown this run, the newest that can still move with that number
 * is the one.  The copies from history.db (numbered on across runs, so
 * never ambiguous) all move with it. */
static tui_conv *move_state(tui *t, const char *name, uint64_t seq, int state) {
    tui_conv *cv = tui_conv_find(t, name);
    int live = 1;
    for (size_t i = cv ? cv->n : 0; i-- > 0;) {
        tui_entry *e = cv->v[i];
        if (e->kind != TE_OUT || e->seq != seq || (!live && !e->from_hist))
            continue;
        if (state == TS_DELIVERED ? e->state == TS_DELIVERED : e->state != TS_SENDING)
            continue;
        e->state = state;
        live = live && e->from_hist;
    }
    tui_dirty(t);
    return cv;
}

static void t_delivered(void *fe, const char *name, uint64_t seq) {
    move_state(fe, name, seq, TS_DELIVERED);
}

static void t_stored(void *fe, const char *name, uint64_t seq) {
    tui_conv *cv = move_state(fe, name, seq, TS_STORED);
    if (cv && !cv->told_stored) {
        cv->told_stored = 1; /* once, not once per message */
        tui_conv_info(cv, "cannot reach %s now: the tracker keeps your messages "
                      "(\xe2\x9c\x89) and hands them over when %s is online", cv->name, cv->name);
    }
}

static int state_of(const char *s) {
    if (!s || strcmp(s, "sending") == 0)
        return TS_SENDING;
    if (strcmp(s, "stored") == 0)
        return TS_STORED;
    return strcmp(s, "delivered") == 0 ? TS_DELIVERED : TS_EXPIRED;
}

/* /history NAME: a block in NAME's window, which comes on screen (yours,
 * always empty, goes to the window on screen).  At start (t->preloading),
 * the rows alone: what was said before. */
static void t_history(void *fe, const char *name, const ev_hist_row *rows, size_t n) {
    tui *t = fe;
    char fold[NAME_BUFLEN];
    int self = name_fold(name, strlen(name), fold) == 0 && strcmp(fold, t->ctx->user_fold) == 0;
    tui_conv *cv = self ? tui_here(t) : tui_conv_find(t, name); /* keeps its spelling */
    if (!cv)
        cv = tui_conv_get(t, name);
    if (!cv)
        return;
    const char *who = self ? name : cv->name;
    if (!t->preloading && n)
        tui_conv_info(cv, "-- history with %s: the last %zu message%s --", who, n,
                      n == 1 ? "" : "s");
    else if (!t->preloading)
        tui_conv_info(cv, "-- no history with %s --", who);
    for (size_t i = 0; i < n; i++) {
        const ev_hist_row *r = &rows[i];
        tui_entry *e = tui_conv_add(cv, r->out ? TE_OUT : TE_IN, r->ts, r->seq,
                                    r->out ? t->ctx->user : who, r->text, r->len);
        if (e) {
            e->from_hist = 1;
            e->state = r->out ? state_of(r->state) : TS_SENDING;
            e->mention = !r->out && names_me(t, r->text, r->len);
        }
    }
    if (!t->preloading) {
        if (n)
            tui_conv_info(cv, "-- end of the history with %s --", who);
        if (!self)
            t->shown = cv;
        cv->unread = 0;
        cv->scroll = 0; /* the block is what you asked to see */
    }
    tui_dirty(t);
}

typedef struct convnames {
    char (*v)[NAME_BUFLEN];
    size_t n, cap;
} convnames;

static int collect_conv(const hist_row *r, void *arg) {
    convnames *ns = arg;
    char(*v)[NAME_BUFLEN] = grow(ns->v, &ns->cap, ns->n + 1, sizeof *ns->v, 16);
    if (!v)
        return 1;
    ns->v = v;
    snprintf(ns->v[ns->n++], NAME_BUFLEN, "%s", r->name);
    return 0;
}

void tui_load_history(tui *t, int rows) {
    peer_ctx *ctx = t->ctx;
    if (!ctx->hist || !ctx->chat)
        return; /* --no-history */
    convnames ns = {0};
    int e = hist_conversations(ctx->hist, collect_conv, &ns);
    if (e)
        tui_notice(t, NULL, NOTE_OTHER, NULL, "cannot read the conversations from "
                   "%s/history.db: %s", ctx->home, uv_strerror(e));
    /* The windows numbered most recent first (2 is the latest), then
     * filled oldest first. */
    for (size_t i = 0; i < ns.n; i++)
        tui_conv_get(t, ns.v[i]);
    t->preloading = 1;
    for (size_t i = ns.n; i-- > 0;)
        chat_history(ctx->chat, ns.v[i], rows > 0 ? (size_t)rows : 1);
    t->preloading = 0;
    if (ns.n)
        tui_conv_info(&t->system, "history: %zu conversation%s kept from before, the most "
                      "recent with %s; open one from the panel, /history NAME [N] for more",
                      ns.n, ns.n == 1 ? "" : "s", ns.v[0]);
    free(ns.v);
}

static void t_closed(void *fe, const char *name, ev_close_why why) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (!cv)
        return;
    cv->linked = 0;
    if (why != EV_CLOSED_LOST && strcmp(t->current, cv->fold) == 0)
        t->current[0] = '\0'; /* chat.c lets go of a conversation ended by bye */
    if (why == EV_CLOSED_BYE)
        tui_conv_info(cv, "-- %s said bye; the conversation is closed (type to start again) --",
                      cv->name);
    else if (why == EV_CLOSED_YOU_BYE)
        tui_conv_info(cv, "-- you said bye; the conversation is closed --");
    else
        tui_conv_info(cv, "-- connection to %s lost; unsent messages wait for the next one --",
                      cv->name);
    tui_dirty(t);
}

static void t_unreachable(void *fe, const char *name, const char *reason) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (cv)
        tui_conv_info(cv, "cannot reach %s: %s", name, reason);
    tui_notice(t, cv, NOTE_USER, name, "cannot reach %s: %s", name, reason);
    tui_dirty(t);
}

static void t_error(void *fe, const char *code, const char *text) {
    tui *t = fe;
    /* Registering again ends "the tracker is unreachable". */
    int about = strcmp(code, "tracker_unreachable") == 0 ? NOTE_TRACKER : NOTE_OTHER;
    tui_notice(t, NULL, about, NULL, "error: %s", text);
    snprintf(t->last_error, sizeof t->last_error, "%s", text);
    snprintf(t->last_code, sizeof t->last_code, "%s", code);
    tui_dirty(t);
}

/* A help line is "  /COMMAND ARGS   what it does": its wrapped rows go
 * under the description (the column after the first run of two spaces). */
static void help_line(tui_conv *cv, const char *line) {
    tui_entry *e = tui_conv_add(cv, TE_INFO, tui_now_ms(), 0, NULL, line, strlen(line));
    const char *p = line + strspn(line, " ");
    const char *gap = strstr(p, "  ");
    if (e && gap)
        e->hang = tui_width(line, (size_t)(gap - line) + strspn(gap, " "));
}

static void t_help(void *fe, const char *const *lines, size_t n) {
    tui *t = fe;
    tui_conv *cv = tui_here(t);
    for (size_t i = 0; i < n; i++)
        help_line(cv, lines[i]);
    help_line(cv, "  /mouse           turn mouse reporting off (to select text) or on");
    help_line(cv, "  /clear           empty the window on screen (history.db keeps it)");
    help_line(cv, "  /search [TEXT]   search the window on screen, as Ctrl-R does");
    help_line(cv, "  marks            after the time of your messages: \xc2\xb7 sending, "
                  "\xe2\x9c\x89 kept by the tracker for an offline user, \xe2\x9c\x93 delivered, "
                  "\xe2\x9c\x97 expired undelivered");
    help_line(cv, "  windows          Alt-1..9 switch windows (1 the notices, the others as "
                  "numbered in the panel; Alt-0 is 10), Alt-Left/Right the previous/next");
    help_line(cv, "  search           Ctrl-R and type: the newest line with it; Ctrl-R or Up an "
                  "older one, Down a newer one, Enter stays there, Esc goes back");
    help_line(cv, "  parley.conf      in the --home directory: colors, bell, time-format, more "
                  "keys (see parley(1))");
    help_line(cv, "  keys             Tab/F2 users panel (type to filter, arrows, Enter), "
                  "PgUp/PgDn scroll, Up/Down history, Tab completes names, Ctrl-C quits");
    tui_dirty(t);
}

static void t_trusted(void *fe, const char *name, const char *fp, const char *was) {
    tui *t = fe;
    /* Fingerprints end at a space or a line's end, so punctuation never
     * makes one too wide to stay whole on a row. */
    if (was)
        tui_conv_info(tui_here(t), "trusted %s: pinned key %s\nreplacing the key %s", name, fp, was);
    else
        tui_conv_info(tui_here(t), "trusted %s: pinned key %s", name, fp);
    tui_dirty(t);
}

static void t_whois(void *fe, const char *name, const char *pinned, const char *tracker) {
    tui *t = fe;
    /* One fingerprint a line, one under the other: they are read aloud
     * and compared. */
    tui_conv_info(tui_here(t), "%s: pinned key %s\ntracker's key %s", name,
                  pinned ? pinned : "none", tracker ? tracker : "unknown");
    tui_dirty(t);
}

const ev_frontend tui_frontend = {
    .name = "tui",
    .registered = t_registered,
    .tracker_lost = t_tracker_lost,
    .presence = t_presence,
    .users = t_users,
    .connected = t_connected,
    .current = t_current,
    .msg = t_msg,
    .sent = t_sent,
    .delivered = t_delivered,
    .stored = t_stored,
    .history = t_history,
    .closed = t_closed,
    .unreachable = t_unreachable,
    .error = t_error,
    .help = t_help,
    .trusted = t_trusted,
    .whois = t_whois,
    .bye = NULL,
    .close = tui_fe_close,
};
