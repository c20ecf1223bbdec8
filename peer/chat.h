/* chat: the conversations, one per peer name (keyed by the folded name).
 * It owns the current conversation, each conversation's queue of
 * unacknowledged messages (resent in order on every new link), the dedupe
 * set of shown ids, and the one-link-per-pair rule.  It reports the chat
 * events (connected, msg, delivered, closed...) through events.h. */
#ifndef PARLEY_CHAT_H
#define PARLEY_CHAT_H

#include "peer.h"

#include <stddef.h>
#include <uv.h>

typedef struct chat chat;

#define CHAT_SEEN_IDS 4096 /* ids remembered per peer to drop repeats */

/* 0 with *out set, or UV_ENOMEM. */
int chat_open(peer_ctx *ctx, chat **out);

/* Takes one pending connection from the chat listener (link_accept). */
void chat_accept(chat *ch, uv_stream_t *server);

/* The line-mode commands.  Each reports problems itself as "error: ..."
 * events; none fires a callback. */
void chat_dial(chat *ch, const char *name);                                   /* /dial */
void chat_send_to(chat *ch, const char *name, const char *text, size_t len); /* /msg */
void chat_send_current(chat *ch, const char *text, size_t len);              /* plain line */
void chat_bye(chat *ch);                                                     /* /bye */

/* From the tracker connection.  tracker_ready: registered (again); peer
 * online: a presence push.  Both set relayed chats that dropped up again.
 * connect_request: u asks us to dial it back (reverse connection).
 * relay_offer: from set up a relay session for us; we join it and run the
 * handshake as the accepting side. */
struct ctl_user;
void chat_tracker_ready(chat *ch);
void chat_peer_online(chat *ch, const char *name);
void chat_connect_request(chat *ch, const struct ctl_user *u);
/* from could not dial us back (connect_failed): our dial to it relays now. */
void chat_connect_failed(chat *ch, const char *from, const char *why);
void chat_relay_offer(chat *ch, const char *from, const unsigned char token[16]);

/* How many sent messages still wait for an ack on conversations that can
 * still deliver them (a link is up or a dial is in flight).  Lets the peer
 * linger briefly on /quit or end of input. */
size_t chat_unsent(const chat *ch);

/* Leaving the program: every conversation whose link is up says bye on it,
 * so the other side shows "bye" rather than "connection lost".  The links
 * close with chat_close, which writes the byes first. */
void chat_leave(chat *ch);

/* Closes every link and dial and frees ch; prints only an error line per
 * conversation whose messages were never acknowledged.
 * Links finish closing on the loop.  NULL is a no-op. */
void chat_close(chat *ch);

#endif
