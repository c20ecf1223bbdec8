/* test_peer_seal: a chat link's session crypto (peer/seal.c), two seal
 * objects playing dialer ("alice") and acceptor ("bob") with no socket in
 * between: the handshake gives both sides matching keys, sealed payloads
 * open only once, in order and unaltered, and an auth signature verifies
 * only from the right key, for the right role, over the same transcript
 * and header.  Linked with the peer's modules (Makefile: test_peer_*). */
#include "seal.h"
#include "test.h"

#include <sodium.h>
#include <uv.h>

typedef struct side {
    identity id;
    unsigned char nonce[IDENT_NONCE];
    const char *name;
    seal *s;
} side;

typedef struct pair {
    side d, a; /* dialer, acceptor */
    unsigned char dsig[IDENT_SIG], asig[IDENT_SIG];
} pair;

static seal_party party(const side *x) {
    return (seal_party){x->name, strlen(x->name), x->id.pk, x->nonce, seal_ekey(x->s)};
}

static void side_init(side *x, const char *name) {
    crypto_sign_keypair(x->id.pk, x->id.sk);
    randombytes_buf(x->nonce, sizeof x->nonce);
    x->name = name;
    x->s = seal_new();
    ASSERT(x->s != NULL);
}

/* Both hellos known: each side derives and signs; nothing is accepted yet. */
static void derive_both(pair *p) {
    ASSERT(sodium_init() >= 0);
    side_init(&p->d, "alice");
    side_init(&p->a, "bob");
    seal_party d = party(&p->d), a = party(&p->a);
    ASSERT_EQ(seal_derive(p->d.s, 1, &d, &a), 0);
    ASSERT_EQ(seal_derive(p->a.s, 0, &d, &a), 0);
    seal_sign(p->d.s, &p->d.id, 1, p->dsig);
    seal_sign(p->a.s, &p->a.id, 0, p->asig);
}

/* The whole handshake: each side accepts the other's auth. */
static void handshake(pair *p) {
    derive_both(p);
    ASSERT_EQ(seal_accept(p->d.s, p->a.id.pk, 0, p->asig, seal_header(p->a.s)), 0);
    ASSERT_EQ(seal_accept(p->a.s, p->d.id.pk, 1, p->dsig, seal_header(p->d.s)), 0);
}

static void pair_free(pair *p) {
    seal_free(p->d.s);
    seal_free(p->a.s);
}

/* bob signs again, on a fresh seal, as if alice's hello had been
 * alice_seen; everything else in the transcript (bob's own ephemeral key
 * included) as in p.  Returns the new seal (its header is in the auth). */
static seal *resign(const pair *p, const side *alice_seen, unsigned char sig[IDENT_SIG]) {
    seal *s = seal_new();
    ASSERT(s != NULL);
    seal_party d = party(alice_seen), a = party(&p->a);
    ASSERT_EQ(seal_derive(s, 0, &d, &a), 0);
    seal_sign(s, &p->a.id, 0, sig);
    return s;
}

/* Seals text from one seal; *n set to the sealed size. */
static unsigned char *seal_text(seal *from, const char *text, size_t *n) {
    size_t len = strlen(text);
    unsigned char *c = malloc(len + SEAL_ABYTES);
    ASSERT(c != NULL);
    ASSERT_EQ(seal_encrypt(from, (const unsigned char *)text, len, c), 0);
    *n = len + SEAL_ABYTES;
    return c;
}

/* Opens c on to and requires it to be text. */
static void opens_as(seal *to, const unsigned char *c, size_t n, const char *text) {
    unsigned char out[256];
    size_t outn = 9999;
    ASSERT(n - SEAL_ABYTES <= sizeof out);
    ASSERT_EQ(seal_decrypt(to, c, n, out, &outn), 0);
    ASSERT_EQ(outn, strlen(text));
    ASSERT(memcmp(out, text, outn) == 0);
}

static int open_fails(seal *to, const unsigned char *c, size_t n) {
    unsigned char out[256];
    size_t outn = 9999;
    int r = seal_decrypt(to, c, n, out, &outn);
    ASSERT_EQ(outn, 9999); /* nothing reported on failure */
    return r;
}

/* The wire sizes PROTOCOL.md gives are libsodium's. */
static void sizes(void) {
    ASSERT_EQ(SEAL_EKEY, crypto_kx_PUBLICKEYBYTES);
    ASSERT_EQ(SEAL_HEADER, crypto_secretstream_xchacha20poly1305_HEADERBYTES);
    ASSERT_EQ(SEAL_ABYTES, crypto_secretstream_xchacha20poly1305_ABYTES);
    ASSERT_EQ(SEAL_HASH, crypto_generichash_BYTES);
    /* A sealed payload is exactly n + SEAL_ABYTES: the byte after is untouched. */
    pair p;
    derive_both(&p);
    unsigned char c[5 + SEAL_ABYTES + 1];
    c[sizeof c - 1] = 0xa5;
    ASSERT_EQ(seal_encrypt(p.d.s, (const unsigned char *)"hello", 5, c), 0);
    ASSERT_EQ(c[sizeof c - 1], 0xa5);
    /* Every seal has its own ephemeral key; each side its own header. */
    ASSERT(memcmp(seal_ekey(p.d.s), seal_ekey(p.a.s), SEAL_EKEY) != 0);
    ASSERT(memcmp(seal_header(p.d.s), seal_header(p.a.s), SEAL_HEADER) != 0);
    pair_free(&p);
}

/* After the handshake each direction opens what the other side sealed:
 * both derived the same key per direction. */
static void handshake_derives_matching_keys(void) {
    pair p;
    handshake(&p);
    size_t n;
    unsigned char *c = seal_text(p.d.s, "alice to bob", &n);
    ASSERT(memmem(c, n, "alice to bob", 12) == NULL); /* not in the clear */
    opens_as(p.a.s, c, n, "alice to bob");
    free(c);
    c = seal_text(p.a.s, "bob to alice", &n);
    opens_as(p.d.s, c, n, "bob to alice");
    free(c);
    pair_free(&p);
}

/* The two directions have different keys: what alice sealed does not open
 * on alice's own receiving stream (a frame reflected back to its sender). */
static void directions_differ(void) {
    pair p;
    handshake(&p);
    size_t n;
    unsigned char *c = seal_text(p.d.s, "reflected", &n);
    ASSERT_EQ(open_fails(p.d.s, c, n), UV_EPROTO);
    free(c);
    pair_free(&p);
}

/* Many payloads both ways, interleaved, empty and large ones included. */
static void round_trip(void) {
    pair p;
    handshake(&p);
    static const char *const texts[] = {"one", "", "three", "a longer message with spaces", "x"};
    for (int round = 0; round < 20; round++) {
        const char *t = texts[round % 5];
        size_t n;
        unsigned char *c = seal_text(round % 2 ? p.a.s : p.d.s, t, &n);
        opens_as(round % 2 ? p.d.s : p.a.s, c, n, t);
        free(c);
    }
    size_t big = 65536;
    unsigned char *m = malloc(big), *c = malloc(big + SEAL_ABYTES), *out = malloc(big);
    ASSERT(m && c && out);
    randombytes_buf(m, big);
    ASSERT_EQ(seal_encrypt(p.a.s, m, big, c), 0);
    size_t outn = 0;
    ASSERT_EQ(seal_decrypt(p.d.s, c, big + SEAL_ABYTES, out, &outn), 0);
    ASSERT_EQ(outn, big);
    ASSERT(memcmp(m, out, big) == 0);
    free(m);
    free(c);
    free(out);
    pair_free(&p);
}

/* Every single flipped bit of a sealed payload makes it fail to open, and
 * the stream is dead after: the same payload unaltered fails too, and so
 * does the next one. */
static void flipped_bit_fails(void) {
    size_t len = strlen("hello") + SEAL_ABYTES;
    int tried = 0;
    for (size_t byte = 0; byte < len; byte++) {
        for (int bit = 0; bit < 8; bit += 3) {
            pair p;
            handshake(&p);
            size_t n, n2;
            unsigned char *c = seal_text(p.d.s, "hello", &n);
            unsigned char *next = seal_text(p.d.s, "next", &n2);
            ASSERT_EQ(n, len);
            c[byte] ^= (unsigned char)(1u << bit);
            ASSERT_EQ(open_fails(p.a.s, c, n), UV_EPROTO);
            c[byte] ^= (unsigned char)(1u << bit);
            ASSERT_EQ(open_fails(p.a.s, c, n), UV_EPROTO);
            ASSERT_EQ(open_fails(p.a.s, next, n2), UV_EPROTO);
            free(c);
            free(next);
            pair_free(&p);
            tried++;
        }
    }
    ASSERT_EQ(tried, (int)len * 3);
}

/* A payload that opened once does not open again. */
static void replayed_frame_fails(void) {
    pair p;
    handshake(&p);
    size_t n, n2;
    unsigned char *c = seal_text(p.d.s, "pay bob 10", &n);
    unsigned char *c2 = seal_text(p.d.s, "after", &n2);
    opens_as(p.a.s, c, n, "pay bob 10");
    ASSERT_EQ(open_fails(p.a.s, c, n), UV_EPROTO);
    ASSERT_EQ(open_fails(p.a.s, c2, n2), UV_EPROTO); /* dead from then on */
    free(c);
    free(c2);
    pair_free(&p);
}

/* The second payload does not open before the first, nor the first after
 * that failure. */
static void reordered_frame_fails(void) {
    pair p;
    handshake(&p);
    size_t n1, n2;
    unsigned char *c1 = seal_text(p.d.s, "first", &n1);
    unsigned char *c2 = seal_text(p.d.s, "second", &n2);
    ASSERT_EQ(open_fails(p.a.s, c2, n2), UV_EPROTO);
    ASSERT_EQ(open_fails(p.a.s, c1, n1), UV_EPROTO);
    free(c1);
    free(c2);
    pair_free(&p);
}

/* A payload cut short (by one byte, to less than the tag, to nothing)
 * does not open, and kills the stream. */
static void truncated_frame_fails(void) {
    static const size_t cut[] = {1, 5, 6, 5 + SEAL_ABYTES};
    for (size_t i = 0; i < sizeof cut / sizeof *cut; i++) {
        pair p;
        handshake(&p);
        size_t n;
        unsigned char *c = seal_text(p.d.s, "hello", &n);
        ASSERT_EQ(open_fails(p.a.s, c, n - cut[i]), UV_EPROTO);
        ASSERT_EQ(open_fails(p.a.s, c, n), UV_EPROTO); /* the stream is dead */
        free(c);
        pair_free(&p);
    }
    /* The same payload whole opens: the cut was the only fault. */
    pair p;
    handshake(&p);
    size_t n;
    unsigned char *c = seal_text(p.d.s, "hello", &n);
    opens_as(p.a.s, c, n, "hello");
    free(c);
    pair_free(&p);
}

/* An auth verifies only for the signer's role, from the signer's key, over
 * the same transcript and with the header it signed; a refused auth
 * changes nothing (the right one is still accepted after it). */
static void signature_needs_role_key_transcript(void) {
    pair p;
    derive_both(&p);
    const unsigned char *dh = seal_header(p.d.s), *ah = seal_header(p.a.s);
    /* bob's auth taken as a dialer's (the role byte differs). */
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 1, p.asig, ah), UV_EPERM);
    /* alice's own auth reflected back to her as the acceptor's, even with
     * her own key (her signature says 'D'). */
    ASSERT_EQ(seal_accept(p.d.s, p.d.id.pk, 0, p.dsig, dh), UV_EPERM);
    /* bob's signature checked against another key. */
    identity other;
    crypto_sign_keypair(other.pk, other.sk);
    ASSERT_EQ(seal_accept(p.d.s, other.pk, 0, p.asig, ah), UV_EPERM);
    /* The right signature with another header (it signs the header). */
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 0, p.asig, dh), UV_EPERM);
    /* The right key and role, but signed over another transcript: bob heard
     * a different nonce from alice (a tampered hello). */
    side alice_seen = p.d;
    alice_seen.nonce[0] ^= 1;
    unsigned char sig2[IDENT_SIG];
    seal *bob2 = resign(&p, &alice_seen, sig2);
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 0, sig2, seal_header(bob2)), UV_EPERM);
    /* Only the right one, and only once. */
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 0, p.asig, ah), 0);
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 0, p.asig, ah), UV_EPERM);
    seal_free(bob2);
    pair_free(&p);
}

/* The names are in the transcript: bob deriving with another spelling of
 * alice's name signs something alice refuses.  The same resigning with
 * nothing changed is accepted, so the name was the only difference. */
static void transcript_covers_names(void) {
    pair p;
    derive_both(&p);
    side alice_seen = p.d;
    alice_seen.name = "alicE";
    unsigned char sig[IDENT_SIG];
    seal *s = resign(&p, &alice_seen, sig);
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 0, sig, seal_header(s)), UV_EPERM);
    seal_free(s);
    s = resign(&p, &p.d, sig);
    ASSERT_EQ(seal_accept(p.d.s, p.a.id.pk, 0, sig, seal_header(s)), 0);
    seal_free(s);
    pair_free(&p);
}

/* Calls out of order are refused: sealing before derive, opening before
 * accept, deriving twice, accepting before deriving; an ephemeral key that
 * is a low-order point fails the derive, and that seal never seals. */
static void out_of_order_calls(void) {
    ASSERT(sodium_init() >= 0);
    seal *s = seal_new();
    ASSERT(s != NULL);
    unsigned char c[8 + SEAL_ABYTES], out[8], sig[IDENT_SIG] = {0}, hdr[SEAL_HEADER] = {0};
    unsigned char key[IDENT_PK] = {0};
    size_t outn = 0;
    ASSERT_EQ(seal_encrypt(s, (const unsigned char *)"12345678", 8, c), UV_EINVAL);
    ASSERT_EQ(seal_accept(s, key, 0, sig, hdr), UV_EPERM);
    memset(c, 0, sizeof c);
    ASSERT_EQ(seal_decrypt(s, c, sizeof c, out, &outn), UV_EINVAL);
    seal_free(s);
    seal_free(NULL);

    pair p;
    derive_both(&p);
    seal_party d = party(&p.d), a = party(&p.a);
    ASSERT_EQ(seal_derive(p.d.s, 1, &d, &a), UV_EINVAL); /* twice */
    ASSERT_EQ(seal_decrypt(p.a.s, c, sizeof c, out, &outn), UV_EINVAL); /* not accepted */
    pair_free(&p);

    side x, y;
    side_init(&x, "alice");
    side_init(&y, "bob");
    unsigned char zero[SEAL_EKEY] = {0};
    seal_party dx = party(&x), ay = party(&y);
    ay.ekey = zero;
    ASSERT_EQ(seal_derive(x.s, 1, &dx, &ay), UV_EPROTO);
    ASSERT_EQ(seal_encrypt(x.s, (const unsigned char *)"12345678", 8, c), UV_EINVAL);
    seal_free(x.s);
    seal_free(y.s);
}

TEST_MAIN(T(sizes), T(handshake_derives_matching_keys), T(directions_differ), T(round_trip),
          T(flipped_bit_fails), T(replayed_frame_fails), T(reordered_frame_fails),
          T(truncated_frame_fails), T(signature_needs_role_key_transcript),
          T(transcript_covers_names), T(out_of_order_calls))
