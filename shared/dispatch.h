/* dispatch: the one message dispatcher of parley.  Every stream of
 * messages (the tracker's control connections, the peer's tracker
 * connection, its chat links and its relay joins) is read through a table
 * that maps a message type to the states in which it is legal and to its
 * handler, as Redis's command table maps a command to its arity and
 * flags.  The checks every receiver needs -- one msgpack map with a string
 * t, a known type, a legal state, sealed or not -- happen here once; a
 * frame that fails one goes to the owner's refuse function with the error
 * code the protocol gives it (docs/PROTOCOL.md, "Errors") and a sentence
 * for the other side. */
#ifndef PARLEY_DISPATCH_H
#define PARLEY_DISPATCH_H

#include "msg.h"

#include <stddef.h>

/* The bit of state s (an owner's enum value, below 32) in disp_entry.states. */
#define DISP_IN(s) (1u << (s))

/* disp_entry.flags and disp_frame's flags: the message came out of a sealed
 * chat frame (an entry with it is legal only there, one without it only
 * outside). */
#define DISP_SEALED 1u

typedef void (*disp_fn)(void *owner, const msg_in *m);

typedef struct disp_entry {
    const char *type;
    unsigned states; /* DISP_IN bits of the states where the type is legal */
    unsigned flags;  /* DISP_SEALED or 0 */
    disp_fn fn;
} disp_entry;

typedef enum disp_why {
    DISP_BAD_FRAME,    /* not one msgpack map with a string t: "bad_frame" */
    DISP_NO_MEMORY,    /* out of memory decoding it: "internal" */
    DISP_UNKNOWN_TYPE, /* no entry for t: "unknown_type" */
    DISP_WRONG_STATE,  /* not legal in the owner's state: "bad_message" */
    DISP_WRONG_SEAL,   /* sealed where it must not be, or the reverse: "bad_message" */
} disp_why;

/* What a refuse function is told.  Strings are valid during the call. */
typedef struct disp_refusal {
    disp_why why;
    const char *code;    /* the protocol's error code for why */
    const char *text;    /* a sentence for the other side; the type is made printable */
    const msg_in *m;     /* the decoded message; NULL for DISP_BAD_FRAME and DISP_NO_MEMORY */
    unsigned state;      /* the owner's state as given to disp_frame */
    unsigned flags;      /* as given to disp_frame */
} disp_refusal;

typedef struct disp_table {
    const disp_entry *entries;
    size_t n;
    /* Completes "unexpected TYPE ..." in DISP_WRONG_STATE texts, for
     * example "at this point of the chat link". */
    const char *where;
    /* Optional: sees every decoded frame before its type is looked up (a
     * rate limit, a liveness timer).  Nonzero: it dealt with the frame
     * (refused or dropped it) and dispatching stops. */
    int (*admit)(void *owner, const msg_in *m);
    /* Required: a frame was refused.  It usually fails the connection with
     * r->code and r->text; it may pick its own words from r->why and
     * r->state. */
    void (*refuse)(void *owner, const disp_refusal *r);
} disp_table;

#define DISP_TABLE(entries, where, admit, refuse) \
    { (entries), sizeof(entries) / sizeof(*(entries)), (where), (admit), (refuse) }

/* Decodes payload (borrowed for the call) and hands it to the handler of
 * its type, or to t->refuse.  state: the owner's current state; flags:
 * DISP_SEALED when payload was opened from a sealed frame, else 0.  The
 * handler, admit and refuse run inside this call and may close the
 * owner's connection; nothing of owner is touched after they return.
 * Returns 0 when a handler ran or admit took the frame, else the
 * disp_why + 1 of the refusal (already reported through refuse). */
int disp_frame(const disp_table *t, void *owner, unsigned state, unsigned flags,
               const char *payload, size_t len);

/* The entry for type, or NULL. */
const disp_entry *disp_find(const disp_table *t, const char *type);

#endif
