/* link: one authenticated, end-to-end encrypted chat link to another peer
 * (PROTOCOL.md, "Chat link") over a shared/conn.h connection.  Both sides
 * send hello with a fresh X25519 key, each signs the handshake transcript
 * with its identity key, and the acceptor checks the dialer's key against
 * the tracker's current record (the key last learned only while the
 * tracker is unreachable); both check known_peers (pins.h).  Once
 * up, msg, ack, bye, ping and pong flow sealed (seal.h); the link reports
 * them to its handler, which is the dial (during happy eyeballs) and then
 * the chat.  A frame that fails to open ends the link with an error event. */
#ifndef PARLEY_LINK_H
#define PARLEY_LINK_H

#include "identity.h"
#include "peer.h"

#include <stdint.h>
#include <sys/socket.h>

/* The chat link's protocol version (the control connection's is
 * PROTO_VERSION, msg.h). */
#define LINK_VERSION 2

typedef struct chatlink chatlink; /* "link" alone is taken by unistd.h */

/* How a link was made, for the connected event (PROTOCOL.md, "Reaching a
 * peer"): we dialed it, the other side did (accepted), either side did at
 * the tracker's request (reverse), both at once (punched), or it runs
 * over a relay. */
enum link_how { LINK_HOW_DIALED, LINK_HOW_ACCEPTED, LINK_HOW_REVERSE, LINK_HOW_PUNCHED,
                LINK_HOW_RELAYED };

/* Each callback fires from the loop; any may be NULL.  closed fires exactly
 * once, whether or not the link ever came up; the link is freed when it
 * returns.  why is non-NULL when the handshake failed on authentication (a
 * key or signature that does not match, or the other side refusing ours).
 * msg, ack and bye come only once the link is up. */
typedef struct link_handler {
    void (*up)(chatlink *l, void *data);
    void (*msg)(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len, void *data);
    void (*ack)(chatlink *l, uint64_t id, void *data);
    void (*bye)(chatlink *l, void *data);
    void (*closed)(chatlink *l, int reason, const char *why, void *data);
} link_handler;

/* Connects to sa and runs the handshake as the dialer, expecting the user
 * name with the key the tracker gave.  0 with *out set (failures after that
 * arrive through closed), or UV_ENOMEM. */
int link_dial(peer_ctx *ctx, const struct sockaddr *sa, const char *name,
              const unsigned char key[IDENT_PK], const link_handler *h, void *data,
              chatlink **out);

/* A hole punch try (punch.h): connects to sa from the chat port only (no
 * ephemeral fallback: closed reports UV_EADDRNOTAVAIL when that 4-tuple is
 * busy).  dialer 1: the dialer's handshake, as link_dial.  dialer 0: the
 * role is the other side's opposite, decided by its hello (a simultaneous
 * open leaves both sides connect()ing); only name may answer.  Same
 * contract as link_dial. */
int link_punch(peer_ctx *ctx, const struct sockaddr *sa, int dialer, const char *name,
               const unsigned char key[IDENT_PK], const link_handler *h, void *data,
               chatlink **out);

/* Accepts one pending connection on server and runs the handshake as the
 * acceptor.  0 with *out set, or a uv error (nothing to clean up then, and
 * no callback). */
int link_accept(peer_ctx *ctx, uv_stream_t *server, const link_handler *h, void *data,
                chatlink **out);

/* Runs the handshake over c, a relay connection after relay_ready (see
 * relay.h): as the dialer (name and key as for link_dial) or, dialer 0, as
 * the acceptor.  Takes c in every case (closed on failure).  0 with *out
 * set (handshake results arrive through the handler), or UV_ENOMEM. */
struct conn;
int link_adopt(peer_ctx *ctx, struct conn *c, int dialer, const char *name,
               const unsigned char key[IDENT_PK], const link_handler *h, void *data,
               chatlink **out);

/* Hands the link to another owner.  h NULL: no further callbacks at all. */
void link_set_handler(chatlink *l, const link_handler *h, void *data);

/* Sending, valid once up.  0 or a uv error (the link is then closing and
 * closed will report it). */
int link_send_msg(chatlink *l, uint64_t id, int64_t ts, const char *text, size_t len);
int link_send_ack(chatlink *l, uint64_t id);

/* Sends bye; the link closes when the other side does, or after 2 s. */
int link_send_bye(chatlink *l);

/* A link another one replaced (a relay after the upgrade to direct): no
 * further callbacks; frames still arriving are read and dropped, nothing
 * is acknowledged; it closes when the other side closes it, or after
 * linger_ms.  Closing at once instead could end it at the other side
 * before that side has the new link, which it would take for a lost
 * link. */
void link_retire(chatlink *l, uint64_t linger_ms);

/* Closes now; closed fires later from the loop.  Idempotent. */
void link_close(chatlink *l);

const char *link_name(const chatlink *l); /* the other side's name ("" before hello) */
const char *link_fold(const chatlink *l); /* its folded form */
const unsigned char *link_key(const chatlink *l); /* its identity key (IDENT_PK), once up */
int link_dialed(const chatlink *l);       /* 1 when we dialed (asked for the relay) */
int link_relayed(const chatlink *l);      /* 1 over a relay session */
enum link_how link_how(const chatlink *l);
void link_set_how(chatlink *l, enum link_how how); /* a reverse dial says so */
int link_is_up(const chatlink *l);
const char *link_addr(const chatlink *l); /* the other side's HOST:PORT */
/* The other side's address (ss_family 0 when unknown). */
const struct sockaddr_storage *link_peer_sa(const chatlink *l);
/* Turns an accepted link away before its handshake: an error frame with
 * code "limit" and text, then the link closes (its closed callback fires). */
void link_refuse(chatlink *l, const char *text);

#endif
