/* control_mail: the offline mailbox on the tracker connection (PROTOCOL.md,
 * "Mailbox"): handing a sealed letter to the tracker (mail_put), the
 * letters it keeps for us (mail, answered by mail_ack once our history
 * holds them) and the receipts for the letters we left (receipt, answered
 * by receipt_ack).  The layers above get the news through the ctl_handler
 * and decide what it means; this file only speaks the frames. */
#include "control_impl.h"

#include <stdio.h>
#include <string.h>

static int usable(ctl *t) {
    if (!ctl_ready(t))
        return UV_ENOTCONN;
    if (!t->tracker_mailbox)
        return UV_ENOTSUP; /* an older tracker would close on the unknown type */
    return 0;
}

int ctl_mailbox(const ctl *t) { return ctl_ready(t) && t->tracker_mailbox; }

int ctl_mail_put(ctl *t, const char *to, uint64_t id, const unsigned char *box, size_t n) {
    int e = usable(t);
    if (e)
        return e;
    msg_out m;
    msg_out_init(&m, "mail_put", 3);
    msg_put_uint(&m, "id", id);
    msg_put_str(&m, "to", to);
    msg_put_bin(&m, "box", box, n);
    return conn_send_msg(t->c, &m);
}

int ctl_mail_ack(ctl *t, uint64_t mid, int ok) {
    int e = usable(t);
    if (e)
        return e;
    msg_out m;
    msg_out_init(&m, "mail_ack", 2);
    msg_put_uint(&m, "mid", mid);
    msg_put_bool(&m, "ok", ok != 0);
    return conn_send_msg(t->c, &m);
}

int ctl_receipt_ack(ctl *t, uint64_t rid) {
    int e = usable(t);
    if (e)
        return e;
    msg_out m;
    msg_out_init(&m, "receipt_ack", 1);
    msg_put_uint(&m, "rid", rid);
    return conn_send_msg(t->c, &m);
}

void ctl_on_mail_stored(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t id;
    char to[NAME_BUFLEN];
    if (msg_uint(m, "id", &id) || ctl_str_field(m, "to", to, sizeof to))
        return ctl_bad(t, "mail_stored");
    if (t->h->mail_stored)
        t->h->mail_stored(t->hdata, to, id);
}

void ctl_on_mail(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t mid;
    int64_t ts;
    char from[NAME_BUFLEN];
    const unsigned char *key;
    const msgpack_object *o;
    if (msg_uint(m, "mid", &mid) || ctl_str_field(m, "from", from, sizeof from) ||
        msg_bin(m, "key", &key, IDENT_PK) || msg_int(m, "ts", &ts) ||
        msg_get(m, "box", &o) || o->type != MSGPACK_OBJECT_BIN)
        return ctl_bad(t, "mail");
    if (t->h->mail)
        t->h->mail(t->hdata, mid, from, key, ts, (const unsigned char *)o->via.bin.ptr,
                   o->via.bin.size);
}

void ctl_on_receipt(void *owner, const msg_in *m) {
    ctl *t = owner;
    uint64_t rid, id;
    char to[NAME_BUFLEN];
    const char *status;
    size_t sn;
    if (msg_uint(m, "rid", &rid) || ctl_str_field(m, "to", to, sizeof to) ||
        msg_uint(m, "id", &id) || msg_str(m, "status", &status, &sn))
        return ctl_bad(t, "receipt");
    /* A status newer than this peer is UNKNOWN, never a reason to leave. */
#define IS(word) (sn == sizeof word - 1 && memcmp(status, word, sn) == 0)
    enum ctl_receipt st = IS("delivered") ? CTL_RECEIPT_DELIVERED
                          : IS("expired") ? CTL_RECEIPT_EXPIRED
                          : IS("refused") ? CTL_RECEIPT_REFUSED
                                          : CTL_RECEIPT_UNKNOWN;
#undef IS
    if (t->h->receipt)
        t->h->receipt(t->hdata, rid, to, id, st);
    else
        ctl_receipt_ack(t, rid);
}

void ctl_mail_refused(ctl *t, uint64_t id, const char *code, const char *text) {
    if (t->h->mail_refused)
        t->h->mail_refused(t->hdata, id, code, text);
}
