/* seal: ephemeral X25519 + transcript-bound keys + secretstream, for one
 * chat link.  Every secret lives in the one struct, erased on free (plain
 * malloc: sodium_malloc's guard pages cost four pages per link). */
#include "seal.h"

#include "name.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define CHAT2_CTX "parley-chat-v2"

struct seal {
    unsigned char epk[crypto_kx_PUBLICKEYBYTES];
    unsigned char esk[crypto_kx_SECRETKEYBYTES];
    unsigned char th[SEAL_HASH];
    unsigned char header[SEAL_HEADER];
    int derived, accepted, dead;
    unsigned char rx_key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    crypto_secretstream_xchacha20poly1305_state tx, rx;
};

seal *seal_new(void) {
    seal *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    crypto_kx_keypair(s->epk, s->esk);
    return s;
}

void seal_free(seal *s) {
    if (!s)
        return;
    sodium_memzero(s, sizeof *s);
    free(s);
}

const unsigned char *seal_ekey(const seal *s) { return s->epk; }
const unsigned char *seal_header(const seal *s) { return s->header; }

static void hash_party(crypto_generichash_state *h, const seal_party *p) {
    unsigned char n = (unsigned char)(p->namelen > NAME_MAX_BYTES ? NAME_MAX_BYTES : p->namelen);
    crypto_generichash_update(h, p->nonce, IDENT_NONCE);
    crypto_generichash_update(h, p->ekey, SEAL_EKEY);
    crypto_generichash_update(h, p->key, IDENT_PK);
    crypto_generichash_update(h, &n, 1); /* length first: names cannot run together */
    crypto_generichash_update(h, (const unsigned char *)p->name, n);
}

/* One direction's key: the X25519 result keyed with the transcript hash, so
 * the keys depend on everything both sides said. */
static void mix(unsigned char out[32], const unsigned char kx[32], const unsigned char th[32]) {
    crypto_generichash(out, 32, kx, 32, th, SEAL_HASH);
}

int seal_derive(seal *s, int dialer, const seal_party *d, const seal_party *a) {
    if (s->derived)
        return UV_EINVAL;
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, SEAL_HASH);
    crypto_generichash_update(&h, (const unsigned char *)CHAT2_CTX, sizeof CHAT2_CTX);
    hash_party(&h, d);
    hash_party(&h, a);
    crypto_generichash_final(&h, s->th, SEAL_HASH);
    unsigned char rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES], k[32];
    const unsigned char *their = dialer ? a->ekey : d->ekey;
    int r = dialer ? crypto_kx_client_session_keys(rx, tx, s->epk, s->esk, their)
                   : crypto_kx_server_session_keys(rx, tx, s->epk, s->esk, their);
    sodium_memzero(s->esk, sizeof s->esk); /* forward secrecy starts here */
    if (r != 0) {
        sodium_memzero(rx, sizeof rx);
        sodium_memzero(tx, sizeof tx);
        s->dead = 1;
        return UV_EPROTO;
    }
    mix(k, tx, s->th);
    crypto_secretstream_xchacha20poly1305_init_push(&s->tx, s->header, k);
    mix(s->rx_key, rx, s->th); /* kept only until their header arrives */
    sodium_memzero(k, sizeof k);
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    s->derived = 1;
    return 0;
}

static size_t auth_input(unsigned char *m, const seal *s, int dialer,
                         const unsigned char header[SEAL_HEADER]) {
    size_t n = sizeof CHAT2_CTX; /* with its NUL */
    memcpy(m, CHAT2_CTX, n);
    m[n++] = dialer ? 'D' : 'A';
    memcpy(m + n, s->th, SEAL_HASH);
    n += SEAL_HASH;
    memcpy(m + n, header, SEAL_HEADER);
    return n + SEAL_HEADER;
}

void seal_sign(const seal *s, const identity *id, int dialer, unsigned char sig[IDENT_SIG]) {
    unsigned char m[sizeof CHAT2_CTX + 1 + SEAL_HASH + SEAL_HEADER];
    size_t n = auth_input(m, s, dialer, s->header);
    crypto_sign_detached(sig, NULL, m, n, id->sk);
}

int seal_accept(seal *s, const unsigned char their_key[IDENT_PK], int their_dialer,
                const unsigned char sig[IDENT_SIG], const unsigned char header[SEAL_HEADER]) {
    if (!s->derived || s->accepted || s->dead)
        return UV_EPERM;
    unsigned char m[sizeof CHAT2_CTX + 1 + SEAL_HASH + SEAL_HEADER];
    size_t n = auth_input(m, s, their_dialer, header);
    if (crypto_sign_verify_detached(sig, m, n, their_key) != 0)
        return UV_EPERM;
    if (crypto_secretstream_xchacha20poly1305_init_pull(&s->rx, header, s->rx_key) != 0)
        return UV_EPERM;
    sodium_memzero(s->rx_key, sizeof s->rx_key);
    s->accepted = 1;
    return 0;
}

int seal_encrypt(seal *s, const unsigned char *in, size_t n, unsigned char *out) {
    if (!s->derived || s->dead)
        return UV_EINVAL;
    crypto_secretstream_xchacha20poly1305_push(&s->tx, out, NULL, in, n, NULL, 0,
                                               crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    return 0;
}

int seal_decrypt(seal *s, const unsigned char *in, size_t n, unsigned char *out, size_t *outn) {
    if (!s->accepted)
        return UV_EINVAL;
    unsigned long long mlen = 0;
    unsigned char tag = 0;
    if (s->dead || n < SEAL_ABYTES ||
        crypto_secretstream_xchacha20poly1305_pull(&s->rx, out, &mlen, &tag, in, n, NULL, 0) != 0 ||
        tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
        s->dead = 1;
        return UV_EPROTO;
    }
    *outn = (size_t)mlen;
    return 0;
}
