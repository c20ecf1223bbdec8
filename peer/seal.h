/* seal: the session crypto of one chat link (PROTOCOL.md, "Chat link").
 * Each link makes a fresh X25519 key pair; once both hellos are known the
 * two sides derive one key per direction from the X25519 exchange mixed
 * with the hash of the whole handshake transcript, sign that hash with
 * their Ed25519 identity (binding the ephemeral keys to the identities),
 * and from then on every frame is sealed with XChaCha20-Poly1305 in a
 * crypto_secretstream per direction, which also catches replayed,
 * reordered and dropped frames.  The ephemeral secret and the raw shared
 * keys are erased as soon as the stream states exist: a stolen identity
 * key cannot open an earlier session (forward secrecy).
 *
 * The link (link.c) drives it; the fuzz harness uses it to play the other
 * side.  A seal touches no socket and no loop. */
#ifndef PARLEY_SEAL_H
#define PARLEY_SEAL_H

#include "identity.h"

#include <stddef.h>

#define SEAL_EKEY 32   /* X25519 public key in hello */
#define SEAL_HEADER 24 /* secretstream header in auth */
#define SEAL_ABYTES 17 /* added to every sealed payload */
#define SEAL_HASH 32   /* transcript hash */

typedef struct seal seal;

/* One side's hello, as sent on the wire (borrowed for the call). */
typedef struct seal_party {
    const char *name;
    size_t namelen;
    const unsigned char *key;   /* Ed25519, IDENT_PK */
    const unsigned char *nonce; /* IDENT_NONCE */
    const unsigned char *ekey;  /* X25519, SEAL_EKEY */
} seal_party;

/* A fresh ephemeral key pair.  NULL when out of memory.  Free with
 * seal_free (NULL is a no-op), which erases every secret. */
seal *seal_new(void);
void seal_free(seal *s);

/* Our ephemeral public key, for hello. */
const unsigned char *seal_ekey(const seal *s);

/* Both hellos are in: hashes the transcript, runs the X25519 exchange (the
 * dialer is the crypto_kx client), derives both directions' keys, starts
 * our sending stream and erases the ephemeral secret.  0, or UV_EPROTO
 * when their ephemeral key is unusable (a low-order point), or UV_EINVAL
 * when called twice. */
int seal_derive(seal *s, int dialer, const seal_party *d, const seal_party *a);

/* After seal_derive: our auth, sig over "parley-chat-v2" 0 ROLE th header
 * (ROLE 'D' or 'A', the signer's role), and the header of our stream. */
void seal_sign(const seal *s, const identity *id, int dialer, unsigned char sig[IDENT_SIG]);
const unsigned char *seal_header(const seal *s);

/* Their auth: checks sig by their key for the other role, then starts the
 * receiving stream with their header.  0, or UV_EPERM (nothing changes).
 * their_dialer must be the opposite of our own role: the role byte in the
 * signed bytes is what stops our own auth, reflected back, from passing. */
int seal_accept(seal *s, const unsigned char their_key[IDENT_PK], int their_dialer,
                const unsigned char sig[IDENT_SIG], const unsigned char header[SEAL_HEADER]);

/* Seals n bytes into out (n + SEAL_ABYTES bytes).  0, or UV_EINVAL before
 * seal_derive and once a failed seal_decrypt killed the session (a link
 * that was tampered with sends nothing more). */
int seal_encrypt(seal *s, const unsigned char *in, size_t n, unsigned char *out);

/* Opens one sealed payload into out (n - SEAL_ABYTES bytes, *outn set).
 * 0, or UV_EPROTO when it does not authenticate (altered, replayed,
 * reordered, or not the next one): the stream is then dead and every later
 * call fails too.  UV_EINVAL before seal_accept. */
int seal_decrypt(seal *s, const unsigned char *in, size_t n, unsigned char *out, size_t *outn);

#endif
