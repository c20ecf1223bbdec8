/* main: the peer's entry point and the top of its layers.  Parses the
 * command line, builds the one context, opens the modules (chat port,
 * chat, inbound, tracker control, a front end) on one libuv loop and wires
 * the news of each lower module to the one that acts on it (the handler
 * tables below: no module calls up into another).  On /quit, end of input
 * or a signal it closes every handle and checks that the loop closes
 * cleanly.  The layers, top down: ui/ -> command -> chat and inbound
 * (siblings: inbound's links reach chat through the wiring here) -> dial
 * -> link, relay_join -> control -> chatport, keycache; all of them report
 * through events, and use seal, pins, seen and shared/. */
#include "chat.h"
#include "command.h"
#include "control.h"
#include "events.h"
#include "history.h"
#include "inbound.h"
#include "chatport.h"
#include "peer.h"
#include "pins.h"
#include "ui/json.h"
#include "ui/line.h"
#include "ui/line_input.h"
#include "ui/tui.h"

#include "addr.h"
#include "link.h"
#include "msg.h"
#include "username.h"
#include "version.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PEER_OUTBUF (1 << 20)

static const char usage_text[] =
    "usage: parley [--user NAME] [options]\n"
    "\n"
    "A parley chat peer: registers NAME with a tracker, listens for chat links,\n"
    "and chats directly with other peers.  In a terminal it shows the terminal\n"
    "UI: who is online on the left (click a name, or Tab/F2 then arrows and\n"
    "Enter), the conversation on the right, commands and messages typed at the\n"
    "bottom; its log goes to HOME/peer.log.  Otherwise (line mode) commands come\n"
    "on stdin, events go to stdout one per line, diagnostics go to stderr.\n"
    "\n"
    "options:\n"
    "  --user NAME            your user name (1-32 characters, no spaces); without\n"
    "                         it, the name of your last run (HOME/user), else your\n"
    "                         login name ($USER)\n"
    "  --tracker HOST:PORT    the tracker (default 127.0.0.1:5960); HOST may be a\n"
    "                         name, an IPv4 literal or an [IPv6] literal; without\n"
    "                         :PORT, port 5960.  Repeat it (up to 8) for trackers\n"
    "                         sharing one registry: tried in order, with backoff;\n"
    "                         when the one in use is lost, the next is tried\n"
    "  --listen HOST:PORT     where to accept chat links (default: an ephemeral\n"
    "                         port on all addresses, [::] dual-stack or 0.0.0.0)\n"
    "  --advertise HOST:PORT  also advertise this endpoint (a forwarded port);\n"
    "                         may be given up to 16 times\n"
    "  --home DIR             where the identity key lives (default ~/.parley)\n"
    "  --ui line|tui|json     user interface (default: tui when stdin and stdout\n"
    "                         are terminals, line otherwise); json: line mode's\n"
    "                         commands, every event one JSON object per line\n"
    "  --no-bell              terminal UI: no bell for messages in a conversation\n"
    "                         that is not on screen\n"
    "  --no-history           keep nothing on disk: no HOME/history.db, so messages\n"
    "                         wait for their ack in memory only (lost on exit), and\n"
    "                         nothing is left at or fetched from the tracker's\n"
    "                         mailbox for offline users\n"
    "  --echo                 answer every received message with the same text\n"
    "  --relay-after MS       when dialing, ask the tracker to relay if no direct\n"
    "                         link is up after MS milliseconds (0 to 600000,\n"
    "                         default 1000; 0 relays at once)\n"
    "  --link-timeout SEC     a chat link that carried nothing for SEC seconds is\n"
    "                         dead (a quiet link is pinged after a third of it;\n"
    "                         2 to 3600, default 60)\n"
    "  --log-level LEVEL      error, warn (default), info or debug; logs go to stderr\n"
    "  --version              the version and the protocol versions, then exit\n"
    "  --help                 this text\n"
    "\n"
    "terminal UI keys: Tab (on an empty line) or F2 users panel, where typing\n"
    "filters, Up/Down select, Enter opens; PgUp/PgDn or the wheel scroll; Up/Down\n"
    "input history; Tab completes a name; Alt-1..9 (or Esc then the digit) and\n"
    "Alt-Left/Right switch windows; Ctrl-R or /search TEXT searches the\n"
    "scrollback, /clear empties the window; /mouse toggles mouse reporting (to\n"
    "select text); Ctrl-C or /quit leaves.  Settings: HOME/parley.conf.\n"
    "\n"
    "commands (both modes):\n";

static int usage_error(const char *fmt, const char *arg) {
    fputs("error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("; run parley --help for the list of flags\n", stderr);
    return 2;
}

/* "error: --tracker h:99999: the port is out of range (0 to 65535); ..." */
static int bad_addr(const char *flag, const char *arg, int r) {
    fprintf(stderr, "error: %s %s: %s; run parley --help for the list of flags\n", flag, arg,
            addr_split_error(r));
    return 2;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(peer_ctx *ctx, int argc, char **argv, const char **home) {
    enum { O_USER = 1, O_TRACKER, O_LISTEN, O_HOME, O_UI, O_ECHO, O_ADVERTISE, O_LOG, O_HELP,
           O_NO_BELL, O_RELAY_AFTER, O_LINK_TIMEOUT, O_VERSION, O_NO_HISTORY };
    static const struct option opts[] = {
        {"user", required_argument, NULL, O_USER},
        {"tracker", required_argument, NULL, O_TRACKER},
        {"listen", required_argument, NULL, O_LISTEN},
        {"home", required_argument, NULL, O_HOME},
        {"ui", required_argument, NULL, O_UI},
        {"echo", no_argument, NULL, O_ECHO},
        {"advertise", required_argument, NULL, O_ADVERTISE},
        {"log-level", required_argument, NULL, O_LOG},
        {"help", no_argument, NULL, O_HELP},
        {"version", no_argument, NULL, O_VERSION},
        {"no-bell", no_argument, NULL, O_NO_BELL},
        {"no-history", no_argument, NULL, O_NO_HISTORY},
        {"relay-after", required_argument, NULL, O_RELAY_AFTER},
        {"link-timeout", required_argument, NULL, O_LINK_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    const char *user = NULL, *ui_mode = NULL;
    char host[ADDR_STRLEN], port[8];
    int r;
    opterr = 0;
    for (;;) {
        int o = getopt_long(argc, argv, "", opts, NULL);
        if (o == -1)
            break;
        switch (o) {
        case O_USER: user = optarg; break;
        case O_TRACKER:
            if ((r = addr_split(optarg, "5960", host, sizeof host, port, sizeof port)))
                return bad_addr("--tracker", optarg, r);
            if (!ctx->tracker_given)
                ctx->n_trackers = 0; /* the command line's replace the default */
            if (ctx->n_trackers == PEER_MAX_TRACKERS) {
                fprintf(stderr, "error: --tracker may be given %d times at most\n",
                        PEER_MAX_TRACKERS);
                return 2;
            }
            ctx->trackers[ctx->n_trackers++] = optarg;
            ctx->tracker = ctx->trackers[0];
            ctx->tracker_given = 1;
            break;
        case O_LISTEN:
            if ((r = addr_split(optarg, NULL, host, sizeof host, port, sizeof port)))
                return bad_addr("--listen", optarg, r);
            ctx->listen = optarg;
            break;
        case O_ADVERTISE:
            if ((r = addr_split(optarg, NULL, host, sizeof host, port, sizeof port)))
                return bad_addr("--advertise", optarg, r);
            if (ctx->n_advertise == PEER_MAX_ADVERTISE)
                return usage_error("--advertise given more than %s times", "16");
            ctx->advertise[ctx->n_advertise++] = optarg;
            break;
        case O_HOME:
            *home = optarg;
            ctx->home_given = 1;
            break;
        case O_UI: ui_mode = optarg; break;
        case O_ECHO: ctx->echo = 1; break;
        case O_NO_BELL: ctx->no_bell = 1; break;
        case O_NO_HISTORY: ctx->no_history = 1; break;
        case O_RELAY_AFTER: {
            char *end;
            unsigned long ms = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || ms > 600000)
                return usage_error("--relay-after %s is not a number of milliseconds from 0 to "
                                   "600000", optarg);
            ctx->relay_after_ms = ms;
            break;
        }
        case O_LINK_TIMEOUT: {
            char *end;
            unsigned long s = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || s < 2 || s > 3600)
                return usage_error("--link-timeout %s is not a number of seconds from 2 to 3600",
                                   optarg);
            ctx->link_timeout_ms = (uint64_t)s * 1000;
            break;
        }
        case O_LOG:
            if (log_level_parse(optarg, &ctx->lg.level))
                return usage_error("--log-level %s is not one of error, warn, info, debug", optarg);
            break;
        case O_HELP:
            fputs(usage_text, stdout);
            cmd_help(ctx);
            return 0;
        case O_VERSION:
            printf("parley %s (tracker protocol %d, chat link protocol %d)\n", PARLEY_VERSION,
                   PROTO_VERSION, LINK_VERSION);
            return 0;
        case ':':
            return usage_error("%s needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return usage_error("%s needs a value", argv[optind - 1]);
            return usage_error("unknown flag %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument %s", argv[optind]);
    const char *why;
    if (user && name_check(user, strlen(user), &why)) {
        fprintf(stderr, "error: invalid user name \"%s\": %s; choose 1 to 32 characters without "
                "spaces or control characters\n", user, why);
        return 2;
    }
    if (user) {
        snprintf(ctx->user, sizeof ctx->user, "%s", user);
        name_fold(user, strlen(user), ctx->user_fold);
    }
    if (!ui_mode) {
        ctx->use_tui = tui_possible();
    } else if (strcmp(ui_mode, "tui") == 0) {
        if (!tui_possible()) {
            fprintf(stderr, "error: --ui tui needs a terminal on stdin and stdout; use --ui line "
                    "(the default when they are not terminals)\n");
            return 2;
        }
        ctx->use_tui = 1;
    } else if (strcmp(ui_mode, "json") == 0) {
        ctx->fe_base = &json_frontend; /* line mode's input, JSON output */
    } else if (strcmp(ui_mode, "line") != 0) {
        return usage_error("--ui %s is not line, tui or json", ui_mode);
    }
    return -1;
}

static void on_quit_timer(uv_timer_t *t);

static void quit(peer_ctx *ctx, int code, int say_bye, int how) {
    if (ctx->quitting) {
        if (how == QUIT_NOW) /* a signal during draining: stop waiting */
            ctx->draining = 0;
        return;
    }
    ctx->quitting = 1;
    ctx->exit_code = code;
    ctx->say_bye = say_bye;
    ctx->draining = how == QUIT_DRAIN;
    ctx->drain_deadline = uv_now(ctx->loop) + PEER_DRAIN_MS;
    line_in_close(ctx->line_in); /* no more commands, even while draining */
    ctx->line_in = NULL;
    ev_close_frontend(ctx);
    uv_timer_start(&ctx->quit_timer, on_quit_timer, 0, 0);
}

static void close_all(peer_ctx *ctx) {
    line_in_close(ctx->line_in);
    ctx->line_in = NULL;
    ev_close_frontend(ctx);
    inbound_close(ctx->inbound);
    ctx->inbound = NULL;
    chat_leave(ctx->chat);
    /* Before the chat: its last batch's callbacks still find it. */
    hist_close(ctx->hist);
    ctx->hist = NULL;
    chat_close(ctx->chat);
    ctx->chat = NULL;
    port_close(ctx->port);
    ctx->port = NULL;
    ctl_close(ctx->ctl);
    ctx->ctl = NULL;
    uv_close((uv_handle_t *)&ctx->sigint, NULL);
    uv_close((uv_handle_t *)&ctx->sigterm, NULL);
    uv_close((uv_handle_t *)&ctx->quit_timer, NULL);
    uv_close((uv_handle_t *)&ctx->out_flush, NULL);
}

static void on_quit_timer(uv_timer_t *t) {
    peer_ctx *ctx = t->data;
    /* Polling is enough here: this runs for at most PEER_DRAIN_MS, once. */
    if (ctx->draining && chat_unsent(ctx->chat) > 0 && uv_now(ctx->loop) < ctx->drain_deadline) {
        uv_timer_start(t, on_quit_timer, 20, 0);
        return;
    }
    close_all(ctx);
}

/* ---- wiring: news from the lower layers to the modules that act on it ---- */

static void on_accept(void *data, uv_stream_t *server) {
    peer_ctx *ctx = data;
    inbound_accept(ctx->inbound, server);
}

static void on_incoming(void *data, chatlink *l) {
    peer_ctx *ctx = data;
    chat_incoming(ctx->chat, l);
}

static int is_linked(void *data, const char *fold) {
    peer_ctx *ctx = data;
    return chat_linked(ctx->chat, fold);
}

static const inbound_handler inbound_news = {on_incoming, is_linked};

static void on_registered(void *data) {
    peer_ctx *ctx = data;
    chat_tracker_ready(ctx->chat); /* relayed chats that dropped set up again */
    /* `parley` alone is this user next time */
    int r = uname_remember(ctx->loop, ctx->home, ctx->user, &ctx->lg);
    if (r)
        log_warn(&ctx->lg, "cannot remember the name %s in %s/user: %s", ctx->user, ctx->home,
                 uv_strerror(r));
}

static void on_presence(void *data, const char *name, int online) {
    peer_ctx *ctx = data;
    if (online)
        chat_peer_online(ctx->chat, name);
}

/* The users whose presence matters before anything is typed: everyone we
 * have a conversation with, then everyone pinned (control_subs.c bounds
 * the set). */
static int watch_conversation(const hist_row *row, void *arg) {
    peer_ctx *ctx = arg;
    ctl_watch(ctx->ctl, &row->peer, 1);
    return 0;
}

static void watch_pin(const char *fold, void *arg) {
    peer_ctx *ctx = arg;
    ctl_watch(ctx->ctl, &fold, 1);
}

static void watch_known(peer_ctx *ctx) {
    if (ctx->hist && hist_conversations(ctx->hist, watch_conversation, ctx))
        log_warn(&ctx->lg, "cannot read the conversations to follow their presence");
    pins_each(ctx->pins, watch_pin, ctx);
}

static void on_connect_request(void *data, const ctl_user *u, uint64_t tag) {
    peer_ctx *ctx = data;
    inbound_connect_request(ctx->inbound, u, tag);
}

static void on_connect_failed(void *data, const char *from, uint64_t tag, const char *why) {
    peer_ctx *ctx = data;
    chat_connect_failed(ctx->chat, from, tag, why);
}

static void on_punch(void *data, const ctl_user *u, const char *addr, unsigned delay_ms) {
    peer_ctx *ctx = data;
    inbound_punch(ctx->inbound, u, addr, delay_ms);
}

static void on_relay_offer(void *data, const char *from, const unsigned char token[IDENT_SESSION]) {
    peer_ctx *ctx = data;
    inbound_relay_offer(ctx->inbound, from, token);
}

static void on_refused(void *data, const char *code) {
    quit(data, 1, 0, QUIT_NOW);
}

/* The end of a history batch: what its callbacks showed leaves now, in
 * one write, before the acks they queued (written in the prepare phase). */
static void on_hist_batch(void *data, int status) { ev_flush(data); }

static void on_mail_stored(void *data, const char *to, uint64_t id) {
    peer_ctx *ctx = data;
    chat_mail_stored(ctx->chat, to, id);
}

static void on_mail_refused(void *data, uint64_t id, const char *code, const char *text) {
    peer_ctx *ctx = data;
    chat_mail_refused(ctx->chat, id, code, text);
}

static void on_mail(void *data, uint64_t mid, const char *from, const unsigned char key[IDENT_PK],
                    int64_t ts, const unsigned char *box, size_t n) {
    peer_ctx *ctx = data;
    chat_mail_letter(ctx->chat, mid, from, key, ts, box, n);
}

static void on_receipt(void *data, uint64_t rid, const char *to, uint64_t id, int status) {
    peer_ctx *ctx = data;
    chat_mail_receipt(ctx->chat, rid, to, id, status);
}

static const ctl_handler tracker_news = {
    .registered = on_registered,
    .presence = on_presence,
    .connect_request = on_connect_request,
    .connect_failed = on_connect_failed,
    .relay_offer = on_relay_offer,
    .punch = on_punch,
    .refused = on_refused,
    .mail_stored = on_mail_stored,
    .mail_refused = on_mail_refused,
    .mail = on_mail,
    .receipt = on_receipt,
};

/* Events are written to stdout's buffer as they happen and flushed here,
 * once per loop pass, just before the loop waits: a burst of events (an
 * echo's message and delivered lines, 32 acks) costs one write, and no
 * line waits while the peer sleeps.  Chat links flush their sockets from
 * their own prepare handles, which run before this one. */
static void on_out_flush(uv_prepare_t *h) {
    if (__fpending(stdout))
        fflush(stdout);
}

static void on_signal(uv_signal_t *s, int signum) {
    peer_ctx *ctx = s->data;
    log_info(&ctx->lg, "%s: shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    quit(ctx, 0, 1, QUIT_NOW);
}

static void on_line(void *data, const char *line, size_t len) {
    peer_ctx *ctx = data;
    if (!ctx->quitting)
        cmd_line(ctx, line, len);
}

static void on_eof(void *data, int status) { quit(data, 0, 1, QUIT_DRAIN); }

static void on_walk(uv_handle_t *h, void *arg) {
    log_error(arg, "handle still open at exit: %s", uv_handle_type_name(h->type));
}

/* No --user: the name of the last run, else the login name; the user is
 * told which (the terminal UI repeats it in its welcome).  0, or the exit
 * status. */
static int pick_user(peer_ctx *ctx, const char *home) {
    char err[4400];
    uname_source src;
    int r = uname_default(home, ctx->user, &src, err, sizeof err);
    if (r == UV_ENOENT) {
        fprintf(stderr, "error: no user name: pass --user NAME (1 to 32 characters, no spaces; "
                "$USER is not set or not a valid name)\n");
        return 2;
    }
    if (r) {
        fprintf(stderr, "error: %s\n", err);
        return 2;
    }
    name_fold(ctx->user, strlen(ctx->user), ctx->user_fold);
    snprintf(ctx->user_note, sizeof ctx->user_note, "you are %s: %s; --user NAME picks another",
             ctx->user, src == UNAME_LAST_RUN ? "the name of your last run" : "your login name");
    if (!ctx->use_tui)
        fprintf(stderr, "parley: %s\n", ctx->user_note);
    return 0;
}

static int run(peer_ctx *ctx, const char *home_arg) {
    char home[4096], err[512];
    if (ident_expand_home(home_arg, home, sizeof home)) {
        fprintf(stderr, "error: cannot expand %s (is $HOME set?); pass --home DIR\n", home_arg);
        return 2;
    }
    ctx->home = home;
    int r;
    if (!ctx->user[0] && (r = pick_user(ctx, home)))
        return r;
    r = ident_load(home, &ctx->id, err, sizeof err);
    if (r) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    /* HOME/parley.conf may name the tracker; --tracker wins. */
    char conf_tracker[ADDR_STRLEN], conf_err[600];
    if (tui_conf_tracker(home, conf_tracker, sizeof conf_tracker, conf_err, sizeof conf_err)) {
        fprintf(stderr, "error: %s\n", conf_err);
        return 1;
    }
    if (!ctx->tracker_given && conf_tracker[0])
        ctx->tracker = ctx->trackers[0] = conf_tracker;
    if ((r = pins_open(home, &ctx->pins, err, sizeof err))) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    uv_loop_t loop;
    if ((r = uv_loop_init(&loop))) {
        fprintf(stderr, "error: cannot start the event loop: %s\n", uv_strerror(r));
        pins_close(ctx->pins);
        return 1;
    }
    ctx->loop = &loop;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    ctx->id_base = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
    uv_timer_init(&loop, &ctx->quit_timer);
    uv_signal_init(&loop, &ctx->sigint);
    uv_signal_init(&loop, &ctx->sigterm);
    ctx->quit_timer.data = ctx->sigint.data = ctx->sigterm.data = ctx;
    uv_signal_start(&ctx->sigint, on_signal, SIGINT);
    uv_signal_start(&ctx->sigterm, on_signal, SIGTERM);
    uv_prepare_init(&loop, &ctx->out_flush);
    uv_prepare_start(&ctx->out_flush, on_out_flush);
    uv_unref((uv_handle_t *)&ctx->out_flush); /* it never keeps the loop alive */

    int status = 0;
    r = 0;
    if (!ctx->no_history && (r = hist_open(&loop, home, &ctx->lg, &ctx->hist, err, sizeof err)) == 0)
        hist_on_batch_end(ctx->hist, on_hist_batch, ctx);
    if (r) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
    } else if ((r = chat_open(ctx, &ctx->chat)) || (r = inbound_open(ctx, &inbound_news, ctx, &ctx->inbound))) {
        fprintf(stderr, "error: %s\n", uv_strerror(r));
        status = 1;
    } else if ((r = port_open(ctx, on_accept, ctx, &ctx->port, err, sizeof err))) {
        fprintf(stderr, "error: %s; pick another --listen address\n", err);
        status = 1;
    } else if ((r = ctl_open(ctx, &tracker_news, ctx, &ctx->ctl))) {
        fprintf(stderr, "error: cannot use tracker %s: %s\n", ctx->tracker, uv_strerror(r));
        status = 2;
    } else if (ctx->use_tui && (r = tui_open(ctx, home, err, sizeof err))) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
    } else if (!ctx->use_tui && (r = line_in_open(ctx, on_line, on_eof, &ctx->line_in))) {
        fprintf(stderr, "error: cannot read commands from stdin: %s\n", uv_strerror(r));
        status = 1;
    }
    if (status) {
        ctx->quitting = 1;
        close_all(ctx); /* the loop still has to run the close callbacks */
    } else {
        watch_known(ctx); /* registering waits for the loop, so it sends these */
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!status)
        status = ctx->exit_code;
    pins_close(ctx->pins);
    ctx->pins = NULL;
    r = uv_loop_close(&loop);
    if (r) {
        uv_walk(&loop, on_walk, &ctx->lg);
        log_error(&ctx->lg, "event loop did not close cleanly: %s", uv_strerror(r));
        return 1;
    }
    if (ctx->say_bye)
        ev_bye(ctx);
    return status;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN); /* a closed socket or stdout must not kill us */
    peer_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.lg.level = LOG_WARN;
    ctx.lg.prog = "parley";
    ctx.tracker = ctx.trackers[0] = "127.0.0.1:5960";
    ctx.n_trackers = 1;
    ctx.relay_after_ms = PEER_RELAY_AFTER_MS;
    ctx.link_timeout_ms = (uint64_t)PEER_LINK_TIMEOUT_S * 1000;
    ctx.on_quit = quit;
    /* Also the terminal UI's: what comes before it (--help) and after it
     * gave the terminal back (the last error, bye) is plain lines. */
    ctx.fe_base = &line_frontend;
    const char *home = "~/.parley";
    int r = parse_args(&ctx, argc, argv, &home);
    if (r >= 0)
        return r;
    /* Fully buffered even on a terminal: the loop flushes it every pass
     * (on_out_flush) and before every ack (ev_flush), and exit flushes the
     * last lines.  glibc ignores the size when it picks the buffer itself
     * (a pipe gets 4 KiB): give it one, which lives until that exit, large
     * enough for a batch of messages to go out in one write. */
    static char outbuf[PEER_OUTBUF]; /* stdio's from here on, not ours */
    if (!ctx.use_tui)
        setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    return run(&ctx, home);
}
