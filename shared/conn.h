/* conn: one framed TCP connection on the loop, used by the tracker for its
 * clients and by the peer for its tracker and chat links.  It owns the
 * socket, the reassembly buffer, the write accounting and one timer; its
 * owner gets whole frames and one close notification.
 *
 * Ownership: conn_new allocates; the conn frees itself after its close
 * callback returns.  The owner must not touch it after that callback. */
#ifndef PARLEY_CONN_H
#define PARLEY_CONN_H

#include "log.h"
#include "msg.h"

#include <stddef.h>
#include <uv.h>

typedef struct conn conn;

/* A complete frame.  payload is valid only during the call.  The callback
 * may send, close or fail the connection; after a close no further frames
 * are delivered. */
typedef void (*conn_frame_cb)(conn *c, const char *payload, size_t len);

/* Fires once, from the loop, after both handles closed.  reason is 0 for a
 * local conn_close(c, 0), UV_EOF when the other side closed, the read or
 * write error, UV_ETIMEDOUT for the timer, UV_E2BIG for an oversize frame,
 * or the reason given to conn_close / conn_fail (UV_EPROTO). */
typedef void (*conn_close_cb)(conn *c, int reason);

/* Raw mode (relay forwarding): every received byte, unparsed.  data is
 * valid only during the call; the callback may send, pause or close. */
typedef void (*conn_raw_cb)(conn *c, const char *data, size_t len);

/* Fires from the loop (a write completion) when the bytes queued for
 * writing fall to the low-water mark given to conn_set_drain. */
typedef void (*conn_drain_cb)(conn *c);

/* NULL on allocation or handle failure. */
conn *conn_new(uv_loop_t *loop, size_t max_frame, const logger *lg, conn_frame_cb on_frame,
               conn_close_cb on_close, void *data);

/* For uv_accept and uv_tcp_connect. */
uv_tcp_t *conn_tcp(conn *c);

/* Starts reading and records the remote address.  0 or a uv error (the
 * caller then closes the conn). */
int conn_start(conn *c);

/* Queues a complete frame (header included); takes buf, which is freed with
 * free() once written.  0, or a uv error (buf is freed anyway).  Sending on a
 * closing conn is a silent no-op returning UV_ECANCELED. */
int conn_send(conn *c, char *buf, size_t len);

/* Sends len bytes from p, which stays the caller's: what the socket takes
 * at once is written straight from p, only the rest is copied and queued
 * (the relay forwards from its read buffer this way).  0 or as conn_send. */
int conn_send_copy(conn *c, const char *p, size_t len);

/* Finishes m and sends it straight from m's buffer; only what the socket
 * does not take at once is copied and queued.  m is released whatever
 * happens.  0, UV_E2BIG/UV_ENOMEM from msg_out_view, or as conn_send. */
int conn_send_msg(conn *c, msg_out *m);

/* Batching on: what conn_send and conn_send_msg are given during one loop
 * pass is gathered and written together just before the loop next waits
 * for I/O (a prepare handle), as one write: an answer and its ack, or a
 * burst of acks, cost one system call and wake the other side once.  The
 * bytes are copied into the batch.  conn_fail writes the batch before its
 * error frame; conn_close drops it, like any pending write.  Off (the
 * default, or on again -> off) writes the batch now and sends at once
 * again.  0, UV_ECANCELED on a closing conn, or a uv error. */
int conn_set_batching(conn *c, int on);

/* Sends an error frame {code, msg, id?}, logs one line, stops reading and
 * closes once the frame is written (or after 2 s if it never is). */
void conn_fail(conn *c, const char *code, const char *text, uint64_t id);

/* Closes now; pending writes are dropped.  Idempotent. */
void conn_close(conn *c, int reason);

/* As conn_close, but with RST instead of FIN (SO_LINGER 0): no TIME_WAIT
 * here, and what the kernel has not sent yet is dropped. */
void conn_abort(conn *c, int reason);

/* Closes the conn with UV_ETIMEDOUT unless the timer is re-armed within ms.
 * ms = 0 stops it.  Call again to re-arm. */
void conn_set_timeout(conn *c, uint64_t ms);

/* on: an idle timeout closes the connection with RST instead of FIN.  The
 * other side is not answering, so a FIN would only be retransmitted for
 * minutes, and the 4-tuple stay taken meanwhile (FIN_WAIT, then
 * TIME_WAIT): a chat link whose port must be dialed from again (a hole
 * punch) wants it back at once. */
void conn_set_abort_idle(conn *c, int on);

/* Stops and resumes reading (back-pressure). */
void conn_pause(conn *c);
void conn_resume(conn *c);

/* Hands the connection to another owner: later frames, the close
 * notification and conn_data go to the new callbacks and data. */
void conn_set_handlers(conn *c, conn_frame_cb on_frame, conn_close_cb on_close, void *data);

/* Switches to raw mode for good: no more frames; every byte received from
 * now on, and every byte already received but not yet handed out as a
 * frame, goes to on_raw unparsed.  Call it before conn_start (a raw-only
 * client), from the frame callback (the buffered bytes follow as soon as
 * that callback returns) or while paused (they follow from conn_resume).
 * The frame size limit no longer applies.  Reads start at 16 KiB and, while
 * each one fills its buffer (a bulk stream), double as long as they stay
 * within read_max (below 32 KiB they stay at 16 KiB): one read is at most
 * that, so a rate limiter above can bound its overshoot with it. */
void conn_set_raw(conn *c, conn_raw_cb on_raw, size_t read_max);

/* Asks for cb whenever a write completion leaves at most low bytes queued
 * (after more were queued).  cb NULL turns it off. */
void conn_set_drain(conn *c, conn_drain_cb cb, size_t low);

int conn_closing(const conn *c);
/* Bytes queued for writing plus each queued write's bookkeeping, so a
 * bound on it bounds the memory a peer that does not read can pin. */
size_t conn_queued(const conn *c);
/* Bytes sent on c so far (every frame handed to a send; the tracker's
 * metrics count what its connections cost). */
uint64_t conn_sent(const conn *c);
void *conn_data(const conn *c);
void conn_set_data(conn *c, void *data);
const char *conn_peer(const conn *c); /* "ip:port" of the remote end, or "?" */
/* The remote end's address as conn_start read it; ss_family 0 when unknown. */
const struct sockaddr_storage *conn_peer_sa(const conn *c);
uv_loop_t *conn_loop(const conn *c);

#endif
