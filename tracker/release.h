/* release: the operator's `parley-tracker --release NAME`, which frees a
 * name whose key was lost.  It runs as a process of its own, beside a
 * tracker that may be serving the same database: one short transaction on
 * the file through SQLite's own locking (WAL, a busy timeout), no schema
 * change, nothing of the running tracker's start-up (marking everyone
 * offline would wipe its list of who is online).  The running tracker
 * sees the commit by PRAGMA data_version (registry.c) and drops what it
 * cached.  So this file speaks SQL of the users, mail and receipts tables,
 * the one place besides registry.c and mailbox.c that does. */
#ifndef PARLEY_RELEASE_H
#define PARLEY_RELEASE_H

#include "name.h"

#include <stddef.h>
#include <stdint.h>

/* What a release deleted. */
typedef struct rel_result {
    char name[NAME_BUFLEN];  /* the name as it was stored */
    int64_t created;         /* when it was first bound, unix seconds */
    uint64_t mail_to;        /* messages waiting for it; each sender gets an "expired" receipt */
    uint64_t mail_from;      /* messages it left for others, waiting */
    uint64_t receipts;       /* receipts waiting for it about its own mail */
} rel_result;

/* Releases name (as the operator typed it; compared folded) in the tracker
 * database at path: deletes its binding, the mail waiting for it (sealed to
 * the lost key, which nobody can open now; each sender gets a receipt
 * "expired" that expires at receipt_expires), the mail it left that still
 * waits and the receipts for it (they would reach whoever registers the
 * name next).  One transaction: all of it or nothing.
 * 0 with *out filled, or with a message for the operator in err:
 * UV_EINVAL (not a valid name), UV_ENOENT (no such name), UV_EBUSY (the
 * name is online: its key is in use), UV_EFTYPE (not a tracker database,
 * or a newer one), another negative error (the file). */
int rel_release(const char *path, const char *name, int64_t receipt_expires, rel_result *out,
                char *err, size_t errlen);

#endif
