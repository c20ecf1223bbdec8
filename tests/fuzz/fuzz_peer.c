/* fuzz_peer: the peer's receive paths, in process.  The real peer modules
 * (every peer module except main.c: control, chatport, inbound, chat, dial, link,
 * events, line mode output) run on a libuv loop with one peer context; each fuzz input is
 * what one stranger sends over loopback TCP:
 *
 * byte 0, bits 0-2 (mod 5), the scenario:
 *   0 ctl:    the input plays the TRACKER for a fresh control connection
 *             (welcome, registered, lookup_result, list_result, presence,
 *             error, ping, punch, punch_result...); a lookup (id 1) and a
 *             list (id 2) are pending; a punch push starts a real punch
 *             (inbound_punch, as main.c wires it) to its addr;
 *   1 accept: a stranger connects to the chat port; the input is its
 *             whole byte stream (the handshake state machine, acceptor side);
 *   2 accept+: as 1, but the harness first completes a valid handshake as
 *             user "mallory" (whose key the tracker vouches for), so the
 *             rest of the input lands on an UP link: msg, ack, bye, ping...
 *             Each whole frame of the rest is sealed by the harness (so
 *             the fuzzer reaches the handlers behind the decryption);
 *             trailing bytes that make no whole frame go as they are;
 *   3 dial:   the peer dials "mallory" (lookup at the tracker, then a TCP
 *             connection to the harness); the input is mallory's answer
 *             (the handshake state machine, dialer side);
 *   4 dial+:  as 3 with a valid handshake first, then the input.
 * bit 3: --echo on; bits 4-6: chunk size (0 = one write, else 2^(k-1));
 * bit 7: a message to mallory is queued first (its wire id is 1001), so
 *        acks and resends have something to match.
 *
 * The tracker the peer registers with is a small fake served by the harness
 * on the same loop (it vouches for mallory's key and points at the harness);
 * the peer's own control connection to it is real.  The harness wires the
 * modules as main.c does (which is not linked); its quit only records the
 * request.  Line-mode events go to /dev/null. */
#include "fuzz_io.h"

#include "chat.h"
#include "conn.h"
#include "control.h"
#include "events.h"
#include "frame.h"
#include "identity.h"
#include "chatport.h"
#include "inbound.h"
#include "msg.h"
#include "name.h"
#include "peer.h"
#include "seal.h"
#include "ui/line.h"

#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct {
    int ready;
    uv_loop_t loop;
    peer_ctx ctx;
    uv_tcp_t ft_srv;       /* the fake tracker */
    int ft_port;
    char tracker[32];
    int remote_lfd;        /* where "mallory" is reached (and the fuzzed tracker listens) */
    int remote_port;
    char remote_ep[32];
    char remote_tracker[32];
    int lst_port;
    identity mallory;
    size_t baseline;
    int quit_requests;
} H;

/* In place of peer/main.c's quit: the harness decides when to stop. */
static void count_quit(peer_ctx *ctx, int code, int say_bye, int how) {
    H.quit_requests++;
}

/* The wiring main.c does: the chat port and the tracker's news go to the
 * chat of the current input. */
static void w_accept(void *data, uv_stream_t *server) {
    inbound_accept(((peer_ctx *)data)->inbound, server);
}
static void w_incoming(void *data, chatlink *l) { chat_incoming(((peer_ctx *)data)->chat, l); }
static int w_linked(void *data, const char *fold) {
    return chat_linked(((peer_ctx *)data)->chat, fold);
}
static const inbound_handler w_inbound = {w_incoming, w_linked};
static void w_registered(void *data) { chat_tracker_ready(((peer_ctx *)data)->chat); }
static void w_presence(void *data, const char *name, int online) {
    if (online)
        chat_peer_online(((peer_ctx *)data)->chat, name);
}
static void w_connect_request(void *data, const ctl_user *u, uint64_t tag) {
    inbound_connect_request(((peer_ctx *)data)->inbound, u, tag);
}
static void w_connect_failed(void *data, const char *from, uint64_t tag, const char *why) {
    chat_connect_failed(((peer_ctx *)data)->chat, from, tag, why);
}
static void w_punch(void *data, const ctl_user *u, const char *addr, unsigned delay_ms) {
    inbound_punch(((peer_ctx *)data)->inbound, u, addr, delay_ms);
}
static void w_relay_offer(void *data, const char *from, const unsigned char token[IDENT_SESSION]) {
    inbound_relay_offer(((peer_ctx *)data)->inbound, from, token);
}
static void w_refused(void *data, const char *code) { H.quit_requests++; }
/* The mailbox pushes reach the chat as in main.c (with no history there,
 * as here, it drops them: what a hostile tracker's pushes must cost). */
static void w_mail_stored(void *data, const char *to, uint64_t id) {
    chat_mail_stored(((peer_ctx *)data)->chat, to, id);
}
static void w_mail_refused(void *data, uint64_t id, const char *code, const char *text) {
    chat_mail_refused(((peer_ctx *)data)->chat, id, code, text);
}
static void w_mail(void *data, uint64_t mid, const char *from, const unsigned char key[IDENT_PK],
                   int64_t ts, const unsigned char *box, size_t n) {
    chat_mail_letter(((peer_ctx *)data)->chat, mid, from, key, ts, box, n);
}
static void w_receipt(void *data, uint64_t rid, const char *to, uint64_t id, int status) {
    chat_mail_receipt(((peer_ctx *)data)->chat, rid, to, id, status);
}
static const ctl_handler w_news = {
    .registered = w_registered,
    .presence = w_presence,
    .connect_request = w_connect_request,
    .connect_failed = w_connect_failed,
    .punch = w_punch,
    .relay_offer = w_relay_offer,
    .refused = w_refused,
    .mail_stored = w_mail_stored,
    .mail_refused = w_mail_refused,
    .mail = w_mail,
    .receipt = w_receipt,
};

/* ---- the fake tracker ---- */

static void ft_send(conn *c, msg_out *m) {
    conn_send_msg(c, m);
}

static void ft_on_frame(conn *c, const char *payload, size_t len) {
    msg_in m;
    if (msg_parse(&m, payload, len))
        return conn_fail(c, "bad_frame", "fake tracker: bad frame", 0);
    msg_out o;
    uint64_t id = 0;
    msg_uint(&m, "id", &id);
    if (strcmp(m.type, "hello") == 0) {
        unsigned char nonce[IDENT_NONCE] = {0};
        msg_out_init(&o, "welcome", 4);
        msg_put_uint(&o, "v", 1);
        msg_put_bin(&o, "nonce", nonce, sizeof nonce);
        msg_put_str(&o, "observed", "127.0.0.1:1");
        msg_put_uint(&o, "ttl", 86400);
        ft_send(c, &o);
    } else if (strcmp(m.type, "register") == 0) {
        const char *name;
        size_t n;
        if (msg_str(&m, "name", &name, &n))
            name = "?", n = 1;
        msg_out_init(&o, "registered", 2);
        msg_put_strn(&o, "name", name, n);
        msg_put_str(&o, "observed", "127.0.0.1:1");
        ft_send(c, &o);
    } else if (strcmp(m.type, "lookup") == 0) {
        const char *name;
        size_t n;
        char fold[NAME_BUFLEN];
        if (msg_str(&m, "name", &name, &n) || name_fold(name, n, fold) ||
            strcmp(fold, "mallory") != 0) {
            char *buf;
            size_t blen;
            if (msg_error_frame("not_found", "no such user", id, &buf, &blen) == 0)
                conn_send(c, buf, blen);
        } else {
            msg_out_init(&o, "lookup_result", 7);
            msg_put_uint(&o, "id", id);
            msg_put_str(&o, "name", "mallory");
            msg_put_bin(&o, "key", H.mallory.pk, IDENT_PK);
            msg_put_bool(&o, "online", true);
            msg_put_key(&o, "endpoints");
            msgpack_pack_array(&o.pk, 1);
            msg_pack_str(&o, H.remote_ep, strlen(H.remote_ep));
            msg_put_str(&o, "observed", "127.0.0.1:2");
            msg_put_int(&o, "last_seen", 0);
            ft_send(c, &o);
        }
    } else if (strcmp(m.type, "list") == 0) {
        msg_out_init(&o, "list_result", 2);
        msg_put_uint(&o, "id", id);
        msg_put_key(&o, "users");
        msgpack_pack_array(&o.pk, 1);
        msg_pack_str(&o, "mallory", 7);
        ft_send(c, &o);
    } else if (strcmp(m.type, "ping") == 0) {
        msg_out_init(&o, "pong", 0);
        ft_send(c, &o);
    }
    msg_in_free(&m);
}

static void ft_on_closed(conn *c, int reason) {}

static void ft_on_connection(uv_stream_t *srv, int status) {
    if (status < 0)
        return;
    conn *c = conn_new(&H.loop, FRAME_MAX_DEFAULT, &H.ctx.lg, ft_on_frame, ft_on_closed, NULL);
    if (!c)
        fio_die("fake tracker conn", UV_ENOMEM);
    if (uv_accept(srv, (uv_stream_t *)conn_tcp(c)) || conn_start(c))
        conn_close(c, UV_EIO);
}

/* ---- setup ---- */

static void setup(void) {
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0)
        fio_die("sodium_init", 0);
    if (!freopen("/dev/null", "w", stdout))
        fio_die("/dev/null", 0);
    uv_loop_init(&H.loop);
    crypto_sign_keypair(H.mallory.pk, H.mallory.sk);
    peer_ctx *ctx = &H.ctx;
    ctx->loop = &H.loop;
    ctx->lg = (logger){-1, "parley"};
    if (getenv("FUZZ_VERBOSE"))
        ctx->lg.level = LOG_DEBUG;
    crypto_sign_keypair(ctx->id.pk, ctx->id.sk);
    strcpy(ctx->user, "fuzzpeer");
    strcpy(ctx->user_fold, "fuzzpeer");
    ctx->listen = "127.0.0.1:0";
    ctx->id_base = 1000;
    H.ft_port = fio_uv_listen(&H.loop, &H.ft_srv, ft_on_connection, NULL);
    snprintf(H.tracker, sizeof H.tracker, "127.0.0.1:%d", H.ft_port);
    ctx->tracker = ctx->trackers[0] = H.tracker;
    ctx->n_trackers = 1;
    H.remote_lfd = fio_plain_listen(&H.remote_port);
    snprintf(H.remote_ep, sizeof H.remote_ep, "127.0.0.1:%d", H.remote_port);
    snprintf(H.remote_tracker, sizeof H.remote_tracker, "127.0.0.1:%d", H.remote_port);
    char err[512];
    ctx->on_quit = count_quit;
    ctx->fe_base = &line_frontend; /* as main.c sets it; stdout is /dev/null */
    if (port_open(ctx, w_accept, ctx, &ctx->port, err, sizeof err)) {
        fprintf(stderr, "fuzz_peer: %s\n", err);
        abort();
    }
    char eps[PEER_MAX_ENDPOINTS][ADDR_STRLEN];
    int n = port_endpoints(ctx->port, eps, PEER_MAX_ENDPOINTS);
    for (int i = 0; i < n && !H.lst_port; i++)
        if (strncmp(eps[i], "127.0.0.1:", 10) == 0)
            H.lst_port = atoi(eps[i] + 10);
    if (!H.lst_port)
        fio_die("the chat port has no 127.0.0.1 endpoint", 0);
    if (ctl_open(ctx, &w_news, ctx, &ctx->ctl))
        fio_die("ctl_open", 0);
    uint64_t start = uv_now(&H.loop);
    while (!ctl_ready(ctx->ctl)) {
        if (uv_now(&H.loop) - start > 5000)
            fio_die("the peer did not register with the fake tracker", 0);
        uv_run(&H.loop, UV_RUN_ONCE);
    }
    fio_pump(&H.loop, 4);
    H.baseline = fio_handles(&H.loop);
    H.ready = 1;
}

/* Connections left in the remote listener's backlog (dials we did not
 * take) must not be mistaken for the next input's dial. */
static void flush_backlog(void) {
    int fd;
    while ((fd = accept4(H.remote_lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
        close(fd);
}

static void noop_lookup(void *data, int status, const ctl_user *u) {}
static void noop_list(void *data, int status, char **names, size_t n) {}

/* Sends mallory's valid hello and auth (the version 2 handshake, through
 * the peer's own seal.c) once their hello arrived.  The seal to send with
 * (the caller frees it), or NULL when their hello never came. */
static seal *handshake(int fd, fio_in *in, int dialer) {
    size_t off = 0, len;
    long at = fio_wait_frame(&H.loop, fd, in, "hello", &off, &len, 200);
    if (at < 0)
        return NULL;
    msg_in m;
    seal_party them = {0};
    if (msg_parse(&m, (const char *)in->buf + at, len))
        return NULL;
    seal *sl = seal_new();
    unsigned char my_nonce[IDENT_NONCE], sig[IDENT_SIG];
    randombytes_buf(my_nonce, sizeof my_nonce);
    seal_party me = {"mallory", 7, H.mallory.pk, my_nonce, sl ? seal_ekey(sl) : NULL};
    if (!sl || msg_str(&m, "name", &them.name, &them.namelen) ||
        msg_bin(&m, "key", &them.key, IDENT_PK) || msg_bin(&m, "nonce", &them.nonce, IDENT_NONCE) ||
        msg_bin(&m, "ekey", &them.ekey, SEAL_EKEY) ||
        seal_derive(sl, dialer, dialer ? &me : &them, dialer ? &them : &me)) {
        msg_in_free(&m);
        seal_free(sl);
        return NULL;
    }
    msg_in_free(&m);
    seal_sign(sl, &H.mallory, dialer, sig);
    msg_out o;
    char *b1, *b2;
    size_t l1, l2;
    msg_out_init(&o, "hello", dialer ? 7 : 6);
    msg_put_uint(&o, "v", 2);
    msg_put_str(&o, "role", "chat");
    msg_put_str(&o, "name", "mallory");
    msg_put_bin(&o, "key", H.mallory.pk, IDENT_PK);
    msg_put_bin(&o, "nonce", my_nonce, IDENT_NONCE);
    msg_put_bin(&o, "ekey", seal_ekey(sl), SEAL_EKEY);
    if (dialer)
        msg_put_str(&o, "to", "fuzzpeer");
    msg_out_finish(&o, FRAME_MAX_DEFAULT, &b1, &l1);
    msg_out_init(&o, "auth", 2);
    msg_put_bin(&o, "sig", sig, IDENT_SIG);
    msg_put_bin(&o, "header", seal_header(sl), SEAL_HEADER);
    msg_out_finish(&o, FRAME_MAX_DEFAULT, &b2, &l2);
    int r = fio_send(&H.loop, fd, b1, l1, 0, in);
    if (r == 0)
        r = fio_send(&H.loop, fd, b2, l2, 0, in);
    free(b1);
    free(b2);
    fio_pump(&H.loop, 4); /* key check, auth, up */
    if (r) {
        seal_free(sl);
        return NULL;
    }
    return sl;
}

/* The rest of the input as mallory sends it on an up link: every whole
 * frame's payload sealed into a {t:"sealed"} frame, trailing bytes as they
 * are.  *out is malloc'd (the caller frees it). */
static size_t seal_rest(seal *sl, const uint8_t *p, size_t n, uint8_t **out) {
    size_t cap = n + 64 + (n / 4 + 1) * 48, o = 0, i = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        fio_die("seal_rest", UV_ENOMEM);
    while (n - i >= 4) {
        size_t len = (size_t)p[i] << 24 | (size_t)p[i + 1] << 16 | (size_t)p[i + 2] << 8 | p[i + 3];
        if (len > n - i - 4)
            break;
        unsigned char *ct = malloc(len + SEAL_ABYTES);
        if (!ct)
            fio_die("seal_rest", UV_ENOMEM);
        seal_encrypt(sl, p + i + 4, len, ct);
        msg_out m;
        char *f;
        size_t flen;
        msg_out_init(&m, "sealed", 1);
        msg_put_bin(&m, "c", ct, len + SEAL_ABYTES);
        free(ct);
        if (msg_out_finish(&m, (size_t)-1 >> 1, &f, &flen))
            fio_die("seal_rest", UV_ENOMEM);
        if (o + flen > cap) {
            cap = (o + flen) * 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb)
                fio_die("seal_rest", UV_ENOMEM);
            buf = nb;
        }
        memcpy(buf + o, f, flen);
        o += flen;
        free(f);
        i += 4 + len;
    }
    if (o + (n - i) > cap) {
        uint8_t *nb = realloc(buf, o + (n - i));
        if (!nb)
            fio_die("seal_rest", UV_ENOMEM);
        buf = nb;
    }
    memcpy(buf + o, p + i, n - i);
    *out = buf;
    return o + (n - i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!H.ready)
        setup();
    if (size < 1)
        return 0;
    peer_ctx *ctx = &H.ctx;
    int mode = (data[0] & 7) % 5;
    unsigned ck = (data[0] >> 4) & 7;
    size_t chunk = ck ? (size_t)1 << (ck - 1) : 0;
    if (chunk && (size - 1) / chunk > 256)
        chunk = (size - 1) / 256 + 1;
    const uint8_t *rest = data + 1;
    size_t nrest = size - 1;
    ctx->echo = (data[0] >> 3) & 1;
    ctx->id_seq = 0;
    H.quit_requests = 0;
    if (chat_open(ctx, &ctx->chat) || inbound_open(ctx, &w_inbound, ctx, &ctx->inbound))
        fio_die("chat_open", UV_ENOMEM);

    fio_in in = {0};
    int fd = -1;
    seal *sl = NULL;
    ctl *t2 = NULL;
    peer_ctx ctx2;
    if (mode == 0) {
        ctx2 = *ctx;
        ctx2.tracker = ctx2.trackers[0] = H.remote_tracker;
        ctx2.chat = NULL;
        if (ctl_open(&ctx2, &w_news, &ctx2, &t2))
            fio_die("ctl_open", 0);
        ctl_lookup(t2, "mallory", 1, noop_lookup, NULL); /* id 1 once registered */
        ctl_list(t2, NULL, noop_list, NULL);             /* id 2 */
        fd = fio_accept(&H.loop, H.remote_lfd, 400);
    } else if (mode <= 2) {
        if (data[0] & 0x80)
            chat_send_to(ctx->chat, "mallory", "queued before the link", 22);
        fd = fio_connect(H.lst_port);
        if (mode == 2)
            sl = handshake(fd, &in, 1);
    } else {
        if (data[0] & 0x80)
            chat_send_to(ctx->chat, "mallory", "queued before the link", 22);
        else
            chat_dial(ctx->chat, "mallory");
        fd = fio_accept(&H.loop, H.remote_lfd, 400);
        if (fd >= 0 && mode == 4)
            sl = handshake(fd, &in, 0);
    }
    uint8_t *sealed = NULL;
    if (sl) {
        nrest = seal_rest(sl, rest, nrest, &sealed);
        rest = sealed;
        if (chunk && nrest / chunk > 256)
            chunk = nrest / 256 + 1;
    }
    if (fd >= 0) {
        if (fio_send(&H.loop, fd, rest, nrest, chunk, &in) == 0)
            shutdown(fd, SHUT_WR);
        fio_wait_eof(&H.loop, fd, &in, 400);
        close(fd);
    }
    fio_in_free(&in);
    free(sealed);
    seal_free(sl);
    fio_pump(&H.loop, 2);
    inbound_close(ctx->inbound);
    ctx->inbound = NULL;
    chat_close(ctx->chat);
    ctx->chat = NULL;
    ctl_close(t2);
    fio_pump(&H.loop, 2);
    flush_backlog();
    fio_settle(&H.loop, H.baseline);
    if (!ctl_ready(ctx->ctl)) {
        fprintf(stderr, "fuzz_peer: the peer lost its (fake) tracker during an input\n");
        abort();
    }
    return 0;
}
