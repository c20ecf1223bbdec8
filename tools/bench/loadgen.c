/* loadgen: main and the phases of one load-generator run.
 *
 *   preload  write --preload names (parley: one connection per registration,
 *            many in flight) or keys (RESP: SET on open connections);
 *   setup    open --conns sessions (parley: each registers its own name);
 *   measure  keep one request in flight per connection for --warmup plus
 *            --duration seconds (or --count ops); --op register instead runs
 *            connect/hello/register/close cycles; --op drain takes what a
 *            mailbox (parley) or a list (RESP) holds, --count messages;
 *   hold     (--op hold) stay registered, pinging, until a signal;
 *   done     close everything and print one `key=value` result line.
 *
 * tools/bench/bench.py runs it; `loadgen --help` documents every flag. */
#include "loadgen.h"

#include "addr.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: loadgen --target HOST:PORT [--proto parley|resp] --op OP [options]\n"
        "\n"
        "Opens connections to a parley tracker or a redis-server and keeps one request in\n"
        "flight per connection, then prints one line of key=value results (ops_per_s,\n"
        "p50_us, p99_us, ...).  Numeric loopback addresses only; no DNS.\n"
        "\n"
        "  --proto parley|resp  protocol (default parley)\n"
        "  --op OP              parley: lookup, list, register, hold, put, drain, none;\n"
        "                       resp: get, set, rpush, drain, none.\n"
        "                       lookup  looks up names drawn from the preloaded ones;\n"
        "                       list    asks for the first list page (online users);\n"
        "                       register  each op opens a connection, says hello, registers\n"
        "                               a new name, waits for `registered` (sent after the\n"
        "                               database commit) and closes;\n"
        "                       hold    registers --conns users, prints `ready`, pings every\n"
        "                               ttl/3 and stays until SIGTERM/SIGINT or --duration;\n"
        "                       get/set GET a preloaded key / SET a new key;\n"
        "                       put     mail_put of a --value-size box (random bytes) to a\n"
        "                               preloaded user, answered by `mail_stored` (sent after\n"
        "                               the database commit);\n"
        "                       rpush   RPUSH of a --value-size value (random bytes) onto the\n"
        "                               list of a preloaded-name key (NAMES0 .. NAMES<k-1>);\n"
        "                       drain   parley: one connection registers NAMES0 with the\n"
        "                               \"mailbox\" feature (same key: --key-seed) and sends\n"
        "                               mail_ack for each mail pushed, as it arrives; resp:\n"
        "                               LRANGE NAMES0 0 PAGE-1, then LTRIM NAMES0 N -1 for\n"
        "                               the N elements read, until the list is empty.  Both\n"
        "                               stop at --count messages; the clock runs from register\n"
        "                               (the first LRANGE) to the last mail_ack (LTRIM) sent;\n"
        "                       none    only preload.\n"
        "  --conns N            connections (default 50)\n"
        "  --duration SEC       measured seconds (default 2; hold: 0 = until a signal)\n"
        "  --warmup SEC         seconds run before recording starts (default 0.5)\n"
        "  --until-signal       SIGTERM/SIGINT ends the measured run and prints its\n"
        "                       figures (--duration then bounds it); without it a signal\n"
        "                       outside hold is a failure\n"
        "  --count N            stop after N measured ops instead (with --warmup 0: send\n"
        "                       exactly N requests, and stop once all are answered)\n"
        "  --preload N          first register N names (parley) or SET N keys (resp)\n"
        "                       called NAMES0 .. NAMES<N-1>\n"
        "  --preload-conns N    preload operations in flight (default 128)\n"
        "  --names PREFIX       preload name/key prefix (default u)\n"
        "  --name-count N       lookup/GET targets: NAMES0 .. NAMES<N-1> (default --preload)\n"
        "  --self PREFIX        prefix of the names the connections register themselves\n"
        "                       and of SET keys (default lg<pid>-)\n"
        "  --value-size N       bytes of each SET/RPUSH value or mail box (default 100)\n"
        "  --page N             resp drain: LRANGE page size (default 32, the tracker's\n"
        "                       mail window)\n"
        "  --key-seed N         derive the Ed25519 key from N (default: a fresh key), so\n"
        "                       that one run can register a name another run preloaded\n"
        "  --subscribe K        hold and register: register with the \"subscribe\" feature\n"
        "                       and, once registered, subscribe to K names (one frame,\n"
        "                       answered by `subscribed` before the peer counts as online\n"
        "                       or the cycle as done): connection G (its index plus\n"
        "                       --sub-offset; a register cycle's counter) takes\n"
        "                       SUBNAMES((G*K + j) mod --sub-count) for j < K\n"
        "  --sub-names PREFIX   names subscribed to (default r, the register cycles' names\n"
        "                       of --self '')\n"
        "  --sub-count C        how many of them (default 1000)\n"
        "  --sub-offset N       added to the connection index (holders of one population)\n"
        "  --list-limit N       list page size (default 100)\n"
        "  --timeout SEC        hard bound on the whole run (default 600); exit 3 past it\n"
        "  --seed N             random seed for the target names\n"
        "  --log-level LEVEL    error, warn, info or debug (default warn)\n"
        "  --help               this text\n"
        "\n"
        "Exit status: 0 ok, 1 a failure or error answers (the reason is on stderr), 2 bad\n"
        "usage, 3 timeout.\n");
}

/* ---- small helpers ---- */

uint64_t lg_rand(lg_ctx *ctx, uint64_t n) {
    uint64_t x = ctx->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ctx->rng = x;
    return n ? (x * 2685821657736338717ull) % n : 0;
}

static void name_of(char out[NAME_BUFLEN], const char *prefix, const char *mid, uint64_t k) {
    snprintf(out, NAME_BUFLEN, "%s%s%" PRIu64, prefix, mid, k);
}

static int all_idle(const lg_ctx *ctx) {
    for (size_t i = 0; i < ctx->nslots; i++)
        if (ctx->slots[i].state != SL_IDLE)
            return 0;
    return 1;
}

/* Opens s's connection; a failure to even start one ends the run. */
static void open_slot(slot *s) {
    int r = slot_connect(s);
    if (r)
        lg_fail(s, "cannot open connection %zu: %s", s->idx, uv_strerror(r));
}

/* ---- the end ---- */

static void finish(lg_ctx *ctx) {
    if (ctx->phase == PH_DONE)
        return;
    if ((ctx->phase == PH_MEASURE || ctx->phase == PH_HOLD) && !ctx->t_stop)
        ctx->t_stop = uv_hrtime(); /* a drain stopped its clock already */
    ctx->phase = PH_DONE;
    for (size_t i = 0; i < ctx->nslots; i++)
        slot_close(&ctx->slots[i]);
    uv_close((uv_handle_t *)&ctx->phase_timer, NULL);
    uv_close((uv_handle_t *)&ctx->deadline, NULL);
    uv_close((uv_handle_t *)&ctx->ping_timer, NULL);
    uv_close((uv_handle_t *)&ctx->sigint, NULL);
    uv_close((uv_handle_t *)&ctx->sigterm, NULL);
}

void lg_fail(slot *s, const char *fmt, ...) {
    lg_ctx *ctx = s->ctx;
    if (ctx->phase == PH_DONE)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->fatal, sizeof ctx->fatal, fmt, ap);
    va_end(ap);
    ctx->exit_code = 1;
    finish(ctx);
}

static void fail_ctx(lg_ctx *ctx, int code, const char *text) {
    if (ctx->phase == PH_DONE)
        return;
    snprintf(ctx->fatal, sizeof ctx->fatal, "%s", text);
    ctx->exit_code = code;
    finish(ctx);
}

void lg_finish(lg_ctx *ctx) { finish(ctx); }

/* ---- measure ---- */

/* --count without warm-up is an exact number of requests (a mailbox of
 * exactly 10,000 messages): none is sent past it. */
static int capped(const lg_ctx *ctx) {
    return ctx->o.count && ctx->o.warmup == 0;
}

static void issue(slot *s) {
    if (capped(s->ctx) && s->ctx->issued >= s->ctx->o.count)
        return; /* the slot stays ready; the last answers finish the run */
    s->ctx->issued++;
    s->t0 = uv_hrtime();
    slot_set(s, SL_BUSY);
    int r = s->ctx->proto->request(s, 0);
    if (r)
        lg_fail(s, "cannot send a request: %s", uv_strerror(r));
}

/* --op register: one new connection per registration. */
static void cycle_start(slot *s) {
    lg_ctx *ctx = s->ctx;
    s->job = JOB_CYCLE;
    s->key = ctx->next_key++;
    name_of(s->name, ctx->o.self, "r", s->key);
    s->t0 = uv_hrtime();
    open_slot(s);
}

static void on_measured(uv_timer_t *t) {
    finish(t->data);
}

static int is_drain(const lg_ctx *ctx) {
    return ctx->o.op == OP_DRAIN || ctx->o.op == OP_LDRAIN;
}

/* A drain has one connection and counts messages taken, not answers. */
static void start_drain(lg_ctx *ctx) {
    ctx->phase = PH_MEASURE;
    ctx->t_begin = uv_hrtime();
    ctx->t_end = UINT64_MAX;
    if (ctx->o.proto == LG_RESP) {
        lg_drain_clock(ctx);
        issue(&ctx->slots[0]); /* the first LRANGE; parley's mail comes by itself */
    }
}

void lg_drain_clock(lg_ctx *ctx) {
    ctx->t_record = uv_hrtime();
}

int lg_drained(slot *s, uint64_t n) {
    lg_ctx *ctx = s->ctx;
    uint64_t now = uv_hrtime();
    if (ctx->phase != PH_MEASURE) {
        lg_fail(s, "a message arrived before the drain started");
        return 1;
    }
    if (!ctx->t_first)
        ctx->t_first = now;
    ctx->ops += n;
    if (ctx->ops < ctx->o.count)
        return 0;
    ctx->t_stop = now;
    return 1;
}

static void start_measure(lg_ctx *ctx) {
    if (is_drain(ctx)) {
        start_drain(ctx);
        return;
    }
    ctx->phase = PH_MEASURE;
    ctx->t_begin = uv_hrtime();
    ctx->t_record = ctx->t_begin + (uint64_t)(ctx->o.warmup * 1e9);
    ctx->t_end = ctx->t_record + (uint64_t)(ctx->o.duration * 1e9);
    if (!ctx->o.count)
        uv_timer_start(&ctx->phase_timer, on_measured,
                       (uint64_t)((ctx->o.warmup + ctx->o.duration) * 1000) + 1, 0);
    else
        ctx->t_end = UINT64_MAX;
    for (size_t i = 0; i < ctx->o.conns && ctx->phase == PH_MEASURE; i++) {
        if (ctx->o.op == OP_REGISTER)
            cycle_start(&ctx->slots[i]);
        else
            issue(&ctx->slots[i]);
    }
}

/* A measured op (request or registration cycle) finished at now. */
static void measured_done(lg_ctx *ctx, uint64_t t0, int ok) {
    uint64_t now = uv_hrtime();
    if (!ok) {
        ctx->errors++;
        if (capped(ctx) && ctx->ops + ctx->errors >= ctx->o.count)
            finish(ctx);
        return;
    }
    if (now < ctx->t_record || now > ctx->t_end)
        return;
    if (lat_add(ctx->lat, now - t0)) {
        fail_ctx(ctx, 1, "out of memory recording latencies");
        return;
    }
    ctx->ops++;
    if (ctx->o.count && ctx->ops + (capped(ctx) ? ctx->errors : 0) >= ctx->o.count)
        finish(ctx);
}

/* ---- hold ---- */

static void on_ping_timer(uv_timer_t *t) {
    lg_ctx *ctx = t->data;
    for (size_t i = 0; i < ctx->o.conns; i++) {
        slot *s = &ctx->slots[i];
        if (s->state == SL_READY && ctx->proto->ping(s) != 0 && ctx->phase != PH_DONE)
            lg_fail(s, "cannot send ping");
    }
}

static void start_hold(lg_ctx *ctx) {
    ctx->phase = PH_HOLD;
    ctx->t_begin = uv_hrtime();
    uint64_t every = ctx->ttl ? (uint64_t)ctx->ttl * 1000 / 3 : 20000;
    uv_timer_start(&ctx->ping_timer, on_ping_timer, every, every);
    if (ctx->o.duration > 0)
        uv_timer_start(&ctx->phase_timer, on_measured, (uint64_t)(ctx->o.duration * 1000), 0);
    printf("ready conns=%zu\n", ctx->o.conns);
    fflush(stdout);
}

/* ---- setup ---- */

static void start_setup(lg_ctx *ctx) {
    ctx->phase = PH_SETUP;
    if (ctx->o.op == OP_NONE) {
        finish(ctx);
        return;
    }
    if (ctx->o.op == OP_REGISTER) {
        start_measure(ctx);
        return;
    }
    ctx->ready = 0;
    for (size_t i = 0; i < ctx->o.conns; i++) {
        slot *s = &ctx->slots[i];
        s->job = JOB_SESSION;
        s->req_id = 0;
        if (is_drain(ctx))
            name_of(s->name, ctx->o.names, "", 0); /* the preloaded recipient */
        else
            name_of(s->name, ctx->o.self, "", i);
        open_slot(s);
    }
}

/* ---- preload ---- */

static void preload_finished(lg_ctx *ctx) {
    ctx->t_preload1 = uv_hrtime();
    log_info(&ctx->lg, "preloaded %" PRIu64 " in %.2f s", ctx->done_preload,
             (double)(ctx->t_preload1 - ctx->t_preload0) / 1e9);
    start_setup(ctx);
}

/* Gives slot s the next preload item, or closes it when none is left. */
static void preload_next(slot *s) {
    lg_ctx *ctx = s->ctx;
    if (ctx->next_key >= ctx->o.preload) {
        if (s->state == SL_READY)
            slot_close(s); /* lg_closed moves on once every slot is idle */
        return;
    }
    s->key = ctx->next_key++;
    s->t0 = uv_hrtime();
    if (ctx->o.proto == LG_PARLEY) {
        s->job = JOB_CYCLE;
        name_of(s->name, ctx->o.names, "", s->key);
        open_slot(s);
    } else if (s->state == SL_READY) {
        slot_set(s, SL_BUSY);
        int r = ctx->proto->request(s, 1);
        if (r)
            lg_fail(s, "cannot send a preload SET: %s", uv_strerror(r));
    } else {
        ctx->next_key--; /* connect first; lg_ready comes back here */
        s->job = JOB_SESSION;
        open_slot(s);
    }
}

static void start_preload(lg_ctx *ctx) {
    ctx->phase = PH_PRELOAD;
    ctx->t_preload0 = uv_hrtime();
    for (size_t i = 0; i < ctx->o.preload_conns && i < ctx->o.preload; i++)
        preload_next(&ctx->slots[i]);
}

/* ---- what the protocols report ---- */

void lg_ready(slot *s) {
    lg_ctx *ctx = s->ctx;
    if (s->job == JOB_CYCLE) {
        /* a registration cycle is complete at `registered` */
        if (ctx->phase == PH_PRELOAD)
            ctx->done_preload++;
        else if (ctx->phase == PH_MEASURE)
            measured_done(ctx, s->t0, 1);
        slot_close(s);
        return;
    }
    slot_set(s, SL_READY);
    if (ctx->phase == PH_PRELOAD) {
        preload_next(s);
    } else if (ctx->phase == PH_SETUP && ++ctx->ready == ctx->o.conns) {
        if (ctx->o.op == OP_HOLD)
            start_hold(ctx);
        else
            start_measure(ctx);
    }
}

void lg_reply(slot *s, int ok) {
    lg_ctx *ctx = s->ctx;
    slot_set(s, SL_READY);
    if (ctx->phase == PH_PRELOAD) {
        if (!ok) {
            lg_fail(s, "a preload write failed");
            return;
        }
        ctx->done_preload++;
        preload_next(s);
    } else if (ctx->phase == PH_MEASURE) {
        measured_done(ctx, s->t0, ok);
        if (ctx->phase == PH_MEASURE)
            issue(s);
    }
}

void lg_closed(slot *s, int reason) {
    lg_ctx *ctx = s->ctx;
    if (ctx->phase == PH_DONE)
        return;
    if (reason) {
        const char *peer = ctx->o.proto == LG_PARLEY ? "the tracker" : "redis-server";
        lg_fail(s, "connection %zu to %s failed or was closed by it: %s", s->idx, peer,
                uv_strerror(reason));
        return;
    }
    if (ctx->phase == PH_PRELOAD) {
        if (ctx->o.proto == LG_PARLEY)
            preload_next(s);
        if (ctx->done_preload == ctx->o.preload && all_idle(ctx))
            preload_finished(ctx);
    } else if (ctx->phase == PH_MEASURE && s->job == JOB_CYCLE) {
        cycle_start(s);
    } else {
        lg_fail(s, "connection %zu closed unexpectedly", s->idx);
    }
}

/* ---- process ---- */

static void on_deadline(uv_timer_t *t) {
    fail_ctx(t->data, 3, "the run exceeded --timeout; the server may be stuck or overloaded");
}

static void on_signal(uv_signal_t *h, int signum) {
    lg_ctx *ctx = h->data;
    if (ctx->phase != PH_HOLD && !(ctx->phase == PH_MEASURE && ctx->o.until_signal))
        fail_ctx(ctx, 1, "interrupted by a signal");
    else
        finish(ctx);
}

static int bad_usage(const char *fmt, const char *arg) {
    fprintf(stderr, "loadgen: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "; see loadgen --help\n");
    return 2;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Fills ctx->o.  -1 to go on, else the exit status. */
static int parse_args(lg_ctx *ctx, int argc, char **argv, char *self_buf, size_t self_len) {
    static const struct option opts[] = {
        {"target", required_argument, NULL, 'T'},      {"proto", required_argument, NULL, 'P'},
        {"op", required_argument, NULL, 'o'},          {"conns", required_argument, NULL, 'c'},
        {"duration", required_argument, NULL, 'd'},    {"warmup", required_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'},       {"preload", required_argument, NULL, 'p'},
        {"preload-conns", required_argument, NULL, 'C'}, {"names", required_argument, NULL, 'N'},
        {"name-count", required_argument, NULL, 'k'},  {"self", required_argument, NULL, 's'},
        {"value-size", required_argument, NULL, 'V'},  {"list-limit", required_argument, NULL, 'L'},
        {"page", required_argument, NULL, 'G'},        {"key-seed", required_argument, NULL, 'K'},
        {"timeout", required_argument, NULL, 't'},     {"seed", required_argument, NULL, 'S'},
        {"log-level", required_argument, NULL, 'v'},   {"help", no_argument, NULL, 'h'},
        {"until-signal", no_argument, NULL, 'U'},
        {"subscribe", required_argument, NULL, 'B'},   {"sub-names", required_argument, NULL, 'b'},
        {"sub-count", required_argument, NULL, 'D'},   {"sub-offset", required_argument, NULL, 'O'},
        {NULL, 0, NULL, 0},
    };
    lg_opts *o = &ctx->o;
    const char *op = NULL;
    int name_count_set = 0;
    opterr = 0;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'T': o->target = optarg; break;
        case 'P':
            if (strcmp(optarg, "parley") == 0)
                o->proto = LG_PARLEY;
            else if (strcmp(optarg, "resp") == 0)
                o->proto = LG_RESP;
            else
                return bad_usage("--proto %s is not parley or resp", optarg);
            break;
        case 'o': op = optarg; break;
        case 'c':
            if (parse_num(optarg, 1, 1000000, &v))
                return bad_usage("--conns %s is not a number from 1 to 1000000", optarg);
            o->conns = (size_t)v;
            break;
        case 'd':
            if (parse_num(optarg, 0, 86400, &v))
                return bad_usage("--duration %s is not a number of seconds", optarg);
            o->duration = v;
            break;
        case 'w':
            if (parse_num(optarg, 0, 3600, &v))
                return bad_usage("--warmup %s is not a number of seconds", optarg);
            o->warmup = v;
            break;
        case 'n':
            if (parse_num(optarg, 1, 1e15, &v))
                return bad_usage("--count %s is not a positive number", optarg);
            o->count = (uint64_t)v;
            break;
        case 'p':
            if (parse_num(optarg, 0, 1e9, &v))
                return bad_usage("--preload %s is not a number from 0 to 1e9", optarg);
            o->preload = (uint64_t)v;
            break;
        case 'C':
            if (parse_num(optarg, 1, 100000, &v))
                return bad_usage("--preload-conns %s is not a number from 1 to 100000", optarg);
            o->preload_conns = (size_t)v;
            break;
        case 'N': o->names = optarg; break;
        case 'k':
            if (parse_num(optarg, 1, 1e12, &v))
                return bad_usage("--name-count %s is not a positive number", optarg);
            o->name_count = (uint64_t)v;
            name_count_set = 1;
            break;
        case 's': o->self = optarg; break;
        case 'V':
            if (parse_num(optarg, 0, 1 << 20, &v))
                return bad_usage("--value-size %s is not a number of bytes up to 1 MiB", optarg);
            o->value_size = (size_t)v;
            break;
        case 'L':
            if (parse_num(optarg, 1, 500, &v))
                return bad_usage("--list-limit %s is not a number from 1 to 500", optarg);
            o->list_limit = (unsigned)v;
            break;
        case 'G':
            if (parse_num(optarg, 1, 100000, &v))
                return bad_usage("--page %s is not a number from 1 to 100000", optarg);
            o->page = (unsigned)v;
            break;
        case 'B':
            if (parse_num(optarg, 0, 1000, &v))
                return bad_usage("--subscribe %s is not a number from 0 to 1000", optarg);
            o->subscribe = (unsigned)v;
            break;
        case 'b': o->sub_names = optarg; break;
        case 'D':
            if (parse_num(optarg, 1, 1e12, &v))
                return bad_usage("--sub-count %s is not a positive number", optarg);
            o->sub_count = (uint64_t)v;
            break;
        case 'O':
            if (parse_num(optarg, 0, 1e12, &v))
                return bad_usage("--sub-offset %s is not a number", optarg);
            o->sub_offset = (uint64_t)v;
            break;
        case 'U':
            o->until_signal = 1;
            break;
        case 'K': {
            char *end;
            o->key_seed = strtoull(optarg, &end, 10);
            if (end == optarg || *end)
                return bad_usage("--key-seed %s is not a number", optarg);
            o->key_seed_set = 1;
            break;
        }
        case 't':
            if (parse_num(optarg, 0.1, 86400, &v))
                return bad_usage("--timeout %s is not a number of seconds", optarg);
            o->timeout = v;
            break;
        case 'S':
            if (parse_num(optarg, 0, 1.8e19, &v))
                return bad_usage("--seed %s is not a number", optarg);
            o->seed = (uint64_t)v;
            break;
        case 'v':
            if (log_level_parse(optarg, &ctx->lg.level))
                return bad_usage("--log-level %s is not one of error, warn, info, debug", optarg);
            break;
        case 'h': usage(stdout); return 0;
        case ':': return bad_usage("option %s needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument %s", argv[optind]);
    if (!o->target)
        return bad_usage("--target HOST:PORT is required%s", "");
    if (addr_parse_numeric(o->target, &ctx->target))
        return bad_usage("--target %s is not a numeric HOST:PORT", o->target);
    static const struct {
        const char *name;
        lg_op op;
        lg_proto_kind proto;
    } ops[] = {
        {"lookup", OP_LOOKUP, LG_PARLEY}, {"list", OP_LIST, LG_PARLEY},
        {"register", OP_REGISTER, LG_PARLEY}, {"hold", OP_HOLD, LG_PARLEY},
        {"get", OP_GET, LG_RESP}, {"set", OP_SET, LG_RESP},
        {"put", OP_PUT, LG_PARLEY}, {"drain", OP_DRAIN, LG_PARLEY},
        {"rpush", OP_RPUSH, LG_RESP}, {"drain", OP_LDRAIN, LG_RESP},
    };
    if (!op)
        return bad_usage("--op is required%s", "");
    int found = strcmp(op, "none") == 0, other = 0;
    o->op = OP_NONE;
    for (size_t i = 0; i < sizeof ops / sizeof *ops && !found; i++) {
        if (strcmp(op, ops[i].name) == 0) {
            if (ops[i].proto != o->proto) {
                other = 1;
                continue;
            }
            o->op = ops[i].op;
            found = 1;
        }
    }
    if (!found && other)
        return bad_usage("--op %s does not go with this --proto", op);
    if (!found)
        return bad_usage("--op %s is not one of lookup, list, register, hold, put, drain, get, "
                         "set, rpush, none", op);
    if (!name_count_set)
        o->name_count = o->preload;
    if ((o->op == OP_LOOKUP || o->op == OP_GET || o->op == OP_PUT || o->op == OP_RPUSH) &&
        o->name_count == 0)
        return bad_usage("--op %s needs targets: give --preload or --name-count", op);
    if ((o->op == OP_DRAIN || o->op == OP_LDRAIN) && (o->conns != 1 || !o->count))
        return bad_usage("--op %s drains with one connection (--conns 1) and needs --count", op);
    if ((o->op == OP_PUT || o->op == OP_RPUSH) && o->value_size == 0)
        return bad_usage("--op %s needs a --value-size of at least 1 byte", op);
    if (!o->self) {
        snprintf(self_buf, self_len, "lg%ld-", (long)getpid());
        o->self = self_buf;
    }
    if (o->subscribe && o->op != OP_HOLD && o->op != OP_REGISTER)
        return bad_usage("--subscribe goes with --op hold or --op register, not %s", op);
    if (strlen(o->sub_names) + 20 > NAME_MAX_CHARS)
        return bad_usage("--sub-names %s: the prefix must leave room for a counter", o->sub_names);
    if (strlen(o->names) + 20 > NAME_MAX_CHARS || strlen(o->self) + 21 > NAME_MAX_CHARS)
        return bad_usage("--names/--self %s: prefixes must leave room for a counter in a "
                         "32-character name", strlen(o->names) + 20 > NAME_MAX_CHARS ? o->names : o->self);
    return -1;
}

static void print_result(lg_ctx *ctx) {
    const lg_opts *o = &ctx->o;
    static const char *const op_names[] = {"none", "lookup", "list", "register", "hold", "get",
                                           "set", "put", "drain", "rpush", "drain"};
    printf("proto=%s op=%s conns=%zu", ctx->proto->name, op_names[o->op], o->conns);
    if (o->preload) {
        double ps = (double)(ctx->t_preload1 - ctx->t_preload0) / 1e9;
        printf(" preload=%" PRIu64 " preload_secs=%.3f preload_per_s=%.0f", ctx->done_preload, ps,
               ps > 0 ? (double)ctx->done_preload / ps : 0.0);
    }
    if (o->op != OP_NONE && o->op != OP_HOLD) {
        uint64_t from = ctx->t_record, to = ctx->t_stop < ctx->t_end ? ctx->t_stop : ctx->t_end;
        double secs = to > from ? (double)(to - from) / 1e9 : 0;
        printf(" ops=%" PRIu64 " secs=%.3f ops_per_s=%.0f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
               "p999_us=%.1f max_us=%.1f",
               ctx->ops, secs, secs > 0 ? (double)ctx->ops / secs : 0.0,
               lat_pct(ctx->lat, 50) / 1e3, lat_pct(ctx->lat, 90) / 1e3, lat_pct(ctx->lat, 99) / 1e3,
               lat_pct(ctx->lat, 99.9) / 1e3, lat_pct(ctx->lat, 100) / 1e3);
        if (is_drain(ctx))
            printf(" first_us=%.1f",
                   ctx->t_first > ctx->t_record ? (double)(ctx->t_first - ctx->t_record) / 1e3 : 0.0);
    }
    printf(" errors=%" PRIu64 "\n", ctx->errors);
    fflush(stdout);
}

int main(int argc, char **argv) {
    lg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.lg = (logger){LOG_WARN, "loadgen"};
    ctx.o = (lg_opts){.proto = LG_PARLEY, .conns = 50, .duration = 2, .warmup = 0.5,
                      .preload_conns = 128, .names = "u", .value_size = 100, .list_limit = 100,
                      .page = 32, .timeout = 600, .sub_names = "r", .sub_count = 1000};
    ctx.o.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    char self_buf[32];
    int r = parse_args(&ctx, argc, argv, self_buf, sizeof self_buf);
    if (r >= 0)
        return r;
    signal(SIGPIPE, SIG_IGN);
    /* Thousands of held connections (figure 3) need the hard fd limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    size_t want = (ctx.o.conns > ctx.o.preload_conns ? ctx.o.conns : ctx.o.preload_conns) + 16;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        fprintf(stderr, "loadgen: %zu connections need %zu file descriptors but the limit is %lu; "
                "raise it (ulimit -n) or use fewer --conns\n", ctx.o.conns, want,
                (unsigned long)rl.rlim_cur);
        return 1;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "loadgen: libsodium failed to initialise; check the installation\n");
        return 1;
    }
    if (ctx.o.key_seed_set) {
        unsigned char seed[crypto_sign_SEEDBYTES] = {0};
        for (int i = 0; i < 8; i++)
            seed[i] = (unsigned char)(ctx.o.key_seed >> (8 * i));
        crypto_sign_seed_keypair(ctx.id.pk, ctx.id.sk, seed);
    } else {
        crypto_sign_keypair(ctx.id.pk, ctx.id.sk);
    }
    ctx.proto = ctx.o.proto == LG_PARLEY ? &parley_proto : &resp_proto;
    ctx.rng = ctx.o.seed | 1;
    ctx.nslots = ctx.o.conns;
    if (ctx.o.preload && ctx.o.preload_conns > ctx.nslots)
        ctx.nslots = ctx.o.preload_conns;
    ctx.slots = calloc(ctx.nslots, sizeof *ctx.slots);
    ctx.lat = lat_new();
    ctx.value = malloc(ctx.o.value_size + 1);
    if (!ctx.slots || !ctx.lat || !ctx.value) {
        fprintf(stderr, "loadgen: out of memory\n");
        free(ctx.slots), lat_free(ctx.lat), free(ctx.value);
        return 1;
    }
    /* Boxes are sealed, so random; SET keeps its 'v's. */
    if (ctx.o.op == OP_PUT || ctx.o.op == OP_RPUSH)
        randombytes_buf(ctx.value, ctx.o.value_size);
    else
        memset(ctx.value, 'v', ctx.o.value_size);
    uv_loop_t loop;
    if ((r = uv_loop_init(&loop)) != 0) {
        fprintf(stderr, "loadgen: cannot start the event loop: %s\n", uv_strerror(r));
        return 1;
    }
    ctx.loop = &loop;
    for (size_t i = 0; i < ctx.nslots; i++) {
        ctx.slots[i].ctx = &ctx;
        ctx.slots[i].idx = i;
        frame_reader_init(&ctx.slots[i].tail, FRAME_MAX_DEFAULT);
    }
    uv_timer_init(&loop, &ctx.phase_timer);
    uv_timer_init(&loop, &ctx.deadline);
    uv_timer_init(&loop, &ctx.ping_timer);
    uv_signal_init(&loop, &ctx.sigint);
    uv_signal_init(&loop, &ctx.sigterm);
    ctx.phase_timer.data = ctx.deadline.data = ctx.ping_timer.data = &ctx;
    ctx.sigint.data = ctx.sigterm.data = &ctx;
    uv_signal_start(&ctx.sigint, on_signal, SIGINT);
    uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);
    uv_timer_start(&ctx.deadline, on_deadline, (uint64_t)(ctx.o.timeout * 1000), 0);
    if (ctx.o.preload)
        start_preload(&ctx);
    else
        start_setup(&ctx);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (ctx.exit_code == 0) {
        print_result(&ctx);
        if (ctx.errors) {
            fprintf(stderr, "loadgen: %" PRIu64 " requests got error answers (run with --log-level "
                    "debug to see them)\n", ctx.errors);
            ctx.exit_code = 1;
        }
    } else
        fprintf(stderr, "loadgen: %s\n", ctx.fatal);
    for (size_t i = 0; i < ctx.nslots; i++)
        frame_reader_free(&ctx.slots[i].tail);
    free(ctx.slots);
    lat_free(ctx.lat);
    free(ctx.value);
    if ((r = uv_loop_close(&loop)) != 0) {
        fprintf(stderr, "loadgen: internal error: handles still open at exit (%s)\n", uv_strerror(r));
        return 1;
    }
    return ctx.exit_code;
}
