/* mail: the sealed letters of the offline mailbox (PROTOCOL.md, "Sealed
 * mail").  A message for a user who cannot be reached now is signed with
 * the sender's Ed25519 identity and sealed (crypto_box_seal) to the
 * recipient's identity key converted to X25519, so the tracker that keeps
 * it sees only ciphertext, only the recipient can open it, and the
 * recipient can check who wrote it.  Pure functions: no socket, no loop. */
#ifndef PARLEY_MAIL_H
#define PARLEY_MAIL_H

#include "identity.h"
#include "name.h"

#include <stddef.h>
#include <stdint.h>

#define MAIL_BOX_MAX 8192 /* the tracker takes boxes of 1 to 8192 bytes */

/* A letter as the recipient opened it.  text points into the caller's
 * work buffer given to mail_open. */
typedef struct mail_letter {
    char from[NAME_BUFLEN];          /* the sender's name, as it signed it */
    unsigned char fkey[IDENT_PK];    /* the key that signed it */
    uint64_t id;                     /* the sender's message id */
    int64_t ts;                      /* the sender's clock, unix ms */
    const char *text;
    size_t len;
} mail_letter;

/* Seals one message from me (named from) to the user whose folded name is
 * to_fold and whose identity key is to_key.  The box goes to *box (malloc'd,
 * the caller frees) of *boxlen bytes.  0, UV_EINVAL (to_key is not a
 * usable key), UV_E2BIG (the box would exceed MAIL_BOX_MAX) or UV_ENOMEM. */
int mail_seal(const identity *me, const char *from, const char *to_fold,
              const unsigned char to_key[IDENT_PK], uint64_t id, int64_t ts, const char *text,
              size_t len, unsigned char **box, size_t *boxlen);

/* Opens box with my identity (me, my folded name my_fold).  work must hold
 * boxlen bytes and outlive the use of out->text.  0 with *out filled and
 * *why NULL; or
 * UV_EPERM with *why set: not sealed to me, a signature that does not
 * verify, a letter addressed to someone else, or one that does not parse.
 * The caller still checks that out->fkey is the key it expects of
 * out->from. */
int mail_open(const identity *me, const char *my_fold, const unsigned char *box, size_t boxlen,
              unsigned char *work, mail_letter *out, const char **why);

#endif
