/* tui_events: the terminal UI as an ev_frontend.  Each event updates the
 * model (tui_model.c) and marks the screen dirty; painting happens once per
 * loop pass (tui.c), however many events arrived. */
#include "tui_impl.h"

#include "control.h"

#include <stdio.h>
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

static void t_tracker_lost(void *fe, const char *why, unsigned delay_ms, int repeat) {
    tui *t = fe;
    t->trk = TRK_RECONNECTING;
    t->retry_at = uv_now(t->ctx->loop) + delay_ms;
    /* Ticks only while reconnecting, to count the seconds down. */
    uv_timer_start(&t->countdown, on_countdown, 1000, 1000);
    /* The status bar counts down each retry; the windows say it once. */
    if (!repeat)
        tui_conv_info(&t->system, "tracker lost: %s; reconnecting in %.1fs", why,
                      delay_ms / 1000.0);
    tui_notice(t, repeat ? tui_here(t) : &t->system, NOTE_TRACKER, NULL, "tracker lost: %s", why);
    tui_dirty(t);
}

static void t_presence(void *fe, const char *name, int online) {
    tui *t = fe;
    tui_user_set_online(t, name, online);
    tui_conv *cv = tui_conv_find(t, name);
    if (cv)
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

static void t_connected(void *fe, const char *name, ev_path path) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (cv) {
        cv->linked = 1;
        cv->path = path;
        tui_conv_info(cv, "connected to %s (%s)", name, path == EV_PATH_RELAY ? "relay" : "direct");
    }
    tui_notice_over(t, NOTE_USER, name); /* "cannot reach NAME" is over */
    tui_dirty(t);
}

static void t_current(void *fe, const char *name) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (cv) {
        t->shown = cv;
        cv->unread = 0;
    }
    tui_dirty(t);
}

static void t_msg(void *fe, const char *name, uint64_t id, int64_t ts, const char *text,
                  size_t len) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (!cv)
        return;
    tui_conv_add(cv, TE_IN, ts, 0, name, text, len);
    if (cv != t->shown) {
        cv->unread++;
        if (!t->ctx->no_bell)
            t->bell_pending = 1; /* rung once at the next paint */
    }
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

static void t_delivered(void *fe, const char *name, uint64_t seq) {
    tui *t = fe;
    tui_conv *cv = tui_conv_find(t, name);
    if (!cv)
        return;
    /* seq restarts when a conversation is ended and begun again: the
     * newest undelivered one with that number is the one. */
    for (size_t i = cv->n; i-- > 0;) {
        tui_entry *e = cv->v[i];
        if (e->kind == TE_OUT && e->seq == seq && !e->delivered) {
            e->delivered = 1;
            break;
        }
    }
    tui_dirty(t);
}

static void t_closed(void *fe, const char *name, ev_close_why why) {
    tui *t = fe;
    tui_conv *cv = tui_conv_get(t, name);
    if (!cv)
        return;
    cv->linked = 0;
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
    .closed = t_closed,
    .unreachable = t_unreachable,
    .error = t_error,
    .help = t_help,
    .trusted = t_trusted,
    .whois = t_whois,
    .bye = NULL,
    .close = tui_fe_close,
};
