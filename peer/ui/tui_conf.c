/* tui_conf: HOME/parley.conf, the terminal UI's settings, read once when
 * it starts (before the screen is taken, so an error is a plain line and
 * the peer exits).  One setting a line, "NAME = VALUE" (or "NAME VALUE",
 * as in the tracker's --config), '#' comment lines and blank lines; a
 * value may be put in double quotes to keep spaces at its ends.  A bad
 * line is an error naming the file and the line, in the tracker's words
 * ("PATH line N: ..."), and saying what would be right.  Command-line
 * flags win over the file (--no-bell over bell).  The file is small and
 * read once: plain stdio. */
#include "tui_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TUI_CONF_MAX_BYTES (64 * 1024)

void tui_conf_defaults(tui_conf *c) {
    memset(c, 0, sizeof *c);
    c->colors = 1;
    c->bell = BELL_ON;
    snprintf(c->time_format, sizeof c->time_format, "%%H:%%M:%%S");
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r'; }

/* Keys a binding may not take, and what they do already. */
static const struct {
    char ctrl;
    const char *does;
} taken[] = {
    {'a', "moves to the start of the line"}, {'c', "quits"}, {'e', "moves to the end of the line"},
    {'g', "leaves a search"}, {'h', "is Backspace"}, {'i', "is Tab"}, {'j', "is Enter"},
    {'l', "redraws the screen"}, {'m', "is Enter"}, {'q', "is the terminal's flow control"},
    {'s', "is the terminal's flow control"}, {'u', "clears the input line"},
    {'z', "suspends"},
};

/* "Ctrl-X", "Alt-X" (X a letter) or "F1".."F12": 0, else -1 with the
 * reason in why. */
static int parse_key(const char *v, tui_bind *b, char *why, size_t whylen) {
    static const char *const ctrl[] = {"ctrl-", "c-", NULL};
    static const char *const alt[] = {"alt-", "meta-", "m-", NULL};
    memset(b, 0, sizeof *b);
    for (int m = 0; m < 2; m++) {
        const char *const *pre = m ? alt : ctrl;
        for (int i = 0; pre[i]; i++) {
            size_t k = strlen(pre[i]);
            if (strncasecmp(v, pre[i], k) != 0)
                continue;
            char ch = v[k];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if (m && ch >= '0' && ch <= '9' && !v[k + 1]) {
                snprintf(why, whylen, "Alt and a digit switch windows");
                return -1;
            }
            if (!(ch >= 'a' && ch <= 'z') || v[k + 1]) {
                snprintf(why, whylen, "after %s comes one letter", m ? "Alt-" : "Ctrl-");
                return -1;
            }
            for (size_t j = 0; !m && j < sizeof taken / sizeof *taken; j++)
                if (taken[j].ctrl == ch) {
                    snprintf(why, whylen, "Ctrl-%c %s already", ch - 'a' + 'A', taken[j].does);
                    return -1;
                }
            b->meta = m;
            b->ch = (wint_t)(m ? ch : ch & 0x1f);
            return 0;
        }
    }
    if ((v[0] == 'F' || v[0] == 'f') && v[1] >= '1' && v[1] <= '9') {
        char *end;
        long n = strtol(v + 1, &end, 10);
        if (!*end && n >= 1 && n <= 12) {
            if (n == 2) {
                snprintf(why, whylen, "F2 moves to the users panel already");
                return -1;
            }
            b->is_code = 1;
            b->ch = (wint_t)KEY_F(n);
            return 0;
        }
    }
    snprintf(why, whylen, "a key is Ctrl-LETTER, Alt-LETTER or F1 to F12");
    return -1;
}

static const struct {
    const char *name;
    int action;
} actions[] = {
    {"key-search", ACT_SEARCH},
    {"key-prev-window", ACT_PREV_WINDOW},
    {"key-next-window", ACT_NEXT_WINDOW},
    {"key-clear", ACT_CLEAR},
};

#define SETTINGS "tracker, colors, bell, time-format, key-search, key-prev-window, " \
                 "key-next-window, key-clear"

static int on_off(const char *v, int *out) {
    if (strcmp(v, "on") == 0)
        *out = 1;
    else if (strcmp(v, "off") == 0)
        *out = 0;
    else
        return -1;
    return 0;
}

/* One setting; 0, or -1 with the reason (after "PATH line N: ") in err. */
static int apply(tui_conf *c, const char *name, const char *v, char *err, size_t errlen) {
    if (strcmp(name, "colors") == 0 || strcmp(name, "colours") == 0) {
        if (on_off(v, &c->colors) == 0)
            return 0;
        snprintf(err, errlen, "%s %s is not on or off", name, v);
        return -1;
    }
    if (strcmp(name, "bell") == 0) {
        int on;
        if (strcmp(v, "mentions") == 0)
            c->bell = BELL_MENTIONS;
        else if (on_off(v, &on) == 0)
            c->bell = on ? BELL_ON : BELL_OFF;
        else {
            snprintf(err, errlen, "bell %s is not on, off or mentions", v);
            return -1;
        }
        return 0;
    }
    if (strcmp(name, "time-format") == 0) {
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                snprintf(err, errlen, "time-format has a control character");
                return -1;
            }
        /* What it gives for a late time on a long day, to see it fits. */
        struct tm tm = {.tm_year = 126, .tm_mon = 11, .tm_mday = 30, .tm_hour = 23,
                        .tm_min = 59, .tm_sec = 59, .tm_wday = 3, .tm_yday = 363};
        char out[TUI_TIME_FORMAT_MAX];
        size_t n = strlen(v) < sizeof c->time_format ? strftime(out, sizeof out, v, &tm) : 0;
        if (n == 0 || tui_width(out, n) > 32) {
            snprintf(err, errlen, "time-format %s gives %s; a strftime format like %%H:%%M:%%S, "
                     "at most 32 columns wide", v, n ? "more than 32 columns" : "nothing");
            return -1;
        }
        snprintf(c->time_format, sizeof c->time_format, "%s", v);
        return 0;
    }
    for (size_t i = 0; i < sizeof actions / sizeof *actions; i++) {
        if (strcmp(name, actions[i].name) != 0)
            continue;
        tui_bind b;
        char why[160];
        if (parse_key(v, &b, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s %s: %s", name, v, why);
            return -1;
        }
        if (!b.is_code && !b.meta && b.ch == ('r' & 0x1f) && actions[i].action != ACT_SEARCH) {
            snprintf(err, errlen, "%s %s: Ctrl-R searches already", name, v);
            return -1;
        }
        if (c->nbinds == TUI_BINDS_MAX) {
            snprintf(err, errlen, "more than %d key bindings", TUI_BINDS_MAX);
            return -1;
        }
        b.action = actions[i].action;
        c->binds[c->nbinds++] = b;
        return 0;
    }
    if (strcmp(name, "tracker") == 0) {
        char host[ADDR_STRLEN], port[8];
        int r = addr_split(v, "5960", host, sizeof host, port, sizeof port);
        if (r || strlen(v) >= sizeof c->tracker) {
            snprintf(err, errlen, "tracker %s is not HOST:PORT (%s)", v,
                     r ? addr_split_error(r) : "too long");
            return -1;
        }
        snprintf(c->tracker, sizeof c->tracker, "%s", v);
        return 0;
    }
    snprintf(err, errlen, "unknown setting %s; the settings are " SETTINGS, name);
    return -1;
}

int tui_conf_tracker(const char *home, char *out, size_t outlen, char *err, size_t errlen) {
    char path[4200];
    tui_conf c;
    snprintf(path, sizeof path, "%s/parley.conf", home);
    int r = tui_conf_read(path, &c, err, errlen);
    if (r == 0)
        snprintf(out, outlen, "%s", c.tracker);
    return r;
}

int tui_conf_read(const char *path, tui_conf *c, char *err, size_t errlen) {
    tui_conf_defaults(c);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (e == ENOENT)
            return 0; /* no file: the defaults */
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(e));
        return uv_translate_sys_error(e);
    }
    char *raw = malloc(TUI_CONF_MAX_BYTES + 1);
    size_t n = raw ? fread(raw, 1, TUI_CONF_MAX_BYTES + 1, f) : 0;
    int failed = raw ? ferror(f) : 0;
    fclose(f);
    if (!raw || failed || n > TUI_CONF_MAX_BYTES) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 !raw ? "out of memory" : failed ? "read error" : "larger than 64 KiB");
        free(raw);
        return !raw ? UV_ENOMEM : failed ? UV_EIO : UV_E2BIG;
    }
    if (memchr(raw, '\0', n)) {
        snprintf(err, errlen, "%s contains a NUL byte; it must be text", path);
        free(raw);
        return UV_EINVAL;
    }
    raw[n] = '\0';
    int r = 0;
    char *line = raw;
    for (int lineno = 1; line && *line && r == 0; lineno++) {
        char *nl = strchr(line, '\n'), *next = nl ? nl + 1 : NULL;
        char *e = nl ? nl : line + strlen(line);
        while (line < e && is_space(*line))
            line++;
        while (e > line && is_space(e[-1]))
            e--;
        *e = '\0';
        if (line == e || *line == '#') {
            line = next;
            continue;
        }
        char *v = line;
        while (*v && !is_space(*v) && *v != '=')
            v++;
        char name[40];
        snprintf(name, sizeof name, "%.*s", (int)(v - line) < 39 ? (int)(v - line) : 39, line);
        while (is_space(*v))
            v++;
        if (*v == '=')
            v++;
        while (is_space(*v))
            v++;
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
            v[vl - 1] = '\0'; /* "  %H:%M  ": spaces kept */
            v++;
        }
        char why[400];
        if (!name[0]) {
            snprintf(why, sizeof why, "a line is NAME = VALUE");
            r = UV_EINVAL;
        } else if (!*v) {
            snprintf(why, sizeof why, "%s needs a value (%s = VALUE)", name, name);
            r = UV_EINVAL;
        } else if (apply(c, name, v, why, sizeof why) != 0) {
            r = UV_EINVAL;
        }
        if (r)
            snprintf(err, errlen, "%s line %d: %s; fix or remove the line", path, lineno, why);
        line = next;
    }
    free(raw);
    return r;
}
