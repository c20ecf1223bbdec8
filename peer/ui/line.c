/* line: line mode's face.  Turns each event into exactly one of the
 * stdout lines README.md ("Line mode") lists; scripts and the integration
 * tests match them byte for byte.  stdout is flushed by main.c before the
 * loop waits (once per loop pass, not once per line), so every line is out
 * before the peer sleeps.  Line mode keeps no state, so fe is unused, and
 * it can be ctx->fe_base: where events go when no other front end is open
 * (--help, and after the terminal UI gave the terminal back). */
#include "line.h"

#include "events.h"

#include <stdio.h>
#include <stdio_ext.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

static void l_registered(void *fe, const char *name, const char *tracker, const char *observed) {
    out("registered %s (tracker %s, seen as %s)", name, tracker, observed[0] ? observed : "?");
}

static void l_tracker_lost(void *fe, const char *tracker, const char *why, unsigned delay_ms,
                           int repeat, int was_registered) {
    if (repeat)
        return; /* once per outage and reason: a retry every few seconds is noise */
    if (!was_registered) /* never reached: maybe a wrong --tracker, so name it */
        out("error: cannot reach the tracker %s (--tracker): %s; retrying in %.1fs", tracker, why,
            delay_ms / 1000.0);
    else
        out("tracker lost: %s; reconnecting in %.1fs", why, delay_ms / 1000.0);
}

static void l_presence(void *fe, const char *name, int online) {
    out("%s %s", online ? "online" : "offline", name);
}

static void l_users(void *fe, char **names, size_t n) {
    printf("users %zu:", n);
    for (size_t i = 0; i < n; i++)
        printf(" %s", names[i]);
    out("%s", "");
}

static void l_connected(void *fe, const char *name, ev_path path, const char *how) {
    out("connected %s %s", name, path == EV_PATH_RELAY ? "relay" : "direct");
}

static void l_current(void *fe, const char *name) { out("current %s", name); }

/* Shows text exactly, but never lets it drive the terminal: control
 * characters other than tab (C0, DEL, and C1 in UTF-8) become \xNN and a
 * backslash becomes \\ so the escape stays unambiguous. */
static void escape_text(const char *text, size_t n, char *o_buf) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        int ctl = (c < 0x20 && c != '\t') || c == 0x7f;
        int c1 = c == 0xc2 && i + 1 < n && (unsigned char)text[i + 1] >= 0x80 &&
                 (unsigned char)text[i + 1] <= 0x9f;
        if (c == '\\') {
            o_buf[o++] = '\\';
            o_buf[o++] = '\\';
        } else if (ctl || c1) {
            for (int k = 0; k <= c1; k++) {
                unsigned char b = (unsigned char)text[i + (size_t)k];
                o_buf[o++] = '\\';
                o_buf[o++] = 'x';
                o_buf[o++] = hex[b >> 4];
                o_buf[o++] = hex[b & 15];
            }
            i += (size_t)c1;
        } else {
            o_buf[o++] = (char)c;
        }
    }
    o_buf[o] = '\0';
}

/* Whether escape_text would change anything: most text goes out as it is,
 * with no copy. */
static int needs_escape(const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c < 0x20 ? c != '\t' : c == 0x7f || c == '\\' || c == 0xc2)
            return 1;
    }
    return 0;
}

static void l_msg(void *fe, const char *name, uint64_t id, int64_t ts, const char *text,
                  size_t len) {
    if (!needs_escape(text, len)) {
        /* The busiest line: no format string to interpret, no copy. */
        fputs("msg ", stdout);
        fputs(name, stdout);
        fputs(": ", stdout);
        fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        return;
    }
    char small[1024];
    char *shown = len * 4 + 1 <= sizeof small ? small : malloc(len * 4 + 1); /* \xNN per byte at worst */
    if (!shown) {
        out("error: out of memory showing a message from %s", name);
        return;
    }
    escape_text(text, len, shown);
    fputs("msg ", stdout);
    fputs(name, stdout);
    fputs(": ", stdout);
    fputs(shown, stdout);
    fputc('\n', stdout);
    if (shown != small)
        free(shown);
}

static void l_delivered(void *fe, const char *name, uint64_t seq) {
    char num[24];
    int n = snprintf(num, sizeof num, " #%llu\n", (unsigned long long)seq);
    fputs("delivered ", stdout);
    fputs(name, stdout);
    fwrite(num, 1, (size_t)n, stdout);
}

static void l_stored(void *fe, const char *name, uint64_t seq) {
    out("stored %s #%llu", name, (unsigned long long)seq);
}

/* history NAME TIME > TEXT (STATE) for ours, history NAME TIME < TEXT for
 * theirs; TIME is local, to the second, without spaces so a script can
 * split the line. */
static void l_history(void *fe, const char *name, const ev_hist_row *rows, size_t n) {
    if (n == 0)
        out("history %s none", name);
    for (size_t i = 0; i < n; i++) {
        const ev_hist_row *r = &rows[i];
        char when[32] = "?", small[1024];
        time_t secs = (time_t)(r->ts / 1000);
        struct tm tm;
        if (localtime_r(&secs, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        char *shown = r->len * 4 + 1 <= sizeof small ? small : malloc(r->len * 4 + 1);
        if (!shown) {
            out("error: out of memory showing the history with %s", name);
            return;
        }
        escape_text(r->text, r->len, shown);
        if (r->out)
            out("history %s %s > %s (%s)", name, when, shown, r->state);
        else
            out("history %s %s < %s", name, when, shown);
        if (shown != small)
            free(shown);
    }
}

static void l_closed(void *fe, const char *name, ev_close_why why) {
    static const char *text[] = {
        [EV_CLOSED_BYE] = "bye",
        [EV_CLOSED_LOST] = "connection lost",
        [EV_CLOSED_YOU_BYE] = "you said bye",
    };
    out("closed %s: %s", name, text[why]);
}

static void l_unreachable(void *fe, const char *name, const char *reason) {
    out("error: cannot reach %s: %s", name, reason);
}

static void l_error(void *fe, const char *code, const char *text) { out("error: %s", text); }

static void l_help(void *fe, const char *const *lines, size_t n) {
    for (size_t i = 0; i < n; i++)
        out("%s", lines[i]);
}

static void l_bye(void *fe) { out("bye"); }

static void l_trusted(void *fe, const char *name, const char *fp, const char *was) {
    if (was)
        out("trusted %s %s (was %s)", name, fp, was);
    else
        out("trusted %s %s", name, fp);
}

static void l_whois(void *fe, const char *name, const char *pinned, const char *tracker) {
    out("whois %s pinned %s tracker %s", name, pinned ? pinned : "none",
        tracker ? tracker : "unknown");
}

void line_flush(void *fe) {
    if (__fpending(stdout))
        fflush(stdout);
}

const ev_frontend line_frontend = {
    .name = "line",
    .registered = l_registered,
    .tracker_lost = l_tracker_lost,
    .presence = l_presence,
    .users = l_users,
    .connected = l_connected,
    .current = l_current,
    .msg = l_msg,
    .sent = NULL, /* line mode does not echo what you typed */
    .delivered = l_delivered,
    .stored = l_stored,
    .history = l_history,
    .closed = l_closed,
    .unreachable = l_unreachable,
    .error = l_error,
    .help = l_help,
    .bye = l_bye,
    .trusted = l_trusted,
    .whois = l_whois,
    .close = NULL,
    .flush = line_flush,
};
