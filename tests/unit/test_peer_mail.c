/* test_peer_mail: the mailbox's sealed letters (peer/mail.c) with no
 * tracker in between: a letter opens only for its recipient, says who
 * wrote it, and every forgery the recipient must refuse (altered, sealed
 * to someone else, signed by another key, re-sealed by its first
 * recipient to a third party) is refused with a reason. */
#include "mail.h"
#include "msg.h"
#include "test.h"

#include <sodium.h>
#include <uv.h>

typedef struct user {
    identity id;
    const char *name;
} user;

static void user_init(user *u, const char *name) {
    ASSERT(sodium_init() >= 0);
    crypto_sign_keypair(u->id.pk, u->id.sk);
    u->name = name;
}

static void seal_one(const user *from, const user *to, const char *text, unsigned char **box,
                     size_t *n) {
    ASSERT_EQ(mail_seal(&from->id, from->name, to->name, to->id.pk, 42, 1700000000123LL, text,
                        strlen(text), box, n),
              0);
}

static void round_trip(void) {
    user a, b;
    user_init(&a, "alice");
    user_init(&b, "bob");
    unsigned char *box;
    size_t n;
    seal_one(&a, &b, "hello bob", &box, &n);
    ASSERT(memmem(box, n, "hello bob", 9) == NULL); /* ciphertext only */
    ASSERT(memmem(box, n, "alice", 5) == NULL);     /* not even the sender's name */
    unsigned char *work = malloc(n);
    mail_letter L;
    const char *why = NULL;
    ASSERT_EQ(mail_open(&b.id, "bob", box, n, work, &L, &why), 0);
    ASSERT(why == NULL); /* callers read a reason as a refusal */
    ASSERT_STR(L.from, "alice");
    ASSERT(memcmp(L.fkey, a.id.pk, IDENT_PK) == 0);
    ASSERT_EQ(L.id, 42);
    ASSERT_EQ(L.ts, 1700000000123LL);
    ASSERT_EQ(L.len, 9);
    ASSERT(memcmp(L.text, "hello bob", 9) == 0);
    free(work);
    free(box);
}

static void text_with_nul_and_the_limit(void) {
    user a, b;
    user_init(&a, "alice");
    user_init(&b, "bob");
    char text[4000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)(i % 7 == 0 ? 0 : 'a' + i % 26);
    unsigned char *box;
    size_t n;
    ASSERT_EQ(mail_seal(&a.id, "alice", "bob", b.id.pk, 7, 1, text, sizeof text, &box, &n), 0);
    ASSERT(n <= MAIL_BOX_MAX);
    unsigned char *work = malloc(n);
    mail_letter L;
    const char *why;
    ASSERT_EQ(mail_open(&b.id, "bob", box, n, work, &L, &why), 0);
    ASSERT_EQ(L.len, sizeof text);
    ASSERT(memcmp(L.text, text, sizeof text) == 0);
    free(work);
    free(box);
    /* A text that cannot fit a box is refused at sealing. */
    char *big = calloc(1, MAIL_BOX_MAX);
    ASSERT_EQ(mail_seal(&a.id, "alice", "bob", b.id.pk, 8, 1, big, MAIL_BOX_MAX, &box, &n),
              UV_E2BIG);
    free(big);
}

static void altered_box_refused(void) {
    user a, b;
    user_init(&a, "alice");
    user_init(&b, "bob");
    unsigned char *box;
    size_t n;
    seal_one(&a, &b, "pay 10", &box, &n);
    unsigned char *work = malloc(n);
    mail_letter L;
    const char *why = NULL;
    for (size_t i = 0; i < n; i += 13) {
        box[i] ^= 1;
        ASSERT_EQ(mail_open(&b.id, "bob", box, n, work, &L, &why), UV_EPERM);
        ASSERT(why != NULL);
        box[i] ^= 1;
    }
    ASSERT_EQ(mail_open(&b.id, "bob", box, n - 1, work, &L, &why), UV_EPERM);
    ASSERT_EQ(mail_open(&b.id, "bob", box, 10, work, &L, &why), UV_EPERM);
    free(work);
    free(box);
}

static void sealed_to_someone_else_refused(void) {
    user a, b, c;
    user_init(&a, "alice");
    user_init(&b, "bob");
    user_init(&c, "carol");
    unsigned char *box;
    size_t n;
    seal_one(&a, &b, "for bob only", &box, &n);
    unsigned char *work = malloc(n);
    mail_letter L;
    const char *why = NULL;
    ASSERT_EQ(mail_open(&c.id, "carol", box, n, work, &L, &why), UV_EPERM);
    ASSERT(strstr(why, "not sealed to your key") != NULL);
    free(work);
    free(box);
}

/* Builds sig || letter by hand so a test can sign what it likes. */
static void forge(const identity *signer, const char *from, const unsigned char fkey[IDENT_PK],
                  const char *to, const unsigned char tkey[IDENT_PK],
                  const unsigned char seal_to[IDENT_PK], unsigned char **box, size_t *boxn) {
    msg_out m;
    msg_out_init(&m, "mail", 8);
    msg_put_uint(&m, "v", 1);
    msg_put_str(&m, "from", from);
    msg_put_bin(&m, "fkey", fkey, IDENT_PK);
    msg_put_str(&m, "to", to);
    msg_put_bin(&m, "tkey", tkey, IDENT_PK);
    msg_put_uint(&m, "id", 5);
    msg_put_int(&m, "ts", 5);
    msg_put_str(&m, "text", "forged");
    unsigned char *letter;
    size_t n;
    ASSERT_EQ(msg_out_payload(&m, MAIL_BOX_MAX, &letter, &n), 0);
    unsigned char *plain = malloc(IDENT_SIG + n), *msg = malloc(15 + n);
    memcpy(msg, "parley-mail-v1", 15); /* with its NUL */
    memcpy(msg + 15, letter, n);
    crypto_sign_detached(plain, NULL, msg, 15 + n, signer->sk);
    free(msg);
    memcpy(plain + IDENT_SIG, letter, n);
    msg_out_discard(&m);
    unsigned char xpk[crypto_box_PUBLICKEYBYTES];
    ASSERT_EQ(crypto_sign_ed25519_pk_to_curve25519(xpk, seal_to), 0);
    *boxn = IDENT_SIG + n + crypto_box_SEALBYTES;
    *box = malloc(*boxn);
    ASSERT_EQ(crypto_box_seal(*box, plain, IDENT_SIG + n, xpk), 0);
    free(plain);
}

static void expect_refused(const user *to, unsigned char *box, size_t n, const char *reason) {
    unsigned char *work = malloc(n);
    mail_letter L;
    const char *why = NULL;
    ASSERT_EQ(mail_open(&to->id, to->name, box, n, work, &L, &why), UV_EPERM);
    if (!strstr(why, reason)) {
        fprintf(stderr, "refused for \"%s\", expected \"%s\"\n", why, reason);
        ASSERT(0);
    }
    free(work);
    free(box);
}

static void forgeries_refused(void) {
    user a, b, c, mallory;
    user_init(&a, "alice");
    user_init(&b, "bob");
    user_init(&c, "carol");
    user_init(&mallory, "mallory");
    unsigned char *box;
    size_t n;
    /* The baseline forge() builds is a good letter. */
    forge(&a.id, "alice", a.id.pk, "bob", b.id.pk, b.id.pk, &box, &n);
    unsigned char *work = malloc(n);
    mail_letter L;
    const char *why;
    ASSERT_EQ(mail_open(&b.id, "bob", box, n, work, &L, &why), 0);
    free(work);
    free(box);
    /* Claims alice's key but mallory signed it. */
    forge(&mallory.id, "alice", a.id.pk, "bob", b.id.pk, b.id.pk, &box, &n);
    expect_refused(&b, box, n, "signature does not verify");
    /* Bob re-seals alice's letter to carol, as if alice wrote to her. */
    forge(&a.id, "alice", a.id.pk, "bob", b.id.pk, c.id.pk, &box, &n);
    expect_refused(&c, box, n, "written to someone else");
    /* Right key, wrong name. */
    forge(&a.id, "alice", a.id.pk, "carol", b.id.pk, b.id.pk, &box, &n);
    expect_refused(&b, box, n, "written to someone else");
}

TEST_MAIN(T(round_trip), T(text_with_nul_and_the_limit), T(altered_box_refused),
          T(sealed_to_someone_else_refused), T(forgeries_refused))
