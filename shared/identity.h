/* identity: a peer's Ed25519 key pair, kept in its home directory, and the
 * signatures that prove it to the tracker (registering a name, joining a
 * relay).  Chat links sign their own transcript (peer/link.c, peer/seal.c).
 * docs/PROTOCOL.md gives the signed bytes. */
#ifndef PARLEY_IDENTITY_H
#define PARLEY_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define IDENT_PK 32
#define IDENT_SK 64
#define IDENT_SIG 64
#define IDENT_NONCE 32

typedef struct identity {
    unsigned char pk[IDENT_PK];
    unsigned char sk[IDENT_SK];
} identity;

/* Loads DIR/identity.key, creating DIR (0700) and a new key (0600) on first
 * run.  A key file that others can read is refused.  0 or a negative error,
 * with a message for the user in err. */
int ident_load(const char *dir, identity *id, char *err, size_t errlen);

/* Expands a leading "~/" with $HOME into out.  0 or UV_EINVAL. */
int ident_expand_home(const char *path, char *out, size_t outlen);

void ident_sign_register(const identity *id, const unsigned char nonce[IDENT_NONCE],
                         const char *name, size_t namelen, unsigned char sig[IDENT_SIG]);
/* 0 when sig is valid, UV_EPERM otherwise. */
int ident_verify_register(const unsigned char pk[IDENT_PK], const unsigned char nonce[IDENT_NONCE],
                          const char *name, size_t namelen, const unsigned char sig[IDENT_SIG]);

/* Relay sessions: the joiner signs "parley-relay-v1" 0 nonce session name
 * (the relay connection's welcome nonce, the 16-byte session token). */
#define IDENT_SESSION 16
void ident_sign_relay(const identity *id, const unsigned char nonce[IDENT_NONCE],
                      const unsigned char session[IDENT_SESSION], const char *name, size_t namelen,
                      unsigned char sig[IDENT_SIG]);
int ident_verify_relay(const unsigned char pk[IDENT_PK], const unsigned char nonce[IDENT_NONCE],
                       const unsigned char session[IDENT_SESSION], const char *name,
                       size_t namelen, const unsigned char sig[IDENT_SIG]);

/* Short printable fingerprint of a public key ("ab12-cd34-..."), 30 bytes. */
void ident_fingerprint(const unsigned char pk[IDENT_PK], char out[32]);

#endif
