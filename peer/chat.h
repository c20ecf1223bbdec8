/* chat: the conversations, one per peer name (keyed by the folded name).
 * It owns the current conversation, each conversation's queue of
 * unacknowledged messages (resent in order on every new link), the set of
 * shown ids (seen.h), and the one-link-per-pair rule.  Links come from its
 * own dials (dial.h) and from the other side (inbound.h, through
 * chat_incoming); what happens is reported as ev_* events. */
#ifndef PARLEY_CHAT_H
#define PARLEY_CHAT_H

#include "peer.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct chat chat;

/* 0 with *out set, or UV_ENOMEM. */
int chat_open(peer_ctx *ctx, chat **out);

/* A link the other side started is up (inbound_handler.up): it joins its
 * conversation, which it makes current if there is none. */
struct chatlink;
void chat_incoming(chat *ch, struct chatlink *l);

/* 1 when a direct link to the user whose folded name is fold is up (a
 * relayed chat still answers their reverse and punch requests: that is
 * how it moves to a direct link). */
int chat_linked(const chat *ch, const char *fold);

/* The line-mode commands.  Each reports problems itself as "error: ..."
 * events; none fires a callback. */
void chat_dial(chat *ch, const char *name);                                   /* /dial */
void chat_send_to(chat *ch, const char *name, const char *text, size_t len); /* /msg */
void chat_send_current(chat *ch, const char *text, size_t len);              /* plain line */
void chat_bye(chat *ch);                                                     /* /bye */

/* News from the tracker connection (ctl_handler, wired in main.c).
 * tracker_ready: registered (again); peer_online: a presence push.  Both
 * set relayed chats that dropped up again.  connect_failed: from could not
 * dial us back, so our dial to it relays now. */
void chat_tracker_ready(chat *ch);
void chat_peer_online(chat *ch, const char *name);
void chat_connect_failed(chat *ch, const char *from, uint64_t tag, const char *why);

/* The tracker's mailbox (ctl_handler's mail entries, wired in main.c):
 * stored and refused answer our mail_put for message id; letter is one
 * kept for us (opened, checked, committed, then shown and acknowledged);
 * receipt says what became of one we left (status: enum ctl_receipt). */
void chat_mail_stored(chat *ch, const char *to, uint64_t id);
void chat_mail_refused(chat *ch, uint64_t id, const char *code, const char *text);
void chat_mail_letter(chat *ch, uint64_t mid, const char *from, const unsigned char key[32],
                      int64_t ts, const unsigned char *box, size_t n);
void chat_mail_receipt(chat *ch, uint64_t rid, const char *to, uint64_t id, int status);

/* /history NAME [N]: the last n messages with name, as one history event
 * (errors as error events). */
void chat_history(chat *ch, const char *name, size_t n);

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
