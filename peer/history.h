/* history: the peer's durable memory of its conversations, one SQLite file
 * HOME/history.db (0600; a file other users can read is refused).  Every
 * message we send is stored before it goes out and every message we receive
 * before it is acknowledged or shown, so after a crash or a restart the
 * peer still has what it showed, can resend what was never delivered (the
 * outbox), and drops a message it already took (exactly once: received
 * messages are unique by sender key and message id, across runs).
 *
 * Writes are grouped (shared/db.h, DB_SYNC_BEHIND): each lands in the loop
 * pass's transaction, committed once at the end of the pass (a few passes
 * more while input is ready), and only then do the pass's callbacks fire:
 * the commit is in the kernel, so a SIGKILL at any instant loses nothing a
 * callback confirmed, and the sync thread fsyncs it within a few ms (what
 * a power loss can take back).  Reads share the connection and see the
 * pass's own writes before they are committed.
 *
 * Every function returns 0 or a negative libuv error unless it says
 * otherwise.  A leaf module: it knows nothing of links or conversations;
 * chat.c decides what to store and when. */
#ifndef PARLEY_HISTORY_H
#define PARLEY_HISTORY_H

#include "identity.h"
#include "log.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct history history;

/* A message's state, as stored (the values are in the file: never renumber).
 * A sent message moves forward only: QUEUED -> STORED -> DELIVERED, and
 * from QUEUED or STORED to EXPIRED; a late DELIVERED still wins over
 * EXPIRED.  QUEUED and STORED are the outbox. */
enum hist_state {
    HIST_QUEUED = 0,    /* sent by us, not acknowledged yet */
    HIST_STORED = 1,    /* handed to the tracker's mailbox, not delivered yet */
    HIST_DELIVERED = 2, /* the other side acknowledged it */
    HIST_EXPIRED = 3,   /* the mailbox gave up on it; the user was told; not resent */
    HIST_RECEIVED = 4,  /* a message the other side sent us */
};

/* One stored message, handed to a hist_row_cb.  Every pointer is valid only
 * during the callback; copy what you keep. */
typedef struct hist_row {
    const char *peer;                /* the other side's folded name */
    const char *name;                /* its spelling */
    int out;                         /* 1 sent by us, 0 received */
    uint64_t msg_id;                 /* the sender's message id */
    uint64_t seq;                    /* sent: the conversation's "#N"; received: 0 */
    int64_t ts;                      /* the sender's clock, unix ms */
    int64_t at;                      /* when this peer stored it, unix ms */
    int state;                       /* enum hist_state */
    const char *text;                /* len bytes, may hold NUL bytes, not NUL-terminated */
    size_t len;
    const unsigned char *sender_key; /* received: IDENT_PK bytes; sent: NULL */
} hist_row;

/* Fires from the loop at the end of the pass that held the write, after its
 * batch committed (never from inside the call that made the write): status
 * 0, or a negative error when the commit failed (the write is lost, dup is
 * then 0).  dup is 1 for a received message that was stored already. */
typedef void (*hist_done_cb)(int status, int dup, void *arg);

/* One row of a read: return nonzero to stop there (the read still returns
 * 0).  It must not call back into the history. */
typedef int (*hist_row_cb)(const hist_row *row, void *arg);

/* Opens or creates HOME/history.db (created 0600, WAL, the sync thread)
 * and brings its schema up to date.  lg must outlive the history.  0 with
 * *out set, or a negative error with a message for the user in err that
 * says what to do: UV_EACCES for a file other users can read (the message
 * names the chmod 600 that fixes it), UV_EINVAL for a file from a newer
 * parley, another error for a file that cannot be opened or is not SQLite. */
int hist_open(uv_loop_t *loop, const char *home, const logger *lg, history **out, char *err,
              size_t errlen);

/* Commits what is pending and fires its callbacks (from inside this call),
 * then closes the file.  The memory of the loop handles is freed once the
 * loop has run their close callbacks.  NULL is a no-op. */
void hist_close(history *h);

/* Stores a message we send to peer_fold (its spelling peer_name), with our
 * id msg_id, the conversation's number seq and our clock ts (unix ms), in
 * state HIST_QUEUED.  text is len bytes (copied; NUL bytes allowed).  0 and
 * cb(status, 0, arg) fires after the commit (cb may be NULL); UV_EEXIST when
 * we already sent a message with this msg_id, UV_EINVAL for an empty peer
 * or a NULL text with len > 0, another negative error on a database failure:
 * no callback then. */
int hist_add_out(history *h, const char *peer_fold, const char *peer_name, uint64_t msg_id,
                 uint64_t seq, int64_t ts, const char *text, size_t len, hist_done_cb cb,
                 void *arg);

/* Stores a message peer_fold (spelled peer_name) sent us, signed by key,
 * with its id msg_id and clock ts, unless a message with the same key and
 * msg_id is stored already (in this run or any earlier one; the same id
 * from another key is another message).  0 and cb(status, dup, arg) fires
 * after the commit, dup 1 when the message was stored already: acknowledge
 * in cb once status is 0, and show the message only when dup is 0.
 * UV_EINVAL, or another negative error as for hist_add_out: no callback. */
int hist_add_in(history *h, const char *peer_fold, const char *peer_name,
                const unsigned char key[IDENT_PK], uint64_t msg_id, int64_t ts, const char *text,
                size_t len, hist_done_cb cb, void *arg);

/* Moves our sent message msg_id to state (HIST_STORED, HIST_DELIVERED or
 * HIST_EXPIRED), with no callback: a state is a hint worth no commit of its
 * own (db_begin_hint): it is committed with the next message written, or
 * DB_LAZY_MS later.  0 when it moved; UV_EALREADY when it is in
 * that state or past it (nothing changes: a late "stored" never brings a
 * delivered message back into the outbox); UV_ENOENT when we sent no such
 * message; UV_EINVAL for another state; another negative error. */
int hist_set_state(history *h, uint64_t msg_id, int state);

/* The last n messages with peer_fold, sent and received, oldest first. */
int hist_last(history *h, const char *peer_fold, size_t n, hist_row_cb cb, void *arg);

/* Every message we sent that is still HIST_QUEUED or HIST_STORED, in the
 * order we sent them, all conversations together: what to send again after
 * a restart. */
int hist_outbox(history *h, hist_row_cb cb, void *arg);

/* One row per conversation, the latest message in it (so its name is the
 * latest spelling and at the time of the last message), the most recent
 * conversation first: for the conversation list. */
int hist_conversations(history *h, hist_row_cb cb, void *arg);

/* The largest seq we sent to peer_fold (0 when none), so numbering goes on
 * after a restart. */
int hist_max_seq(history *h, const char *peer_fold, uint64_t *seq);

/* The largest msg_id we ever sent, in any conversation (0 when none), so a
 * restarted peer's new ids never repeat an old one. */
int hist_max_id(history *h, uint64_t *id);

/* cb(arg, ns) fires after each batch's COMMIT with how long it took (for
 * tests and metrics).  NULL unsets it. */
void hist_on_commit(history *h, void (*cb)(void *arg, uint64_t ns), void *arg);

/* cb(arg, status) fires at the end of every pass that used the history,
 * after the callbacks of its batch and before the loop writes what they
 * queued on sockets (the prepare phase).  The peer writes what those
 * callbacks showed here, so a batch's messages are out (one write) before
 * any of their acks leave.  NULL unsets it. */
void hist_on_batch_end(history *h, void (*cb)(void *arg, int status), void *arg);

#endif
