/* main: the tracker process.  Reads the command line into the one context,
 * opens the registry, the mailbox and the server, starts the listeners and runs the loop
 * until SIGINT or SIGTERM; then shuts down in order: listeners, connections
 * (their users go offline), the server, pending writes, the database, the
 * remaining handles.  With --release NAME it only frees that name in the
 * database (release.c) and exits. */
#include "config.h"
#include "listen.h"
#include "mailbox.h"
#include "metrics.h"
#include "release.h"
#include "server.h"
#include "verifier.h"
#include "msg.h"
#include "version.h"
#include "tracker.h"

#include "addr.h"

#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const default_listen[] = {"0.0.0.0:" TRACKER_PORT, "[::]:" TRACKER_PORT};

static void usage(FILE *f) {
    fprintf(f,
            "usage: parley-tracker [--listen HOST:PORT]... [--db PATH] [--db URI | --registry CONNINFO]\n"
            "                      [--ttl SECONDS]\n"
            "                      [--log-level LEVEL] [--relay-per-user N] [--relay-max N]\n"
            "                      [--relay-rate BYTES] [--relay-idle SECONDS]\n"
            "                      [--relay-join-timeout MS] [--rate-limit N] [--rate-burst N]\n"
            "                      [--max-conns-per-addr N] [--max-conns N]\n"
            "                      [--mail-ttl SECONDS] [--mail-max N] [--mail-bytes N]\n"
            "                      [--mail-per-sender N] [--mail-rate N] [--mail-total BYTES]\n"
            "                      [--verify-threads N] [--metrics HOST:PORT] [--config PATH]\n"
            "       parley-tracker --release NAME [--db PATH] [--config PATH]\n"
            "\n"
            "The parley tracker: peers register their name, key and endpoints here, list who\n"
            "is online and look each other up before chatting directly.\n"
            "\n"
            "  --listen HOST:PORT   address to accept peers on; repeat for several.  HOST is a\n"
            "                       hostname, an IPv4 literal or an [IPv6] literal (IPv6\n"
            "                       sockets are IPv6-only); PORT 0 picks a free port.\n"
            "                       Default: 0.0.0.0:" TRACKER_PORT " and [::]:" TRACKER_PORT ".\n"
            "  --db PATH            SQLite database of names, keys and endpoints\n"
            "                       (default ./tracker.db; created when missing).\n"
            "  --db postgresql://USER@HOST:PORT/DBNAME\n"
            "  --registry CONNINFO  keep the names, keys, endpoints, presence and mailbox in\n"
            "                       PostgreSQL instead (--db takes a postgresql:// or\n"
            "                       postgres:// URI, --registry any libpq connection string\n"
            "                       or URI), shared by every tracker given the same one; a\n"
            "                       --db PATH given too holds this tracker's id (one file\n"
            "                       per tracker; default ./tracker.db).  Without, SQLite.\n"
            "  --ttl SECONDS        drop a peer silent this long and mark it offline\n"
            "                       (1 to 86400, default 60).\n"
            "  --log-level LEVEL    error, warn, info or debug (default info); logs go to stderr.\n"
            "  --relay-per-user N   relay sessions one user may be part of at once (0 to\n"
            "                       1000000, default 8; 0 turns relaying off).\n"
            "  --relay-max N        relay sessions at once in total (0 to 1000000, default 1024).\n"
            "  --relay-rate BYTES   bytes per second one relay session may carry, both ways\n"
            "                       together (1024 to 2^40, default 1048576); a faster sender\n"
            "                       is slowed down (not read), nothing is dropped.\n"
            "  --relay-idle SECONDS close a relay session that carried nothing this long\n"
            "                       (1 to 86400, default 300).\n"
            "  --relay-join-timeout MS  how long a relay session waits for both sides to\n"
            "                       join (100 to 600000, default 10000).\n"
            "  --relay-addr HOST:PORT  with a shared registry, where peers of the other\n"
            "                       trackers join the relays this one holds for its users\n"
            "                       (numeric; default: the local address the user's own\n"
            "                       connection reached, which is wrong behind a NAT or proxy).\n"
            "  --rate-limit N       frames per second one connection may send (0 to 1000000,\n"
            "                       default 50; 0 turns the limit off).  A request over it is\n"
            "                       answered with error rate_limited; other frames, or a\n"
            "                       burst's worth of refused requests in a row, close it.\n"
            "  --rate-burst N       frames a connection may send at once before the rate\n"
            "                       applies (1 to 1000000, default 100).\n"
            "  --max-conns-per-addr N  connections at once from one IPv4 address or IPv6 /64\n"
            "                       (0 to 1000000, default 32; 0: no limit); one more gets\n"
            "                       error limit and is closed.\n"
            "  --max-conns N        control connections at once in total (0 to 1000000,\n"
            "                       default 10000; 0: no limit); one more gets error limit.\n"
            "  --mail-ttl SECONDS   how long mail for an offline user (and a sender's\n"
            "                       receipt) waits before it expires (1 to 31536000,\n"
            "                       default 604800: 7 days); the sender is told it expired.\n"
            "  --mail-max N         messages waiting for one user at most (0 to 1000000,\n"
            "                       default 1000; 0 stores no mail); more get mailbox_full.\n"
            "  --mail-bytes N       bytes of mail waiting for one user at most (0 to 2^40,\n"
            "                       default 4194304: 4 MiB).\n"
            "  --mail-per-sender N  messages from one sender waiting for one user at most\n"
            "                       (0 to 1000000, default 100).\n"
            "  --mail-rate N        messages one sender may leave per hour (0 to 1000000,\n"
            "                       default 300; 0: no limit); more get rate_limited.\n"
            "  --mail-total BYTES   bytes of mail waiting in all at most (0 to 2^50,\n"
            "                       default 1073741824: 1 GiB).\n"
            "  --verify-threads N   threads that check the signatures of registrations, off\n"
            "                       the event loop (0 to 64, default 1; 0: in the loop, for\n"
            "                       a single-core host, where a thread only adds switches).\n"
            "  --metrics HOST:PORT  serve Prometheus metrics (GET /metrics) on this numeric\n"
            "                       address; off when not given.  Suggested: " MET_DEFAULT "\n"
            "                       (loopback only: the numbers are for the operator).\n"
            "  --config PATH        read flags from PATH first, one per line without the\n"
            "                       dashes (\"listen 127.0.0.1:5960\"), # comments and blank\n"
            "                       lines allowed; flags on the command line override it\n"
            "                       (a --listen there replaces the file's listen lines).\n"
            "  --release NAME       free NAME for a user who lost their key, then exit: the\n"
            "                       next registration of NAME, with any key, binds it.  Its\n"
            "                       waiting mail goes too (its senders are told it expired).\n"
            "                       Safe while a tracker runs on the same --db.\n"
            "  --version            show the version and the protocol version.\n"
            "  --help               show this help.\n"
            "\n"
            "Once ready it logs \"listening on HOST:PORT\" for each listener.  SIGINT or\n"
            "SIGTERM stops it cleanly (pending writes are committed first).\n");
}

/* The flags that take a number in a range, and where it goes. */
enum { OPT_MAIL_TTL = 256, OPT_MAIL_MAX, OPT_MAIL_BYTES, OPT_MAIL_PER_SENDER, OPT_MAIL_RATE,
       OPT_MAIL_TOTAL, OPT_RELEASE, OPT_VERIFY_THREADS, OPT_REGISTRY, OPT_RELAY_ADDR };

#define CFG(f) offsetof(tracker_config, f), sizeof(((tracker_config *)0)->f)

static const struct limit_flag {
    int o;
    const char *flag, *what;
    unsigned long long lo, hi;
    size_t off, size;
} limit_flags[] = {
    {'u', "--relay-per-user", "a number from 0 to 1000000", 0, 1000000, CFG(relay_per_user)},
    {'m', "--relay-max", "a number from 0 to 1000000", 0, 1000000, CFG(relay_max)},
    {'r', "--relay-rate", "a number of bytes per second from 1024 to 2^40", 1024, 1ull << 40,
     CFG(relay_rate)},
    {'i', "--relay-idle", "a number of seconds from 1 to 86400", 1, 86400, CFG(relay_idle)},
    {'j', "--relay-join-timeout", "a number of milliseconds from 100 to 600000", 100, 600000,
     CFG(relay_join_ms)},
    {'R', "--rate-limit", "a number from 0 to 1000000", 0, 1000000, CFG(rate_limit)},
    {'B', "--rate-burst", "a number from 1 to 1000000", 1, 1000000, CFG(rate_burst)},
    {'A', "--max-conns-per-addr", "a number from 0 to 1000000", 0, 1000000, CFG(max_per_addr)},
    {'C', "--max-conns", "a number from 0 to 1000000", 0, 1000000, CFG(max_conns)},
    {OPT_MAIL_TTL, "--mail-ttl", "a number of seconds from 1 to 31536000", 1, 31536000,
     CFG(mail_ttl)},
    {OPT_MAIL_MAX, "--mail-max", "a number from 0 to 1000000", 0, 1000000, CFG(mail_max)},
    {OPT_MAIL_BYTES, "--mail-bytes", "a number of bytes from 0 to 2^40", 0, 1ull << 40,
     CFG(mail_bytes)},
    {OPT_MAIL_PER_SENDER, "--mail-per-sender", "a number from 0 to 1000000", 0, 1000000,
     CFG(mail_per_sender)},
    {OPT_MAIL_RATE, "--mail-rate", "a number from 0 to 1000000", 0, 1000000, CFG(mail_rate)},
    {OPT_MAIL_TOTAL, "--mail-total", "a number of bytes from 0 to 2^50", 0, 1ull << 50,
     CFG(mail_total)},
    {OPT_VERIFY_THREADS, "--verify-threads", "a number from 0 to 64", 0, VFY_MAX_THREADS,
     CFG(verify_threads)},
};

static const struct limit_flag *find_limit(int o) {
    for (size_t k = 0; k < sizeof limit_flags / sizeof *limit_flags; k++)
        if (limit_flags[k].o == o)
            return &limit_flags[k];
    return NULL;
}

/* Whether a --db value names a PostgreSQL database (a libpq URI) rather
 * than an SQLite file: a path spelled like a URI is not a path anyone means. */
static int pg_uri(const char *s) {
    return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "parley-tracker: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see parley-tracker --help\n");
    return 2;
}

/* Fills ctx->cfg and the log level from one config file line (cmdline 0)
 * or from the command line (cmdline 1, parsed last: it overrides the file
 * and fills in the default listeners).  -1 to go on, else the exit status. */
static int parse_args(tracker_ctx *ctx, int argc, char **argv, const char **specs, int cmdline) {
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"db", required_argument, NULL, 'd'},
        {"registry", required_argument, NULL, OPT_REGISTRY},
        {"ttl", required_argument, NULL, 't'},    {"log-level", required_argument, NULL, 'v'},
        {"relay-per-user", required_argument, NULL, 'u'},
        {"relay-max", required_argument, NULL, 'm'},
        {"relay-rate", required_argument, NULL, 'r'},
        {"relay-idle", required_argument, NULL, 'i'},
        {"relay-join-timeout", required_argument, NULL, 'j'},
        {"relay-addr", required_argument, NULL, OPT_RELAY_ADDR},
        {"rate-limit", required_argument, NULL, 'R'},
        {"rate-burst", required_argument, NULL, 'B'},
        {"max-conns-per-addr", required_argument, NULL, 'A'},
        {"max-conns", required_argument, NULL, 'C'},
        {"mail-ttl", required_argument, NULL, OPT_MAIL_TTL},
        {"mail-max", required_argument, NULL, OPT_MAIL_MAX},
        {"mail-bytes", required_argument, NULL, OPT_MAIL_BYTES},
        {"mail-per-sender", required_argument, NULL, OPT_MAIL_PER_SENDER},
        {"mail-rate", required_argument, NULL, OPT_MAIL_RATE},
        {"mail-total", required_argument, NULL, OPT_MAIL_TOTAL},
        {"verify-threads", required_argument, NULL, OPT_VERIFY_THREADS},
        {"metrics", required_argument, NULL, 'M'},
        {"config", required_argument, NULL, 'c'},
        {"release", required_argument, NULL, OPT_RELEASE},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    tracker_config *cfg = &ctx->cfg;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char host[ADDR_STRLEN], port[8], *end;
        unsigned long v;
        int bad;
        switch (o) {
        case 'l':
            if ((bad = addr_split(optarg, TRACKER_PORT, host, sizeof host, port, sizeof port))) {
                char what[ADDR_STRLEN + 100];
                snprintf(what, sizeof what, "--listen %s: %s", optarg, addr_split_error(bad));
                return bad_usage("%s", what);
            }
            if (cmdline && cfg->nlisten && cfg->nlisten == cfg->nlisten_file)
                cfg->nlisten = cfg->nlisten_file = 0; /* the command line's replace the file's */
            specs[cfg->nlisten++] = optarg;
            break;
        case 'd':
            if (!*optarg)
                return bad_usage("--db needs a file path%s", "");
            if (!pg_uri(optarg)) {
                cfg->db = optarg;
                break;
            }
            /* --db postgresql://... is --registry's other spelling */
            /* fall through */
        case OPT_REGISTRY:
            if (!*optarg)
                return bad_usage("--registry needs a PostgreSQL connection string or URI%s", "");
            if (cmdline && cfg->registry && cfg->registry_file) {
                cfg->registry = NULL; /* the command line's replaces the file's */
                cfg->registry_file = 0;
            }
            if (cfg->registry && strcmp(cfg->registry, optarg) != 0)
                return bad_usage("%s: give one PostgreSQL registry (--db URI or --registry, "
                                 "not both with different databases)", optarg);
            cfg->registry = optarg;
            cfg->registry_file = !cmdline;
            break;
        case OPT_RELAY_ADDR: {
            struct sockaddr_storage ss;
            if (addr_parse_numeric(optarg, &ss))
                return bad_usage("--relay-addr %s is not a numeric HOST:PORT", optarg);
            cfg->relay_addr = optarg;
            break;
        }
        case 't':
            v = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || v < 1 || v > 86400)
                return bad_usage("--ttl %s is not a number of seconds from 1 to 86400", optarg);
            cfg->ttl = (unsigned)v;
            break;
        case 'M': {
            struct sockaddr_storage ss;
            if (addr_parse_numeric(optarg, &ss))
                return bad_usage("--metrics %s is not a numeric HOST:PORT (like " MET_DEFAULT ")",
                                 optarg);
            cfg->metrics = optarg;
            break;
        }
        case 'v':
            if (log_level_parse(optarg, &ctx->lg.level))
                return bad_usage("--log-level %s is not one of error, warn, info, debug", optarg);
            break;
        case 'c': /* read before parsing (main); here only checked */
            if (!cmdline)
                return bad_usage("config files do not nest (config %s)", optarg);
            if (optarg != cfg->config)
                return bad_usage("--config %s: give --config once, spelled out in full", optarg);
            break;
        case OPT_RELEASE:
            if (!cmdline)
                return bad_usage("release does not belong in a config file (it is a one-off "
                                 "command: parley-tracker --release NAME)%s", "");
            if (cfg->release)
                return bad_usage("--release %s: release one name at a time", optarg);
            cfg->release = optarg;
            break;
        case 'h':
            if (!cmdline)
                return bad_usage("help does not belong in a config file%s", "");
            usage(stdout);
            return 0;
        case 'V':
            if (!cmdline)
                return bad_usage("version does not belong in a config file%s", "");
            printf("parley-tracker %s (tracker protocol %d)\n", PARLEY_VERSION, PROTO_VERSION);
            return 0;
        case ':':
            return bad_usage("option %s needs a value", argv[optind - 1]);
        default: {
            const struct limit_flag *l = find_limit(o);
            if (!l)
                return bad_usage("unknown option %s", argv[optind - 1]);
            unsigned long long n = strtoull(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end || n < l->lo || n > l->hi) {
                fprintf(stderr, "parley-tracker: %s %s is not %s; see parley-tracker --help\n",
                        l->flag, optarg, l->what);
                return 2;
            }
            char *field = (char *)cfg + l->off;
            if (l->size == sizeof(unsigned))
                *(unsigned *)field = (unsigned)n;
            else
                *(uint64_t *)field = n;
            break;
        }
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument %s", argv[optind]);
    if (!cmdline)
        return -1;
    if (cfg->nlisten == 0) {
        cfg->default_listen = 1;
        for (size_t i = 0; i < sizeof default_listen / sizeof *default_listen; i++)
            specs[cfg->nlisten++] = default_listen[i];
    }
    cfg->listen = specs;
    return -1;
}

/* The --config PATH (or --config=PATH) of the command line, or NULL; the
 * file is read before the flags are parsed. */
static const char *find_config(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
    }
    return NULL;
}

/* Starts the orderly stop; the loop ends once every handle has closed. */
static void shutdown_start(tracker_ctx *ctx, int code) {
    if (ctx->stopping)
        return;
    ctx->stopping = 1;
    ctx->exit_code = code;
    uv_close((uv_handle_t *)&ctx->sigint, NULL);
    uv_close((uv_handle_t *)&ctx->sigterm, NULL);
    lsn_stop(ctx);
    met_stop(ctx);
    if (ctx->nsessions)
        log_info(&ctx->lg, "closing %zu connection%s", ctx->nsessions, ctx->nsessions == 1 ? "" : "s");
    srv_stop(ctx);
}

static void on_signal(uv_signal_t *h, int signum) {
    tracker_ctx *ctx = h->data;
    log_info(&ctx->lg, "received %s; shutting down", signum == SIGINT ? "SIGINT" : "SIGTERM");
    shutdown_start(ctx, 0);
}

/* --release NAME: what it did on stdout, or why not on stderr; the exit
 * status (0, 1 for a name it could not release, 2 for one that cannot be a
 * name). */
static int release(const tracker_config *cfg) {
    rel_result res;
    char err[1024];
    int64_t now = (int64_t)time(NULL);
    int e = rel_release(cfg->db, cfg->release, now + (int64_t)cfg->mail_ttl, &res, err,
                        sizeof err);
    if (e) {
        fprintf(stderr, "parley-tracker: %s\n", err);
        return e == UV_EINVAL ? 2 : 1;
    }
    char since[32] = "?";
    time_t t = (time_t)res.created;
    struct tm tm;
    if (gmtime_r(&t, &tm))
        strftime(since, sizeof since, "%Y-%m-%d %H:%M UTC", &tm);
    printf("released %s (bound since %s) in %s: the next registration of the name, with "
           "any key, binds it\n", res.name, since, cfg->db);
    printf("deleted %" PRIu64 " message%s waiting for it (each sender gets an \"expired\" "
           "receipt), %" PRIu64 " it left for others, %" PRIu64 " receipt%s for it\n",
           res.mail_to, res.mail_to == 1 ? "" : "s", res.mail_from, res.receipts,
           res.receipts == 1 ? "" : "s");
    return 0;
}

static void on_listening(tracker_ctx *ctx, int status) {
    if (status) {
        shutdown_start(ctx, 1);
        return;
    }
    log_info(&ctx->lg, "ready (database %s%s, ttl %u s)", ctx->cfg.db,
             ctx->cfg.registry ? ", users in PostgreSQL" : "", ctx->cfg.ttl);
    const tracker_config *c = &ctx->cfg;
    log_info(&ctx->lg, "mailbox: mail waits %u s at most; per user %" PRIu64 " messages and %"
             PRIu64 " bytes, %" PRIu64 " per sender; %" PRIu64 " puts per sender an hour; %"
             PRIu64 " bytes in all", c->mail_ttl, c->mail_max, c->mail_bytes, c->mail_per_sender,
             c->mail_rate, c->mail_total);
}

int main(int argc, char **argv) {
    tracker_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.lg = (logger){LOG_INFO, "parley-tracker"};
    tracker_config_defaults(&ctx.cfg);
    /* The config file first, so the command line, parsed after it, wins. */
    conf_file cf;
    char cerr[1024];
    memset(&cf, 0, sizeof cf);
    ctx.cfg.config = find_config(argc, argv);
    if (ctx.cfg.config && conf_read(ctx.cfg.config, &cf, cerr, sizeof cerr)) {
        fprintf(stderr, "parley-tracker: %s\n", cerr);
        return 2;
    }
    const char **specs = calloc((size_t)argc + cf.nlines + 2, sizeof *specs);
    if (!specs) {
        fprintf(stderr, "parley-tracker: out of memory\n");
        conf_free(&cf);
        return 1;
    }
    int r = -1;
    for (size_t i = 0; i < cf.nlines && r < 0; i++) {
        optind = 0; /* restart getopt_long on this line's words */
        if ((r = parse_args(&ctx, cf.lines[i].argc, cf.lines[i].argv, specs, 0)) >= 0)
            fprintf(stderr, "parley-tracker: that is %s line %d; fix or remove the line\n", cf.path,
                    cf.lines[i].line);
    }
    ctx.cfg.nlisten_file = ctx.cfg.nlisten;
    optind = 0;
    if (r < 0)
        r = parse_args(&ctx, argc, argv, specs, 1);
    if (r < 0 && ctx.cfg.release && ctx.cfg.registry) {
        fprintf(stderr, "parley-tracker: --release does not work with a PostgreSQL registry "
                "yet; free the name there (docs/DEPLOY.md): DELETE FROM parley_mail WHERE "
                "recipient = (SELECT folded FROM parley_users WHERE name = 'NAME'); DELETE FROM "
                "parley_users WHERE name = 'NAME'\n");
        r = 2;
    }
    if (r < 0 && ctx.cfg.release)
        r = release(&ctx.cfg);
    if (r >= 0) {
        free(specs);
        conf_free(&cf);
        return r;
    }
    /* A peer vanishing mid-write must be an error code, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0) {
        log_error(&ctx.lg, "libsodium failed to initialise; check the installation");
        free(specs);
        conf_free(&cf);
        return 1;
    }
    uv_loop_t loop;
    if ((r = uv_loop_init(&loop)) != 0) {
        log_error(&ctx.lg, "cannot start the event loop: %s", uv_strerror(r));
        free(specs);
        conf_free(&cf);
        return 1;
    }
    ctx.loop = &loop;
    char err[1024];
    ctx.online = namemap_new();
    if (!ctx.online) {
        log_error(&ctx.lg, "out of memory");
        ctx.exit_code = 1;
    } else if ((r = ctx.cfg.registry ? reg_open_shared(&loop, ctx.cfg.db, ctx.cfg.registry,
                                                       ctx.cfg.ttl, &ctx.lg, &ctx.reg, err,
                                                       sizeof err)
                                     : reg_open(&loop, ctx.cfg.db, &ctx.lg, &ctx.reg, err,
                                                sizeof err)) != 0 ||
               (r = mbox_open(ctx.reg, &ctx.lg, &ctx.mbox, err, sizeof err)) != 0) {
        log_error(&ctx.lg, "%s", err);
        ctx.exit_code = 1;
    } else if ((r = srv_open(&ctx)) != 0) {
        log_error(&ctx.lg, "cannot start the server: %s", uv_strerror(r));
        ctx.exit_code = 1;
    } else {
        log_info(&ctx.lg, "database %s open", ctx.cfg.db);
        uv_signal_init(&loop, &ctx.sigint);
        uv_signal_init(&loop, &ctx.sigterm);
        ctx.sigint.data = ctx.sigterm.data = &ctx;
        uv_signal_start(&ctx.sigint, on_signal, SIGINT);
        uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
        reg_on_commit(ctx.reg, met_commit_time, &ctx);
        if (ctx.cfg.metrics && met_start(&ctx) != 0)
            shutdown_start(&ctx, 1);
        else if ((r = lsn_start(&ctx, on_listening)) != 0) {
            log_error(&ctx.lg, "cannot start listening: %s", uv_strerror(r));
            shutdown_start(&ctx, 1);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    /* Every connection has closed by now and their offline writes are
     * queued; reg_close commits them before closing the file. */
    srv_close(&ctx);
    reg_close(ctx.reg);
    mbox_close(ctx.mbox); /* after reg_close: its last commit may report to it */
    uv_run(&loop, UV_RUN_DEFAULT);
    namemap_free(ctx.online);
    free(specs);
    conf_free(&cf);
    if ((r = uv_loop_close(&loop)) != 0) {
        log_error(&ctx.lg, "internal error: handles still open at exit (%s)", uv_strerror(r));
        return 1;
    }
    log_info(&ctx.lg, "stopped");
    return ctx.exit_code;
}
