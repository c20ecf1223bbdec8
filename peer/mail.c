/* mail: sealing and opening mailbox letters (mail.h).  The letter is the
 * msgpack map {t:"mail", v, from, fkey, to, tkey, id, ts, text}; the box is
 * crypto_box_seal(sig || letter) with sig the Ed25519 signature over
 * "parley-mail-v1" 0x00 || letter.  Signing inside the seal keeps even the
 * sender's identity from the tracker's disk (it knows it anyway from the
 * connection, but a copy of the file does not); naming both keys inside
 * the signed letter stops a recipient from re-sealing it to a third
 * party as if it had been written to them. */
#include "mail.h"

#include "msg.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAIL_CTX "parley-mail-v1"
#define MAIL_V 1

/* Plain Ed25519 (not the prehashed Ed25519ph of crypto_sign_init) over the
 * context string, its NUL and the letter, so any Ed25519 library checks
 * it.  buf holds sizeof MAIL_CTX + n bytes. */
static void signed_bytes(unsigned char *buf, const unsigned char *letter, size_t n) {
    memcpy(buf, MAIL_CTX, sizeof MAIL_CTX); /* with its NUL */
    memcpy(buf + sizeof MAIL_CTX, letter, n);
}

static int sign_letter(const identity *me, const unsigned char *letter, size_t n,
                       unsigned char sig[IDENT_SIG]) {
    unsigned char *buf = malloc(sizeof MAIL_CTX + n);
    if (!buf)
        return UV_ENOMEM;
    signed_bytes(buf, letter, n);
    crypto_sign_detached(sig, NULL, buf, sizeof MAIL_CTX + n, me->sk);
    sodium_memzero(buf, sizeof MAIL_CTX + n);
    free(buf);
    return 0;
}

static int verify_letter(const unsigned char pk[IDENT_PK], const unsigned char *letter, size_t n,
                         const unsigned char sig[IDENT_SIG]) {
    unsigned char *buf = malloc(sizeof MAIL_CTX + n);
    if (!buf)
        return UV_ENOMEM;
    signed_bytes(buf, letter, n);
    int ok = crypto_sign_verify_detached(sig, buf, sizeof MAIL_CTX + n, pk) == 0;
    sodium_memzero(buf, sizeof MAIL_CTX + n);
    free(buf);
    return ok ? 0 : UV_EPERM;
}

int mail_seal(const identity *me, const char *from, const char *to_fold,
              const unsigned char to_key[IDENT_PK], uint64_t id, int64_t ts, const char *text,
              size_t len, unsigned char **box, size_t *boxlen) {
    unsigned char xpk[crypto_box_PUBLICKEYBYTES];
    if (crypto_sign_ed25519_pk_to_curve25519(xpk, to_key) != 0)
        return UV_EINVAL;
    msg_out m;
    msg_out_init(&m, "mail", 8);
    msg_put_uint(&m, "v", MAIL_V);
    msg_put_str(&m, "from", from);
    msg_put_bin(&m, "fkey", me->pk, IDENT_PK);
    msg_put_str(&m, "to", to_fold);
    msg_put_bin(&m, "tkey", to_key, IDENT_PK);
    msg_put_uint(&m, "id", id);
    msg_put_int(&m, "ts", ts);
    msg_put_strn(&m, "text", text, len);
    unsigned char *letter;
    size_t n;
    int e = msg_out_payload(&m, MAIL_BOX_MAX, &letter, &n);
    if (e) {
        msg_out_discard(&m);
        return e;
    }
    size_t plain_n = IDENT_SIG + n, out_n = plain_n + crypto_box_SEALBYTES;
    if (out_n > MAIL_BOX_MAX) {
        msg_out_wipe(&m);
        return UV_E2BIG;
    }
    unsigned char *plain = malloc(plain_n), *out = malloc(out_n);
    if (!plain || !out) {
        free(plain);
        free(out);
        msg_out_wipe(&m);
        return UV_ENOMEM;
    }
    e = sign_letter(me, letter, n, plain);
    memcpy(plain + IDENT_SIG, letter, n);
    msg_out_wipe(&m);
    if (!e)
        e = crypto_box_seal(out, plain, plain_n, xpk) == 0 ? 0 : UV_EINVAL;
    sodium_memzero(plain, plain_n);
    free(plain);
    if (e) {
        free(out);
        return e;
    }
    *box = out;
    *boxlen = out_n;
    return 0;
}

static int refuse(const char **why, const char *text) {
    *why = text;
    return UV_EPERM;
}

int mail_open(const identity *me, const char *my_fold, const unsigned char *box, size_t boxlen,
              unsigned char *work, mail_letter *out, const char **why) {
    unsigned char xpk[crypto_box_PUBLICKEYBYTES], xsk[crypto_box_SECRETKEYBYTES];
    if (boxlen < crypto_box_SEALBYTES + IDENT_SIG + 1)
        return refuse(why, "the sealed letter is too short");
    if (crypto_sign_ed25519_pk_to_curve25519(xpk, me->pk) != 0 ||
        crypto_sign_ed25519_sk_to_curve25519(xsk, me->sk) != 0)
        return refuse(why, "this identity key cannot open sealed letters");
    size_t plain_n = boxlen - crypto_box_SEALBYTES;
    int opened = crypto_box_seal_open(work, box, boxlen, xpk, xsk) == 0;
    sodium_memzero(xsk, sizeof xsk);
    if (!opened)
        return refuse(why, "it was not sealed to your key, or it was altered");
    const unsigned char *sig = work, *letter = work + IDENT_SIG;
    size_t n = plain_n - IDENT_SIG;
    msg_in m;
    if (msg_parse(&m, (const char *)letter, n) != 0)
        return refuse(why, "the letter does not parse");
    int e = UV_EPERM;
    const unsigned char *fkey, *tkey;
    const char *from, *to, *text;
    size_t from_n, to_n, text_n;
    uint64_t v, id;
    int64_t ts;
    *why = "the letter lacks a field or has one of the wrong type";
    if (strcmp(m.type, "mail") || msg_uint(&m, "v", &v) || msg_str(&m, "from", &from, &from_n) ||
        msg_bin(&m, "fkey", &fkey, IDENT_PK) || msg_str(&m, "to", &to, &to_n) ||
        msg_bin(&m, "tkey", &tkey, IDENT_PK) || msg_uint(&m, "id", &id) ||
        msg_int(&m, "ts", &ts) || msg_str(&m, "text", &text, &text_n))
        goto done;
    if (v != MAIL_V) {
        *why = "the letter has an unknown version";
        goto done;
    }
    if (from_n == 0 || from_n >= NAME_BUFLEN || memchr(from, 0, from_n)) {
        *why = "the sender's name is not a name";
        goto done;
    }
    int ve = verify_letter(fkey, letter, n, sig);
    if (ve) {
        *why = ve == UV_ENOMEM ? "out of memory checking it" : "its signature does not verify";
        goto done;
    }
    if (memcmp(tkey, me->pk, IDENT_PK) != 0 || to_n != strlen(my_fold) ||
        memcmp(to, my_fold, to_n) != 0) {
        *why = "it was written to someone else";
        goto done;
    }
    memcpy(out->from, from, from_n);
    out->from[from_n] = '\0';
    memcpy(out->fkey, fkey, IDENT_PK);
    out->id = id;
    out->ts = ts;
    out->text = text;
    out->len = text_n;
    *why = NULL;
    e = 0;
done:
    msg_in_free(&m);
    return e;
}
