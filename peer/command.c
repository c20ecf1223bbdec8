/* command: the one place that knows the command syntax; line mode, --ui
 * json and the terminal UI all hand their input lines to cmd_line. */
#include "command.h"

#include "chat.h"
#include "control.h"
#include "events.h"
#include "pins.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cmd_help(peer_ctx *ctx) {
    static const char *const lines[] = {
        "  /list [PREFIX]   list online users (whose name starts with PREFIX)",
        "  /dial NAME       connect to NAME and make it the current conversation",
        "  /msg NAME TEXT   send TEXT to NAME (connecting if needed); current stays",
        "  TEXT             a line without a leading / goes to the current conversation",
        "  //TEXT           sends /TEXT to the current conversation",
        "  /bye             end the current conversation politely",
        "  /whois NAME      fingerprints of NAME's pinned key and of the tracker's key",
        "  /trust NAME      accept the key the tracker now has for NAME (after a key change)",
        "  /history NAME [N] the last N (default 20) messages with NAME, oldest first",
        "  /quit            leave now (end of input also leaves, after waiting up to 5 s for acks)",
        "  /help            this list",
    };
    ev_help(ctx, lines, sizeof lines / sizeof *lines);
}

static void on_list(void *data, int status, char **names, size_t n) {
    peer_ctx *ctx = data;
    if (status == UV_ENOTCONN || status == UV_ECONNRESET) {
        ev_error(ctx, "tracker_unreachable", "the tracker is unreachable; /list works again once "
                 "\"registered\" is shown");
        return;
    }
    if (status) {
        ev_error(ctx, "tracker_refused", "the tracker refused the list request (%s)", uv_strerror(status));
        return;
    }
    ev_users(ctx, names, n);
}

/* /trust and /whois: both start from the tracker's current key. */
typedef struct keyq {
    peer_ctx *ctx;
    int trust;
    char name[NAME_BUFLEN + 1]; /* as typed */
    char fold[NAME_BUFLEN];
} keyq;

static void on_keyq(void *data, int status, const ctl_user *u) {
    keyq *q = data;
    peer_ctx *ctx = q->ctx;
    unsigned char pinned[IDENT_PK];
    char pfp[32], tfp[32], err[300];
    int have_pin = pins_get(ctx->pins, q->fold, pinned) == 0;
    if (have_pin)
        ident_fingerprint(pinned, pfp);
    if (status == 0)
        ident_fingerprint(u->key, tfp);
    if (status == UV_ENOENT || status == UV_EINVAL) {
        ev_error(ctx, "unknown_user", "no user %s", q->name);
    } else if (!q->trust) {
        ev_whois(ctx, status == 0 ? u->name : q->name, have_pin ? pfp : NULL,
                 status == 0 ? tfp : NULL);
    } else if (status) {
        ev_error(ctx, "lookup_failed", "cannot trust %s: the tracker is unreachable (%s); try again once "
                 "\"registered\" is shown", q->name, uv_strerror(status));
    } else if (pins_set(ctx->pins, q->fold, u->key, err, sizeof err)) {
        ev_error(ctx, "lookup_failed", "cannot trust %s: %s", q->name, err);
    } else {
        int changed = have_pin && sodium_memcmp(pinned, u->key, IDENT_PK) != 0;
        ev_trusted(ctx, u->name, tfp, changed ? pfp : NULL);
    }
    free(q);
}

static void key_command(peer_ctx *ctx, const char *name, int trust) {
    keyq *q = calloc(1, sizeof *q);
    if (!q) {
        ev_error(ctx, "out_of_memory", "out of memory");
        return;
    }
    q->ctx = ctx;
    q->trust = trust;
    snprintf(q->name, sizeof q->name, "%s", name);
    const char *why;
    int r = name_check(name, strlen(name), &why) ? UV_EINVAL
            : name_fold(name, strlen(name), q->fold) ? UV_EINVAL
            : ctl_lookup(ctx->ctl, name, 1, on_keyq, q);
    if (r) {
        ev_error(ctx, "lookup_failed", "cannot look up %s: %s", name,
                 r == UV_EINVAL ? "that is not a valid user name" : uv_strerror(r));
        free(q);
    }
}

/* Splits off the next space-separated word: returns it NUL-terminated in
 * word, advances *p past it and one following space. */
static int next_word(const char **p, char *word, size_t wordlen) {
    const char *s = *p;
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, " ");
    if (n == 0 || n >= wordlen)
        return n == 0 ? UV_ENOENT : UV_E2BIG;
    memcpy(word, s, n);
    word[n] = '\0';
    s += n;
    if (*s == ' ')
        s++;
    *p = s;
    return 0;
}

/* /history NAME [N] */
static void history_command(peer_ctx *ctx, const char *rest) {
    char name[NAME_BUFLEN + 1], num[16];
    int r = next_word(&rest, name, sizeof name);
    if (r == UV_ENOENT) {
        ev_error(ctx, "usage", "/history needs a name: /history NAME [N]");
        return;
    }
    if (r) {
        ev_error(ctx, "usage", "that name is too long (at most 32 characters)");
        return;
    }
    unsigned long n = 20;
    if ((r = next_word(&rest, num, sizeof num)) != UV_ENOENT) {
        char *end;
        n = strtoul(num, &end, 10);
        if (r || num[0] < '0' || num[0] > '9' || *end || n == 0 || n > 100000 ||
            rest[strspn(rest, " ")] != '\0') {
            ev_error(ctx, "usage", "/history NAME [N]: N is a number of messages from 1 to 100000");
            return;
        }
    }
    chat_history(ctx->chat, name, n);
}

void cmd_dial(peer_ctx *ctx, const char *name) { chat_dial(ctx->chat, name); }

void cmd_send_to(peer_ctx *ctx, const char *name, const char *text, size_t len) {
    chat_send_to(ctx->chat, name, text, len);
}

void cmd_line(peer_ctx *ctx, const char *line, size_t len) {
    if (len == 0)
        return;
    if (line[0] != '/') {
        chat_send_current(ctx->chat, line, len);
        return;
    }
    if (line[1] == '/') {
        chat_send_current(ctx->chat, line + 1, len - 1);
        return;
    }
    const char *rest = line + 1;
    char cmd[16], name[NAME_BUFLEN + 1];
    if (next_word(&rest, cmd, sizeof cmd)) {
        ev_error(ctx, "unknown_command", "unknown command %s; /help lists the commands", line);
        return;
    }
    if (strcmp(cmd, "list") == 0) {
        while (*rest == ' ')
            rest++;
        int r = ctl_list(ctx->ctl, rest, on_list, ctx);
        if (r)
            ev_error(ctx, "tracker_unreachable", "cannot list users: %s", uv_strerror(r));
    } else if (strcmp(cmd, "dial") == 0) {
        int r = next_word(&rest, name, sizeof name);
        if (r == UV_ENOENT)
            ev_error(ctx, "usage", "/dial needs a name: /dial NAME");
        else if (r)
            ev_error(ctx, "usage", "that name is too long (at most 32 characters)");
        else if (rest[strspn(rest, " ")] != '\0')
            ev_error(ctx, "usage", "/dial takes one name (names have no spaces): /dial NAME");
        else
            chat_dial(ctx->chat, name);
    } else if (strcmp(cmd, "msg") == 0) {
        int r = next_word(&rest, name, sizeof name);
        if (r == UV_ENOENT || *rest == '\0')
            ev_error(ctx, "usage", "/msg needs a name and a text: /msg NAME TEXT");
        else if (r)
            ev_error(ctx, "usage", "that name is too long (at most 32 characters)");
        else
            chat_send_to(ctx->chat, name, rest, len - (size_t)(rest - line));
    } else if (strcmp(cmd, "trust") == 0 || strcmp(cmd, "whois") == 0) {
        int r = next_word(&rest, name, sizeof name);
        if (r == UV_ENOENT)
            ev_error(ctx, "usage", "/%s needs a name: /%s NAME", cmd, cmd);
        else if (r)
            ev_error(ctx, "usage", "that name is too long (at most 32 characters)");
        else if (rest[strspn(rest, " ")] != '\0')
            ev_error(ctx, "usage", "/%s takes one name (names have no spaces): /%s NAME", cmd, cmd);
        else
            key_command(ctx, name, cmd[0] == 't');
    } else if (strcmp(cmd, "history") == 0) {
        history_command(ctx, rest);
    } else if (strcmp(cmd, "bye") == 0) {
        chat_bye(ctx->chat);
    } else if (strcmp(cmd, "quit") == 0) {
        peer_quit(ctx, 0, 1, QUIT_NOW); /* explicit: leave at once */
    } else if (strcmp(cmd, "help") == 0) {
        cmd_help(ctx);
    } else {
        ev_error(ctx, "unknown_command", "unknown command /%s; /help lists the commands", cmd);
    }
}
