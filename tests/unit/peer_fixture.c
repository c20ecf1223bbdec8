/* peer_fixture: the fake tracker, the recording front end and handlers,
 * peer contexts and the two-peers world of the test_peer_* unit tests
 * (what each does: peer_fixture.h). */
#include "peer_fixture.h"

#include "test.h"

#include "chatport.h"
#include "events.h"
#include "frame.h"
#include "pins.h"

#include <dirent.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- loop ---- */

static uv_timer_t fx_wake;

static void fx_on_wake(uv_timer_t *t) {}

void fx_begin(uv_loop_t *loop) {
    signal(SIGPIPE, SIG_IGN);
    ASSERT(sodium_init() >= 0);
    ASSERT_EQ(uv_loop_init(loop), 0);
    ASSERT_EQ(uv_timer_init(loop, &fx_wake), 0);
}

void fx_turn(uv_loop_t *loop, uint64_t start, const char *what, const char *file, int line) {
    uv_update_time(loop);
    if (uv_now(loop) - start > FX_WAIT_MS) {
        fprintf(stderr, "%s:%d: still waiting after %d ms of loop time: %s\n", file, line,
                FX_WAIT_MS, what);
        abort();
    }
    uv_timer_start(&fx_wake, fx_on_wake, 50, 0);
    uv_run(loop, UV_RUN_ONCE);
}

void fx_wait_end(void) { uv_timer_stop(&fx_wake); }

static void fx_count_handle(uv_handle_t *h, void *arg) { (*(size_t *)arg)++; }

static size_t fx_handles(uv_loop_t *loop) {
    size_t n = 0;
    uv_walk(loop, fx_count_handle, &n);
    return n;
}

void fx_finish(uv_loop_t *loop) {
    FX_WAIT(loop, fx_handles(loop) == 1);
    uv_close((uv_handle_t *)&fx_wake, NULL);
    ASSERT_EQ(uv_run(loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(uv_loop_close(loop), 0);
}

static logger fx_logger(const char *prog) {
    logger lg = {-1, prog}; /* quiet; FX_VERBOSE=1 for the modules' debug lines */
    if (getenv("FX_VERBOSE"))
        lg.level = LOG_DEBUG;
    return lg;
}

/* ---- the fake tracker ---- */

int ft_slot(fake_tracker *ft, conn *c) {
    for (int i = 0; i < FT_CONNS; i++)
        if (ft->conns[i] == c)
            return i;
    return -1;
}

void ft_send(conn *c, msg_out *m) { ASSERT_EQ(conn_send_msg(c, m), 0); }

void ft_send_error(conn *c, const char *code, const char *text, uint64_t id) {
    char *buf;
    size_t len;
    ASSERT_EQ(msg_error_frame(code, text, id, &buf, &len), 0);
    ASSERT_EQ(conn_send(c, buf, len), 0);
}

void ft_send_raw(conn *c, const void *payload, size_t len) {
    char *buf = malloc(FRAME_HEADER + len);
    ASSERT(buf != NULL);
    frame_put_len(buf, (uint32_t)len);
    memcpy(buf + FRAME_HEADER, payload, len);
    ASSERT_EQ(conn_send(c, buf, len + FRAME_HEADER), 0);
}

ft_user *ft_user_add(fake_tracker *ft, const char *name, const unsigned char key[IDENT_PK],
                     int online) {
    ASSERT(ft->n_users < FT_USERS);
    ft_user *u = &ft->users[ft->n_users++];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    memcpy(u->key, key, IDENT_PK);
    u->online = online;
    return u;
}

void ft_user_ep(ft_user *u, const char *ep) {
    ASSERT(u->n_eps < FT_EPS);
    snprintf(u->eps[u->n_eps++], ADDR_STRLEN, "%s", ep);
}

static ft_user *ft_find(fake_tracker *ft, const char *name, size_t n) {
    char fold[NAME_BUFLEN], f2[NAME_BUFLEN];
    if (name_fold(name, n, fold))
        return NULL;
    for (int i = 0; i < ft->n_users; i++)
        if (name_fold(ft->users[i].name, strlen(ft->users[i].name), f2) == 0 &&
            strcmp(f2, fold) == 0)
            return &ft->users[i];
    return NULL;
}

conn *ft_conn_of(fake_tracker *ft, const char *fold) {
    for (int i = 0; i < FT_CONNS; i++)
        if (ft->conns[i] && strcmp(ft->who[i], fold) == 0)
            return ft->conns[i];
    return NULL;
}

static void ft_answer_lookup(fake_tracker *ft, conn *c, uint64_t id, const char *name, size_t n) {
    ft_user *u = ft_find(ft, name, n);
    if (!u)
        return ft_send_error(c, "not_found", "no such user", id);
    msg_out o;
    msg_out_init(&o, "lookup_result", 6 + u->online);
    msg_put_uint(&o, "id", id);
    msg_put_str(&o, "name", u->name);
    msg_put_bin(&o, "key", u->key, IDENT_PK);
    msg_put_bool(&o, "online", u->online);
    msg_put_key(&o, "endpoints");
    msgpack_pack_array(&o.pk, (size_t)u->n_eps);
    for (int i = 0; i < u->n_eps; i++)
        msg_pack_str(&o, u->eps[i], strlen(u->eps[i]));
    if (u->online)
        msg_put_str(&o, "observed", "127.0.0.1:9");
    msg_put_int(&o, "last_seen", 1700000000);
    ft_send(c, &o);
}

void ft_release(fake_tracker *ft) {
    for (int i = 0; i < ft->n_held; i++)
        if (ft_slot(ft, ft->held[i].c) >= 0)
            ft_answer_lookup(ft, ft->held[i].c, ft->held[i].id, ft->held[i].name,
                             strlen(ft->held[i].name));
    ft->n_held = 0;
}

void ft_push_presence(conn *c, const char *name, int online) {
    msg_out o;
    msg_out_init(&o, "presence", 2);
    msg_put_str(&o, "name", name);
    msg_put_bool(&o, "online", online);
    ft_send(c, &o);
}

static void ft_on_hello(fake_tracker *ft, conn *c, int slot) {
    ft->hellos++;
    ft->hello_at = uv_now(ft->loop);
    randombytes_buf(ft->nonce[slot], IDENT_NONCE);
    msg_out o;
    msg_out_init(&o, "welcome", 5);
    msg_put_uint(&o, "v", PROTO_VERSION);
    msg_put_bin(&o, "nonce", ft->nonce[slot], IDENT_NONCE);
    msg_put_str(&o, "observed", "127.0.0.1:1");
    msg_put_uint(&o, "ttl", 60);
    msg_put_key(&o, "features");
    msgpack_pack_array(&o.pk, 1);
    msg_pack_str(&o, "connect_failed", 14);
    ft_send(c, &o);
}

static void ft_on_register(fake_tracker *ft, conn *c, int slot, const msg_in *m) {
    const char *name;
    size_t n;
    const unsigned char *key, *sig;
    ft->registers++;
    if (msg_str(m, "name", &name, &n) || msg_bin(m, "key", &key, IDENT_PK) ||
        msg_bin(m, "sig", &sig, IDENT_SIG))
        return conn_fail(c, "bad_message", "fake tracker: register needs name, key, sig", 0);
    if (ident_verify_register(key, ft->nonce[slot], name, n, sig)) {
        ft->bad_sigs++;
        return conn_fail(c, "bad_signature", "fake tracker: the signature does not verify", 0);
    }
    if (ft->register_error)
        return conn_fail(c, ft->register_error, "fake tracker refuses the register", 0);
    name_fold(name, n, ft->who[slot]);
    msg_out o;
    msg_out_init(&o, "registered", 2);
    msg_put_strn(&o, "name", name, n);
    msg_put_str(&o, "observed", "127.0.0.1:1");
    ft_send(c, &o);
}

/* The string field key of m (which must be there) into out, and as *s, *n. */
static void ft_copy_name(const msg_in *m, const char *key, char out[NAME_BUFLEN], const char **s,
                         size_t *n) {
    ASSERT_EQ(msg_str(m, key, s, n), 0);
    ASSERT(*n < NAME_BUFLEN);
    memcpy(out, *s, *n);
    out[*n] = '\0';
}

static void ft_on_frame(conn *c, const char *payload, size_t len) {
    fake_tracker *ft = conn_data(c);
    int slot = ft_slot(ft, c);
    msg_in m;
    ASSERT(slot >= 0);
    if (msg_parse(&m, payload, len))
        return conn_fail(c, "bad_frame", "fake tracker: not a msgpack map", 0);
    uint64_t id = 0;
    const char *s;
    size_t n;
    msg_uint(&m, "id", &id);
    if (strcmp(m.type, "error") == 0) { /* counted even when a hook answers */
        char text[200];
        ft->errors++;
        msg_error_fields(&m, ft->error_code, sizeof ft->error_code, text, sizeof text);
    }
    if (ft->hook && ft->hook(ft, c, &m)) {
        msg_in_free(&m);
        return;
    }
    msg_out o;
    if (strcmp(m.type, "hello") == 0) {
        ft_on_hello(ft, c, slot);
    } else if (strcmp(m.type, "register") == 0) {
        ft_on_register(ft, c, slot, &m);
    } else if (strcmp(m.type, "lookup") == 0) {
        ft->lookups++;
        ft_copy_name(&m, "name", ft->lookup_name, &s, &n);
        if (ft->hold_lookups && (!ft->hold_name || strcmp(ft->hold_name, ft->lookup_name) == 0)) {
            ASSERT(ft->n_held < FT_HELD);
            ft->held[ft->n_held].c = c;
            ft->held[ft->n_held].id = id;
            snprintf(ft->held[ft->n_held].name, NAME_BUFLEN, "%s", ft->lookup_name);
            ft->n_held++;
        } else {
            ft_answer_lookup(ft, c, id, s, n);
        }
    } else if (strcmp(m.type, "list") == 0) {
        ft->lists++;
        msg_out_init(&o, "list_result", 2);
        msg_put_uint(&o, "id", id);
        msg_put_key(&o, "users");
        msgpack_pack_array(&o.pk, 0);
        ft_send(c, &o);
    } else if (strcmp(m.type, "ping") == 0) {
        ft->pings++;
        msg_out_init(&o, "pong", 0);
        ft_send(c, &o);
    } else if (strcmp(m.type, "connect_request") == 0) {
        ft->connect_requests++;
        ft->connect_tag = 0;
        msg_uint(&m, "tag", &ft->connect_tag);
        msg_out_init(&o, "connect_result", 1);
        msg_put_uint(&o, "id", id);
        ft_send(c, &o);
    } else if (strcmp(m.type, "relay_request") == 0) {
        ft->relay_requests++;
        ft_copy_name(&m, "to", ft->relay_to, &s, &n);
        ft_send_error(c, "limit", "fake tracker: too many relay sessions", id);
    }
    msg_in_free(&m);
}

static void ft_on_closed(conn *c, int reason) {
    fake_tracker *ft = conn_data(c);
    int slot = ft_slot(ft, c);
    ASSERT(slot >= 0);
    ft->conns[slot] = NULL;
    ft->who[slot][0] = '\0';
    ft->closed++;
}

static void ft_on_connection(uv_stream_t *srv, int status) {
    fake_tracker *ft = srv->data;
    ASSERT_EQ(status, 0);
    int slot = ft_slot(ft, NULL);
    ASSERT(slot >= 0);
    conn *c = conn_new(ft->loop, FRAME_MAX_DEFAULT, &ft->lg, ft_on_frame, ft_on_closed, ft);
    ASSERT(c != NULL);
    ft->conns[slot] = c;
    ft->who[slot][0] = '\0';
    ft->accepted++;
    ASSERT_EQ(uv_accept(srv, (uv_stream_t *)conn_tcp(c)), 0);
    ASSERT_EQ(conn_start(c), 0);
}

void ft_open(fake_tracker *ft, uv_loop_t *loop) {
    memset(ft, 0, sizeof *ft);
    ft->loop = loop;
    ft->lg = fx_logger("fake-tracker");
    struct sockaddr_in sa;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    ASSERT_EQ(uv_tcp_init(loop, &ft->srv), 0);
    ft->srv.data = ft;
    ASSERT_EQ(uv_tcp_bind(&ft->srv, (struct sockaddr *)&sa, 0), 0);
    ASSERT_EQ(uv_listen((uv_stream_t *)&ft->srv, 64, ft_on_connection), 0);
    int len = sizeof sa;
    ASSERT_EQ(uv_tcp_getsockname(&ft->srv, (struct sockaddr *)&sa, &len), 0);
    ft->port = ntohs(sa.sin_port);
    snprintf(ft->addr, sizeof ft->addr, "127.0.0.1:%d", ft->port);
    ft->listening = 1;
}

void ft_drop(fake_tracker *ft) {
    for (int i = 0; i < FT_CONNS; i++)
        if (ft->conns[i])
            conn_close(ft->conns[i], 0);
}

void ft_stop(fake_tracker *ft) {
    if (ft->listening)
        uv_close((uv_handle_t *)&ft->srv, NULL);
    ft->listening = 0;
}

void ft_close(fake_tracker *ft) {
    ft_stop(ft);
    ft_drop(ft);
}

/* ---- the test front end (fx_events) and the ctl_handler (fx_news) ---- */

static void fe_registered(void *fe, const char *name, const char *tracker, const char *observed) {
    ((fx_events *)fe)->registered++;
}
static void fe_tracker_lost(void *fe, const char *tracker, const char *why, unsigned delay_ms,
                            int repeat, int was_registered) {
    fx_events *e = fe;
    e->tracker_lost++;
    e->lost_was_registered = was_registered;
    snprintf(e->lost_why, sizeof e->lost_why, "%s", why);
}
static void fe_presence(void *fe, const char *name, int online) { ((fx_events *)fe)->presence++; }
static void fe_error(void *fe, const char *code, const char *text) {
    fx_events *e = fe;
    e->errors++;
    snprintf(e->error_code, sizeof e->error_code, "%s", code);
    snprintf(e->error_text, sizeof e->error_text, "%s", text);
}
static const ev_frontend fx_frontend = {
    .name = "test",
    .registered = fe_registered,
    .tracker_lost = fe_tracker_lost,
    .presence = fe_presence,
    .error = fe_error,
};

static void nw_registered(void *data) { ((fx_news *)data)->registered++; }
static void nw_presence(void *data, const char *name, int online) {
    fx_news *n = data;
    n->presence++;
    snprintf(n->presence_name, sizeof n->presence_name, "%s", name);
    n->presence_online = online;
}
static void nw_connect_request(void *data, const ctl_user *u, uint64_t tag) {
    ((fx_news *)data)->connect_requests++;
}
static void nw_connect_failed(void *data, const char *from, uint64_t tag, const char *why) {
    ((fx_news *)data)->connect_failed++;
}
static void nw_relay_offer(void *data, const char *from, const unsigned char t[IDENT_SESSION]) {
    ((fx_news *)data)->relay_offers++;
}
static void nw_refused(void *data, const char *code) {
    fx_news *n = data;
    n->refused++;
    snprintf(n->refused_code, sizeof n->refused_code, "%s", code);
}
static const ctl_handler fx_news_handler = {
    .registered = nw_registered,
    .presence = nw_presence,
    .connect_request = nw_connect_request,
    .connect_failed = nw_connect_failed,
    .relay_offer = nw_relay_offer,
    .refused = nw_refused,
};

void fx_lookup_cb(void *data, int status, const ctl_user *u) {
    fx_lookup *r = data;
    r->calls++;
    r->status = status;
    if (u)
        r->u = *u;
    else
        memset(&r->u, 0, sizeof r->u);
}

/* ---- a link_handler that records ---- */

static void lk_up(chatlink *l, void *data) {
    fx_link *r = data;
    ASSERT(l == r->l);
    ASSERT(link_is_up(l));
    r->up++;
}
static void lk_msg(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len,
                   void *data) {
    fx_link *r = data;
    r->msgs++;
    r->msg_id = id;
    r->msg_ts = ts;
    ASSERT(len < sizeof r->text);
    memcpy(r->text, text, len);
    r->text[len] = '\0';
    r->acks_at_msg = r->acks;
    if (r->ack_msgs)
        ASSERT_EQ(link_send_ack(l, id), 0);
    if (r->answer)
        ASSERT_EQ(link_send_msg(l, id + 1000, ts, "re", 2), 0);
}
static void lk_ack(chatlink *l, uint64_t id, void *data) {
    fx_link *r = data;
    r->acks++;
    r->ack_id = id;
}
static void lk_bye(chatlink *l, void *data) {
    fx_link *r = data;
    r->byes++;
    if (r->bye_back)
        ASSERT_EQ(link_send_bye(l), 0);
}
static void lk_closed(chatlink *l, int reason, const char *why, void *data) {
    fx_link *r = data;
    ASSERT(l == r->l);
    r->closed++;
    r->reason = reason;
    r->why_null = why == NULL;
    snprintf(r->why, sizeof r->why, "%s", why ? why : "");
    r->l = NULL; /* freed when this returns */
}
const link_handler fx_link_handler = {lk_up, lk_msg, lk_ack, lk_bye, lk_closed};

/* ---- a peer context ---- */

static void fx_on_quit(peer_ctx *ctx, int code, int say_bye, int how) {
    ((fx_peer *)ctx)->quits++;
}

void fx_peer_init(fx_peer *p, uv_loop_t *loop, const char *user, const char *tracker) {
    memset(p, 0, sizeof *p);
    peer_ctx *ctx = &p->ctx;
    ctx->loop = loop;
    ctx->lg = fx_logger(user);
    ASSERT_EQ(crypto_sign_keypair(ctx->id.pk, ctx->id.sk), 0);
    snprintf(ctx->user, sizeof ctx->user, "%s", user);
    ASSERT_EQ(name_fold(user, strlen(user), ctx->user_fold), 0);
    ctx->tracker = ctx->trackers[0] = tracker;
    ctx->n_trackers = 1;
    ctx->listen = "127.0.0.1:0";
    ctx->relay_after_ms = PEER_RELAY_AFTER_MS;
    ctx->link_timeout_ms = (uint64_t)PEER_LINK_TIMEOUT_S * 1000;
    ctx->id_base = 1000;
    ctx->on_quit = fx_on_quit;
    ev_set_frontend(ctx, &fx_frontend, &p->ev);
}

static void fx_on_accept(void *data, uv_stream_t *server) {
    fx_peer *p = data;
    ASSERT(p->n_in < FX_ACCEPTED);
    fx_link *r = &p->in[p->n_in++];
    ASSERT_EQ(link_accept(&p->ctx, server, &fx_link_handler, r, &r->l), 0);
}

void fx_peer_open(fx_peer *p) {
    char err[512];
    if (port_open(&p->ctx, fx_on_accept, p, &p->ctx.port, err, sizeof err)) {
        fprintf(stderr, "port_open: %s\n", err);
        abort();
    }
    char eps[PEER_MAX_ENDPOINTS][ADDR_STRLEN];
    ASSERT_EQ(port_endpoints(p->ctx.port, eps, PEER_MAX_ENDPOINTS), 1);
    ASSERT(strncmp(eps[0], "127.0.0.1:", 10) == 0);
    snprintf(p->ep, sizeof p->ep, "%s", eps[0]);
    ASSERT_EQ(ctl_open(&p->ctx, &fx_news_handler, &p->news, &p->ctx.ctl), 0);
}

void fx_peer_home(fx_peer *p, const char *pin_fold, const unsigned char *pin_key) {
    char err[512];
    snprintf(p->home, sizeof p->home, "/tmp/parley-unit-XXXXXX");
    ASSERT(mkdtemp(p->home) != NULL);
    if (pin_fold) {
        char file[128], hex[IDENT_PK * 2 + 1];
        snprintf(file, sizeof file, "%s/known_peers", p->home);
        FILE *f = fopen(file, "w");
        ASSERT(f != NULL);
        ASSERT_EQ(chmod(file, 0600), 0);
        sodium_bin2hex(hex, sizeof hex, pin_key, IDENT_PK);
        fprintf(f, "%s %s\n", pin_fold, hex);
        ASSERT_EQ(fclose(f), 0);
    }
    if (pins_open(p->home, &p->ctx.pins, err, sizeof err)) {
        fprintf(stderr, "pins_open: %s\n", err);
        abort();
    }
}

void fx_peer_close(fx_peer *p) {
    ctl_close(p->ctx.ctl);
    p->ctx.ctl = NULL;
    port_close(p->ctx.port);
    p->ctx.port = NULL;
    pins_close(p->ctx.pins);
    p->ctx.pins = NULL;
    if (p->home[0]) {
        DIR *d = opendir(p->home);
        ASSERT(d != NULL);
        struct dirent *e;
        char path[400];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", p->home, e->d_name);
            unlink(path);
        }
        closedir(d);
        ASSERT_EQ(rmdir(p->home), 0);
        p->home[0] = '\0';
    }
}

void fx_peer_close_links(fx_peer *p) {
    for (int i = 0; i < p->n_in; i++)
        if (p->in[i].l)
            link_close(p->in[i].l);
}

struct sockaddr_in fx_sa(int port) {
    struct sockaddr_in sa;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", port, &sa), 0);
    return sa;
}

int fx_ep_port(const char *ep) {
    const char *colon = strrchr(ep, ':');
    ASSERT(colon != NULL);
    return atoi(colon + 1);
}

int fx_dead_port(int *fd) {
    struct sockaddr_in sa = fx_sa(0);
    socklen_t len = sizeof sa;
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(*fd >= 0);
    ASSERT_EQ(bind(*fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ASSERT_EQ(getsockname(*fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/* ---- two peers and their tracker ---- */

void fx_world_open(fx_world *w) {
    fx_begin(&w->loop);
    ft_open(&w->ft, &w->loop);
    fx_peer_init(&w->a, &w->loop, "alice", w->ft.addr);
    fx_peer_init(&w->b, &w->loop, "bob", w->ft.addr);
    w->ua = ft_user_add(&w->ft, "alice", w->a.ctx.id.pk, 1);
    w->ub = ft_user_add(&w->ft, "bob", w->b.ctx.id.pk, 1);
    fx_peer_open(&w->a);
    fx_peer_open(&w->b);
    FX_WAIT(&w->loop, ctl_ready(w->a.ctx.ctl) && ctl_ready(w->b.ctx.ctl));
}

void fx_world_close(fx_world *w) {
    fx_peer_close_links(&w->a);
    fx_peer_close_links(&w->b);
    fx_peer_close(&w->a);
    fx_peer_close(&w->b);
    ft_close(&w->ft);
    fx_finish(&w->loop);
}
