/* queries: list and lookup, a registered user reading the directory.  The
 * online set comes from the registry (list) and the live sessions
 * (lookup's observed address and last_seen), and with a shared registry
 * the stored presence of the other trackers' users. */
#include "handlers.h"
#include "session.h"

#include "frame.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- list ---- */

typedef struct list_req {
    uint64_t id, limit;
    const char *prefix, *cursor;
    size_t pn, cn;
} list_req;

/* 0, or UV_EPROTO after failing the connection with bad_message. */
static int list_fields(session *s, const msg_in *m, list_req *q) {
    *q = (list_req){.limit = REG_LIMIT_DEFAULT, .prefix = "", .cursor = ""};
    if (sess_uint(s, m, "id", &q->id) || sess_opt_str(s, m, "prefix", &q->prefix, &q->pn) ||
        sess_opt_uint(s, m, "limit", &q->limit) || sess_opt_str(s, m, "cursor", &q->cursor, &q->cn))
        return UV_EPROTO;
    return 0;
}

/* One list page, gathered before encoding because msgpack wants counts first. */
typedef struct page {
    char (*names)[NAME_BUFLEN];
    size_t n, limit, bytes;
    char last[NAME_BUFLEN];
} page;

/* Room for the frame's other fields: type, id, the array header, next. */
#define PAGE_BUDGET (FRAME_MAX_DEFAULT - 512)

static int page_add(const char *name, const char *folded, void *arg) {
    page *p = arg;
    size_t len = strlen(name);
    if (len >= NAME_BUFLEN || p->bytes + len + 5 > PAGE_BUDGET)
        return 1;
    memcpy(p->names[p->n++], name, len + 1);
    p->bytes += len + 5;
    snprintf(p->last, sizeof p->last, "%s", folded);
    return 0;
}

/* A list page being gathered: on the stack, or on the heap while a shared
 * registry reads it (reg_list_start; it holds its session until then). */
typedef struct list_page {
    session *s;
    uint64_t id;
    int more;
    page p;
} list_page;

/* Answers request lp->id with its page, or with the error r. */
static void answer_page(list_page *lp, int r) {
    session *s = lp->s;
    page *p = &lp->p;
    if (r) {
        sess_send_db_error(s, r, lp->id);
        return;
    }
    int more = lp->more && p->n > 0;
    msg_out out;
    s->ctx->stats.lists++;
    msg_out_init(&out, "list_result", more ? 3 : 2);
    msg_put_uint(&out, "id", lp->id);
    msg_put_key(&out, "users");
    msgpack_pack_array(&out.pk, p->n);
    for (size_t i = 0; i < p->n; i++)
        msg_pack_str(&out, p->names[i], strlen(p->names[i]));
    if (more)
        msg_put_str(&out, "next", p->last);
    sess_send_msg(s, &out);
}

static void on_listed(int status, void *arg) {
    list_page *lp = arg;
    answer_page(lp, status); /* a no-op once it closed */
    sess_release(lp->s);
    free(lp->p.names);
    free(lp);
}

void qry_list(void *owner, const msg_in *m) {
    session *s = owner;
    list_req q;
    if (list_fields(s, m, &q))
        return;
    if (q.cn >= NAME_BUFLEN || memchr(q.cursor, 0, q.cn)) {
        conn_fail(s->c, "bad_message", "list cursor is not one this tracker handed out", 0);
        return;
    }
    uint64_t limit = q.limit;
    if (limit == 0 || limit > REG_LIMIT_MAX)
        limit = limit ? REG_LIMIT_MAX : 1;
    char fprefix[NAME_BUFLEN] = "", fcursor[NAME_BUFLEN];
    memcpy(fcursor, q.cursor, q.cn);
    fcursor[q.cn] = '\0';
    /* A prefix that is no valid name start matches nobody. */
    int none = q.pn > 0 && name_fold(q.prefix, q.pn, fprefix) != 0;
    list_page *lp = calloc(1, sizeof *lp);
    char (*names)[NAME_BUFLEN] = lp ? malloc(limit * sizeof *names) : NULL;
    if (!names) {
        free(lp);
        sess_send_error(s, "internal", "the tracker is out of memory; try again later", q.id);
        return;
    }
    *lp = (list_page){s, q.id, 0, {names, 0, limit, 0, ""}};
    int r = none ? 0 : reg_list_start(s->ctx->reg, fprefix, fcursor, limit, page_add, &lp->p,
                                      &lp->more, on_listed, lp);
    if (r == REG_PENDING) {
        sess_hold(s);
        return;
    }
    answer_page(lp, r);
    free(lp->p.names);
    free(lp);
}

void qry_list_unregistered(void *owner, const msg_in *m) {
    session *s = owner;
    list_req q;
    if (list_fields(s, m, &q) == 0)
        sess_send_error(s, "not_registered", "register before asking for the list", q.id);
}

/* ---- lookup ---- */

/* A lookup the shared registry answers later (reg_lookup_start); it holds
 * its session until then. */
typedef struct lookup_answer {
    session *s;
    uint64_t id;
    char asked[NAME_BUFLEN];  /* as asked for, for not_found */
    char folded[NAME_BUFLEN];
    reg_user u;
} lookup_answer;

/* Answers lookup id of folded (asked for as asked) with reg_lookup's
 * result r and the record u. */
static void answer(session *s, uint64_t id, const char *asked, const char *folded, int r,
                   const reg_user *u) {
    tracker_ctx *ctx = s->ctx;
    if (r == UV_ENOENT) {
        char text[256];
        snprintf(text, sizeof text, "no user named %s", asked);
        sess_send_error(s, "not_found", text, id);
        return;
    }
    if (r) {
        sess_send_db_error(s, r, id);
        return;
    }
    session *o = namemap_get(ctx->online, folded);
    /* A user of another tracker sharing the registry has no session here:
     * its stored flag says (registry.h). */
    int online = o != NULL || (reg_shared(ctx->reg) && u->online);
    msg_out out;
    ctx->stats.lookups++;
    msg_out_init(&out, "lookup_result", o ? 7 : 6);
    msg_put_uint(&out, "id", id);
    msg_put_str(&out, "name", u->name);
    msg_put_bin(&out, "key", u->key, sizeof u->key);
    msg_put_bool(&out, "online", online);
    msg_put_key(&out, "endpoints");
    msgpack_pack_array(&out.pk, u->nendpoints);
    for (size_t i = 0; i < u->nendpoints; i++)
        msg_pack_str(&out, u->endpoints[i], strlen(u->endpoints[i]));
    if (o)
        msg_put_str(&out, "observed", o->observed);
    msg_put_int(&out, "last_seen", o ? o->last_frame : u->last_seen);
    sess_send_msg(s, &out);
}

static void on_looked_up(int status, void *arg) {
    lookup_answer *a = arg;
    answer(a->s, a->id, a->asked, a->folded, status, &a->u); /* a no-op once it closed */
    sess_release(a->s);
    free(a);
}

void qry_lookup(void *owner, const msg_in *m) {
    session *s = owner;
    tracker_ctx *ctx = s->ctx;
    uint64_t id;
    const char *name;
    size_t nlen;
    if (sess_request(s, m, "name", &id, &name, &nlen))
        return;
    const char *why;
    char text[256], folded[NAME_BUFLEN];
    if (name_fold(name, nlen, folded)) {
        name_check(name, nlen, &why);
        snprintf(text, sizeof text, "invalid name: %s", why);
        sess_send_error(s, "bad_name", text, id);
        return;
    }
    char asked[NAME_BUFLEN];
    snprintf(asked, sizeof asked, "%.*s", (int)nlen, name);
    if (!reg_shared(ctx->reg)) {
        reg_user u;
        answer(s, id, asked, folded, reg_lookup(ctx->reg, folded, &u), &u);
        return;
    }
    lookup_answer *a = malloc(sizeof *a);
    if (!a) {
        sess_send_error(s, "internal", "the tracker is out of memory; try again later", id);
        return;
    }
    a->s = s;
    a->id = id;
    snprintf(a->asked, sizeof a->asked, "%s", asked);
    snprintf(a->folded, sizeof a->folded, "%s", folded);
    int r = reg_lookup_start(ctx->reg, folded, &a->u, on_looked_up, a);
    if (r == REG_PENDING) {
        sess_hold(s);
        return;
    }
    answer(s, id, asked, folded, r, &a->u);
    free(a);
}

void qry_lookup_unregistered(void *owner, const msg_in *m) {
    sess_request_unregistered(owner, m, "name", "register before looking users up");
}
