/* json: the --ui json face, for scripts and bots.  Each event is
 * one JSON object on one stdout line with a stable "type" field first and
 * "ts" (when the peer emitted it: wall clock, integer microseconds since
 * the Unix epoch) second; README.md ("Scripting with --ui json") lists
 * every type and field.  stdout is flushed by main.c before the loop waits
 * (once per loop pass), so every line is out before the peer sleeps.
 * Input is line mode's (line_input.c), unchanged.  Text from the network is
 * untrusted: control characters are \u-escaped and invalid UTF-8 becomes
 * U+FFFD, so every line is valid UTF-8 JSON whatever a peer sends.  No
 * state, so fe is unused, and it stays ctx->fe_base through shutdown: the
 * last events and "bye" still parse. */
#include "json.h"
#include "line.h"

#include "events.h"
#include "name.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A growing line, on the stack until it outgrows small; on out of memory
 * it sets failed and the event is dropped with a note on stderr (stdout
 * must stay parseable). */
typedef struct jbuf {
    char *p;
    size_t len, cap;
    int failed;
    char small[1024];
} jbuf;

/* put, when the piece does not fit: doubles the buffer (off the stack). */
static void put_grow(jbuf *b, const char *s, size_t n) {
    if (b->failed)
        return;
    size_t cap = b->cap * 2;
    while (cap < b->len + n + 1)
        cap *= 2;
    char *p = b->p == b->small ? malloc(cap) : realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return;
    }
    if (b->p == b->small)
        memcpy(p, b->small, b->len);
    b->p = p;
    b->cap = cap;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Every piece of every event goes through here: the common case (it fits)
 * is a compare and a copy, inlined. */
static inline void put(jbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap || b->failed) {
        put_grow(b, s, n);
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(jbuf *b, const char *s) { put(b, s, strlen(s)); }

/* The bytes that go into a JSON string as they are: printable ASCII but
 * '"' and '\\' (one table lookup per byte of a message's text). */
#define P16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
static const unsigned char plain[256] = {
    [0x20] = 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x22 '"' */
    P16, P16,                                                 /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,           /* 0x5c '\\' */
    P16,                                                      /* 0x60-0x6f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,           /* 0x7f DEL */
};
#undef P16

/* A JSON string: quotes and backslash escaped, C0, DEL, C1 and the line
 * separators U+2028/2029 as \uXXXX (JavaScript consumers choke on them
 * raw), each invalid UTF-8 byte as \ufffd. */
static void put_body(jbuf *b, const char *text, size_t n) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        /* A run of printable ASCII other than '"' and '\\' goes as it is,
         * in one piece: most text is nothing else. */
        size_t run = i;
        while (run < n && plain[s[run]])
            run++;
        if (run > i) {
            put(b, text + i, run - i);
            i = run;
            continue;
        }
        unsigned cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        char esc[8];
        if (len == 0) {
            puts_(b, "\\ufffd");
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            esc[0] = '\\', esc[1] = (char)cp;
            put(b, esc, 2);
        } else if (cp == '\n') {
            puts_(b, "\\n");
        } else if (cp == '\t') {
            puts_(b, "\\t");
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
            snprintf(esc, sizeof esc, "\\u%04x", cp);
            put(b, esc, 6);
        } else {
            put(b, text + i, len);
        }
        i += len;
    }
}

static void put_str(jbuf *b, const char *text, size_t n) {
    put(b, "\"", 1);
    put_body(b, text, n);
    put(b, "\"", 1);
}

/* ,"key":"value" */
static void field_str(jbuf *b, const char *key, const char *v) {
    put(b, ",\"", 2);
    puts_(b, key);
    put(b, "\":", 2);
    put_str(b, v, strlen(v));
}

/* ,"key":DIGITS (no printf: these are in every event). */
static void field_unum(jbuf *b, const char *key, unsigned long long v) {
    char num[24];
    size_t i = sizeof num;
    do
        num[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    put(b, ",\"", 2);
    puts_(b, key);
    put(b, "\":", 2);
    put(b, num + i, sizeof num - i);
}

static void field_num(jbuf *b, const char *key, long long v) {
    if (v >= 0)
        return field_unum(b, key, (unsigned long long)v);
    char num[24];
    size_t i = sizeof num;
    unsigned long long u = 0ULL - (unsigned long long)v;
    do
        num[--i] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    num[--i] = '-';
    put(b, ",\"", 2);
    puts_(b, key);
    put(b, "\":", 2);
    put(b, num + i, sizeof num - i);
}

/* {"type":"TYPE","ts":MICROSECONDS */
static void begin(jbuf *b, const char *type) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    b->p = b->small;
    b->len = 0;
    b->cap = sizeof b->small;
    b->failed = 0;
    puts_(b, "{\"type\":\"");
    puts_(b, type);
    puts_(b, "\"");
    field_num(b, "ts", (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
}

static void end(jbuf *b, const char *type) {
    put(b, "}\n", 2);
    if (b->failed)
        fprintf(stderr, "parley: out of memory; a %s event was not shown\n", type);
    else
        fwrite(b->p, 1, b->len, stdout);
    if (b->p != b->small)
        free(b->p);
}

static void j_registered(void *fe, const char *name, const char *tracker, const char *observed) {
    jbuf b;
    begin(&b, "registered");
    field_str(&b, "name", name);
    field_str(&b, "tracker", tracker);
    if (observed[0])
        field_str(&b, "seen_as", observed);
    else
        puts_(&b, ",\"seen_as\":null");
    end(&b, "registered");
}

static void j_tracker_lost(void *fe, const char *tracker, const char *why, unsigned delay_ms,
                           int repeat, int was_registered) {
    jbuf b;
    begin(&b, "tracker_lost");
    field_str(&b, "reason", why);
    field_num(&b, "retry_ms", delay_ms);
    puts_(&b, repeat ? ",\"repeat\":true" : ",\"repeat\":false");
    field_str(&b, "tracker", tracker);
    puts_(&b, was_registered ? ",\"was_registered\":true" : ",\"was_registered\":false");
    end(&b, "tracker_lost");
}

static void j_presence(void *fe, const char *name, int online) {
    jbuf b;
    begin(&b, "presence");
    field_str(&b, "name", name);
    puts_(&b, online ? ",\"online\":true" : ",\"online\":false");
    end(&b, "presence");
}

static void j_users(void *fe, char **names, size_t n) {
    jbuf b;
    begin(&b, "users");
    field_unum(&b, "count", n);
    puts_(&b, ",\"names\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(&b, ",", 1);
        put_str(&b, names[i], strlen(names[i]));
    }
    put(&b, "]", 1);
    end(&b, "users");
}

static void j_connected(void *fe, const char *name, ev_path path, const char *how) {
    jbuf b;
    begin(&b, "connected");
    field_str(&b, "name", name);
    field_str(&b, "path", path == EV_PATH_RELAY ? "relay" : "direct");
    field_str(&b, "how", how);
    end(&b, "connected");
}

static void j_current(void *fe, const char *name) {
    jbuf b;
    begin(&b, "current");
    field_str(&b, "name", name);
    end(&b, "current");
}

/* message and sent: who, a number, when, the text. */
static void text_event(const char *type, const char *who_key, const char *who,
                       const char *num_key, uint64_t num, int64_t ts, const char *text,
                       size_t len) {
    jbuf b;
    begin(&b, type);
    field_str(&b, who_key, who);
    field_unum(&b, num_key, num);
    field_num(&b, "time", ts);
    puts_(&b, ",\"text\":");
    put_str(&b, text, len);
    end(&b, type);
}

static void j_msg(void *fe, const char *name, uint64_t id, int64_t ts, const char *text,
                  size_t len) {
    text_event("message", "from", name, "id", id, ts, text, len);
}

static void j_sent(void *fe, const char *name, uint64_t seq, int64_t ts, const char *text,
                   size_t len) {
    text_event("sent", "to", name, "seq", seq, ts, text, len);
}

static void j_delivered(void *fe, const char *name, uint64_t seq) {
    jbuf b;
    begin(&b, "delivered");
    field_str(&b, "to", name);
    field_unum(&b, "seq", seq);
    end(&b, "delivered");
}

static void j_stored(void *fe, const char *name, uint64_t seq) {
    jbuf b;
    begin(&b, "stored");
    field_str(&b, "to", name);
    field_unum(&b, "seq", seq);
    end(&b, "stored");
}

/* One event for the whole answer, so a script reads it in one line. */
static void j_history(void *fe, const char *name, const ev_hist_row *rows, size_t n) {
    jbuf b;
    begin(&b, "history");
    field_str(&b, "name", name);
    puts_(&b, ",\"rows\":[");
    for (size_t i = 0; i < n; i++) {
        const ev_hist_row *r = &rows[i];
        puts_(&b, i ? ",{" : "{");
        puts_(&b, r->out ? "\"dir\":\"out\"" : "\"dir\":\"in\"");
        field_num(&b, "time", r->ts);
        if (r->out) {
            field_unum(&b, "seq", r->seq);
            field_str(&b, "state", r->state);
        }
        puts_(&b, ",\"text\":");
        put_str(&b, r->text, r->len);
        put(&b, "}", 1);
    }
    put(&b, "]", 1);
    end(&b, "history");
}

static void j_closed(void *fe, const char *name, ev_close_why why) {
    static const char *reason[] = {
        [EV_CLOSED_BYE] = "bye",
        [EV_CLOSED_LOST] = "lost",
        [EV_CLOSED_YOU_BYE] = "you_bye",
    };
    jbuf b;
    begin(&b, "closed");
    field_str(&b, "name", name);
    field_str(&b, "reason", reason[why]);
    end(&b, "closed");
}

static void j_unreachable(void *fe, const char *name, const char *reason) {
    jbuf b;
    begin(&b, "error");
    field_str(&b, "code", "unreachable");
    field_str(&b, "name", name);
    field_str(&b, "reason", reason);
    puts_(&b, ",\"text\":\"cannot reach ");
    put_body(&b, name, strlen(name));
    put(&b, ": ", 2);
    put_body(&b, reason, strlen(reason));
    put(&b, "\"", 1);
    end(&b, "error");
}

/* code: a stable word for the kind of error (README lists them), so
 * scripts need not match the text, which may be reworded. */
static void j_error(void *fe, const char *code, const char *text) {
    jbuf b;
    begin(&b, "error");
    field_str(&b, "code", code);
    field_str(&b, "text", text);
    end(&b, "error");
}

static void j_help(void *fe, const char *const *lines, size_t n) {
    jbuf b;
    begin(&b, "help");
    puts_(&b, ",\"lines\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(&b, ",", 1);
        put_str(&b, lines[i], strlen(lines[i]));
    }
    put(&b, "]", 1);
    end(&b, "help");
}

static void j_trusted(void *fe, const char *name, const char *fp, const char *was) {
    jbuf b;
    begin(&b, "trusted");
    field_str(&b, "name", name);
    field_str(&b, "fingerprint", fp);
    if (was)
        field_str(&b, "was", was);
    else
        puts_(&b, ",\"was\":null");
    end(&b, "trusted");
}

/* NULL fingerprints (no pinned key, tracker does not know the name) are null. */
static void j_whois(void *fe, const char *name, const char *pinned, const char *tracker) {
    jbuf b;
    begin(&b, "whois");
    field_str(&b, "name", name);
    if (pinned)
        field_str(&b, "pinned", pinned);
    else
        puts_(&b, ",\"pinned\":null");
    if (tracker)
        field_str(&b, "tracker", tracker);
    else
        puts_(&b, ",\"tracker\":null");
    end(&b, "whois");
}

static void j_bye(void *fe) {
    jbuf b;
    begin(&b, "bye");
    end(&b, "bye");
}

const ev_frontend json_frontend = {
    .name = "json",
    .registered = j_registered,
    .tracker_lost = j_tracker_lost,
    .presence = j_presence,
    .users = j_users,
    .connected = j_connected,
    .current = j_current,
    .msg = j_msg,
    .sent = j_sent,
    .delivered = j_delivered,
    .stored = j_stored,
    .history = j_history,
    .closed = j_closed,
    .unreachable = j_unreachable,
    .error = j_error,
    .help = j_help,
    .trusted = j_trusted,
    .whois = j_whois,
    .bye = j_bye,
    .close = NULL, /* stateless: nothing to release */
    .flush = line_flush,
};
