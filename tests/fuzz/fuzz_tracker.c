/* fuzz_tracker: the tracker's whole receive path, end to end and in
 * process.  The real server code (every tracker module but main.c: the
 * dispatch table, the handlers, the registry, the relay) runs on a libuv
 * loop with a registry in a temp file; each fuzz input is the byte stream
 * one client sends over a loopback TCP connection, so every handler
 * (hello, register, list, lookup, connect_request, connect_failed,
 * punch_request, relay_request, relay_join, mail_put, mail_ack, receipt_ack,
 * subscribe, unsubscribe, ping, pong, error, and unknown types) decodes hostile frames exactly as in
 * production.
 *
 * Input: byte 0 picks how the client starts and how its bytes are split:
 *   bits 0-1: 0 = the input is the whole stream;
 *             1 = the harness first says hello and registers "fuzzer"
 *                 (a valid signature the fuzzer could not forge), then the
 *                 rest follows on a registered connection;
 *             2 = as 1, but the name and endpoints of the register come
 *                 from the input: a length byte and that many name bytes,
 *                 a count byte (mod 18) and per endpoint a length byte and
 *                 its bytes; the rest follows;
 *             3 = as 0.
 *   bits 2-4: chunk size 0 (one write) or 2^(k-1) bytes, with a loop turn
 *             between chunks.
 * Three users (alice, bob, Émile) stay registered on connections of their
 * own, so lists and lookups have something to find (and mail_put someone
 * to store for: their windows fill and the harness drains them).  bob
 * registers as an older peer (all mode), alice and Émile list "subscribe"
 * and subscribe to "fuzzer", and so does the fuzzing connection: pushes
 * travel both the all list and the subscription index.  Nothing
 * is stubbed. */
#include "fuzz_io.h"

#include "frame.h"
#include "identity.h"
#include "mailbox.h"
#include "msg.h"
#include "namemap.h"
#include "registry.h"
#include "server.h"
#include "tracker.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NRESIDENTS 3
/* Setup must not fail on a loaded machine (CI runs the harness right after
 * the whole suite, and the first fsync of a fresh database can take a
 * second there); an input's own registration may time out harmlessly. */
#define SETUP_WAIT_MS 5000
#define INPUT_WAIT_MS 200

static struct {
    int ready;
    uv_loop_t loop;
    tracker_ctx ctx;
    uv_tcp_t srv;
    int port;
    identity fuzz_key, resident_key;
    int residents[NRESIDENTS];
    size_t baseline;
    char dbdir[256];
} H;

static void drain_residents(void) {
    for (int i = 0; i < NRESIDENTS; i++) {
        fio_in sink = {0};
        fio_read(H.residents[i], &sink);
        fio_in_free(&sink);
    }
}

/* hello, welcome, register (signed over the welcome's nonce), answer.
 * subscribes: 0 an older peer, 1 lists "subscribe", 2 also subscribes to
 * "fuzzer" afterwards.  1 when registered.  wait_ms bounds the welcome (twice that the
 * registered, which waits for the registry's fsync on its thread). */
static int do_register(int fd, const identity *id, const char *name, size_t nlen,
                       const char *const *eps, const size_t *eplens, size_t neps, int wait_ms,
                       int subscribes) {
    fio_in in = {0};
    size_t off = 0, len;
    msg_out m;
    char *buf;
    size_t blen;
    msg_out_init(&m, "hello", 2);
    msg_put_uint(&m, "v", 1);
    msg_put_str(&m, "role", "peer");
    msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &blen);
    int r = fio_send(&H.loop, fd, buf, blen, 0, &in);
    free(buf);
    long at = r ? -1 : fio_wait_frame(&H.loop, fd, &in, "welcome", &off, &len, wait_ms);
    int ok = 0;
    if (at >= 0) {
        msg_in w;
        const unsigned char *nonce;
        if (msg_parse(&w, (const char *)in.buf + at, len) == 0) {
            if (msg_bin(&w, "nonce", &nonce, IDENT_NONCE) == 0) {
                unsigned char sig[IDENT_SIG];
                ident_sign_register(id, nonce, name, nlen, sig);
                msg_out_init(&m, "register", 5);
                msg_put_strn(&m, "name", name, nlen);
                msg_put_bin(&m, "key", id->pk, IDENT_PK);
                msg_put_bin(&m, "sig", sig, IDENT_SIG);
                msg_put_key(&m, "endpoints");
                msgpack_pack_array(&m.pk, neps);
                for (size_t i = 0; i < neps; i++)
                    msg_pack_str(&m, eps[i], eplens[i]);
                /* every push the tracker has, mail, receipts and punches
                 * included, so punch_request reaches its success path */
                msg_put_key(&m, "features");
                msgpack_pack_array(&m.pk, subscribes ? 4 : 3);
                msg_pack_str(&m, "connect_failed", 14);
                msg_pack_str(&m, "mailbox", 7);
                msg_pack_str(&m, "punch", 5); /* punch pushes, and pings we never answer */
                if (subscribes)
                    msg_pack_str(&m, "subscribe", 9);
                if (msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &blen) == 0) {
                    if (fio_send(&H.loop, fd, buf, blen, 0, &in) == 0)
                        ok = fio_wait_frame(&H.loop, fd, &in, "registered", &off, &len, 2 * wait_ms) >= 0;
                    free(buf);
                    buf = NULL;
                }
                if (ok && subscribes == 2) { /* a resident follows the fuzzer */
                    msg_out_init(&m, "subscribe", 2);
                    msg_put_uint(&m, "id", 1);
                    msg_put_key(&m, "names");
                    msgpack_pack_array(&m.pk, 1);
                    msg_pack_str(&m, "fuzzer", 6);
                    ok = msg_out_finish(&m, FRAME_MAX_DEFAULT, &buf, &blen) == 0 &&
                         fio_send(&H.loop, fd, buf, blen, 0, &in) == 0 &&
                         fio_wait_frame(&H.loop, fd, &in, "subscribed", &off, &len, 2 * wait_ms) >= 0;
                    free(buf);
                }
            }
            msg_in_free(&w);
        }
    }
    fio_in_free(&in);
    return ok;
}

static void cleanup_db(void) {
    char p[300];
    static const char *const files[] = {"tracker.db", "tracker.db-wal", "tracker.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", H.dbdir, files[i]);
        unlink(p);
    }
    rmdir(H.dbdir);
}

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0)
        fio_die("sodium_init", 0);
    crypto_sign_keypair(H.fuzz_key.pk, H.fuzz_key.sk);
    crypto_sign_keypair(H.resident_key.pk, H.resident_key.sk);
    uv_loop_init(&H.loop);
    tracker_ctx *ctx = &H.ctx;
    ctx->loop = &H.loop;
    ctx->lg = (logger){-1, "parley-tracker"}; /* silent: a log line per input would dominate */
    if (getenv("FUZZ_VERBOSE"))
        ctx->lg.level = LOG_DEBUG;
    /* The real limits, so inputs reach rate_limited, limit and the relay
     * caps; each input gets fresh connections, so no bucket carries over. */
    tracker_config_defaults(&ctx->cfg);
    ctx->cfg.ttl = 86400; /* the resident users stay silent for the whole run */
    /* An input cannot know a session's token, so every relay session it
     * asks for waits for joins that never come: expire them well inside
     * the harness's 5 s settling window (the default is 10 s). */
    ctx->cfg.relay_join_ms = 500;
    ctx->cfg.db = "fuzz";
    /* WAL needs a real file; /dev/shm keeps synchronous=FULL cheap. */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(H.dbdir, sizeof H.dbdir, "%s/parley-fuzz-tracker-XXXXXX", base);
    if (!mkdtemp(H.dbdir))
        fio_die("mkdtemp", 0);
    atexit(cleanup_db);
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/tracker.db", H.dbdir);
    ctx->online = namemap_new();
    if (!ctx->online || reg_open(&H.loop, path, &ctx->lg, &ctx->reg, err, sizeof err) ||
        mbox_open(ctx->reg, &ctx->lg, &ctx->mbox, err, sizeof err) || srv_open(ctx)) {
        fprintf(stderr, "fuzz_tracker: %s\n", err);
        abort();
    }
    H.port = fio_uv_listen(&H.loop, &H.srv, srv_on_connection, ctx);
    static const char *const names[NRESIDENTS] = {"alice", "bob", "\xc3\x89mile"};
    static const char *const ep[] = {"127.0.0.1:9", "[::1]:4000"};
    static const size_t eplen[] = {11, 10};
    for (int i = 0; i < NRESIDENTS; i++) {
        H.residents[i] = fio_connect(H.port);
        if (!do_register(H.residents[i], &H.resident_key, names[i], strlen(names[i]), ep, eplen, 2,
                         SETUP_WAIT_MS, i == 1 ? 0 : 2))
            fio_die("registering a resident user failed", 0);
    }
    fio_pump(&H.loop, 4);
    H.baseline = fio_handles(&H.loop);
    H.ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!H.ready)
        setup();
    if (size < 1)
        return 0;
    fio_src src = {data + 1, size - 1};
    int mode = data[0] & 3;
    unsigned ck = (data[0] >> 2) & 7;
    size_t chunk = ck ? (size_t)1 << (ck - 1) : 0;
    if (chunk && (size - 1) / chunk > 256) /* keep one input to a few hundred turns */
        chunk = (size - 1) / 256 + 1;

    int fd = fio_connect(H.port);
    fio_in in = {0};
    if (mode == 1) {
        static const char *const ep[] = {"127.0.0.1:5000"};
        static const size_t eplen[] = {14};
        do_register(fd, &H.fuzz_key, "fuzzer", 6, ep, eplen, 1, INPUT_WAIT_MS, 1);
    } else if (mode == 2) {
        char name[256];
        size_t nlen = fio_byte(&src);
        for (size_t i = 0; i < nlen; i++)
            name[i] = (char)fio_byte(&src);
        size_t neps = fio_byte(&src) % 18;
        char epbuf[17][256];
        const char *eps[17];
        size_t eplens[17];
        for (size_t e = 0; e < neps; e++) {
            eplens[e] = fio_byte(&src);
            for (size_t i = 0; i < eplens[e]; i++)
                epbuf[e][i] = (char)fio_byte(&src);
            eps[e] = epbuf[e];
        }
        do_register(fd, &H.fuzz_key, name, nlen, eps, eplens, neps, INPUT_WAIT_MS, 0);
    }
    if (fio_send(&H.loop, fd, src.p, src.n, chunk, &in) == 0)
        shutdown(fd, SHUT_WR);
    fio_wait_eof(&H.loop, fd, &in, 400);
    close(fd);
    fio_in_free(&in);
    drain_residents();
    fio_settle(&H.loop, H.baseline);
    if (H.ctx.nsessions != NRESIDENTS) {
        fprintf(stderr, "fuzz_tracker: %zu sessions left, want %d\n", H.ctx.nsessions, NRESIDENTS);
        abort();
    }
    return 0;
}
