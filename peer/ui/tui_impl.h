/* tui_impl: the terminal UI's shared state, seen only by the tui_*.c files.
 * tui.c owns the struct and the terminal; tui_model.c keeps users and
 * conversations; tui_events.c feeds the model from ev_* events;
 * tui_draw.c paints it; tui_input.c edits the input line; tui_keys.c maps
 * keys and mouse to actions; tui_search.c searches a window's scrollback;
 * tui_conf.c reads HOME/parley.conf; tui_text.c measures UTF-8 text on
 * screen and breaks it into rows (the one line breaker, for everything
 * that wraps). */
#ifndef PARLEY_UI_TUI_IMPL_H
#define PARLEY_UI_TUI_IMPL_H

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>

#include "addr.h"
#include "events.h"
#include "name.h"
#include "peer.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#define TUI_CONV_MAX_ENTRIES 2000 /* per conversation; the oldest go first */
#define TUI_INPUT_MAX 4000        /* bytes: one message (CHAT_TEXT_MAX) */
#define TUI_HISTORY 100

/* Our own key codes past ncurses' (define_key). */
enum { TUI_KEY_PASTE_BEGIN = KEY_MAX + 1, TUI_KEY_PASTE_END, TUI_KEY_SGR_MOUSE, TUI_KEY_ALT_LEFT,
       TUI_KEY_ALT_RIGHT };

/* What a key can be bound to (tui_conf.c reads the bindings, tui_keys.c
 * runs them). */
enum { ACT_NONE, ACT_SEARCH, ACT_PREV_WINDOW, ACT_NEXT_WINDOW, ACT_CLEAR };
/* One key: a key code (is_code: KEY_F(n), ...), else a character (a
 * control character for Ctrl-X); meta: pressed with Alt (Esc first). */
typedef struct tui_bind {
    int is_code, meta;
    wint_t ch;
    int action;
} tui_bind;

enum { BELL_OFF, BELL_ON, BELL_MENTIONS };
#define TUI_TIME_FORMAT_MAX 64
#define TUI_BINDS_MAX 16
/* HOME/parley.conf, as tui_conf_read leaves it: the defaults where the
 * file says nothing. */
typedef struct tui_conf {
    int colors;     /* 1: names in colour */
    int bell;       /* BELL_*: --no-bell wins over it */
    char time_format[TUI_TIME_FORMAT_MAX]; /* strftime, "%H:%M:%S" */
    tui_bind binds[TUI_BINDS_MAX]; /* in addition to the default keys */
    int nbinds;
    char tracker[ADDR_STRLEN]; /* HOST:PORT, or "": --tracker wins (main.c applies it) */
} tui_conf;

enum { TE_IN, TE_OUT, TE_INFO };
/* Where one of our messages is (TE_OUT), as the marks after its time show
 * it: moves forward only (a late stored never undoes delivered; delivered
 * wins over expired, as in history.db). */
enum { TS_SENDING, TS_STORED, TS_DELIVERED, TS_EXPIRED };

/* One line of a conversation (a message or a notice). */
typedef struct tui_entry {
    int kind;       /* TE_IN, TE_OUT, TE_INFO */
    int64_t ts;     /* unix ms */
    uint64_t seq;   /* TE_OUT: the per-conversation number delivered reports */
    int state;      /* TE_OUT: TS_* */
    int from_hist;  /* a copy from history.db (loaded at start, or /history) */
    char *from;     /* sender name (TE_IN, TE_OUT) */
    char *text;     /* displayable UTF-8: controls escaped, '\n' kept as a break */
    int hang;       /* columns past the text column where wrapped rows go (a
                       help line's description); 0: under the text */
    int mention;    /* TE_IN that names us: highlighted */
} tui_entry;

typedef struct tui_conv {
    struct tui_conv *next;
    char name[NAME_BUFLEN];
    char fold[NAME_BUFLEN];
    tui_entry **v;  /* oldest first */
    size_t n, cap;
    int scroll;     /* screen rows scrolled back from the bottom */
    int revealing;  /* the next paint scrolls entry number `reveal` (as
                       numbered by `dropped`) onto the screen */
    uint64_t reveal;
    uint64_t dropped; /* entries gone from the front (the cap, /clear): v[i]
                       is entry number dropped + i, a number that stays */
    int num;        /* the window number (the notices are 1); Alt-N */
    int unread;
    int mentioned;  /* an unread message names us */
    int linked;     /* a link is up */
    ev_path path;
    int told_stored;/* said that the tracker keeps our messages, since the last link */
} tui_conv;

typedef struct tui_user {
    char name[NAME_BUFLEN];
    char fold[NAME_BUFLEN];
    int online;
} tui_user;

/* The input line: UTF-8 bytes, cursor as a byte offset on a character
 * boundary. */
typedef struct tui_input {
    char buf[TUI_INPUT_MAX + 1];
    size_t len, cur;
    char *hist[TUI_HISTORY]; /* oldest first */
    int nhist;
    int hpos;                /* nhist: editing a new line */
    char saved[TUI_INPUT_MAX + 1]; /* the new line while browsing history */
} tui_input;

enum { TRK_CONNECTING, TRK_CONNECTED, TRK_RECONNECTING };
/* What a status-bar notice reported, so the event that ends it clears it:
 * a link to that user coming up (NOTE_USER), registering again
 * (NOTE_TRACKER).  NOTE_OTHER lasts until the next line is entered. */
enum { NOTE_OTHER, NOTE_USER, NOTE_TRACKER };
enum { FOCUS_INPUT, FOCUS_PANEL };

/* Ctrl-R or /search: the query is typed where the input line was (which
 * is kept), the window on screen scrolls to the newest entry that holds
 * it, older ones with Ctrl-R again. */
typedef struct tui_search {
    int active;
    tui_conv *cv;       /* the window searched */
    char q[256];        /* the query, UTF-8 */
    size_t qlen;
    int has_hit;
    uint64_t hit;       /* the entry on screen that holds q (as cv->dropped numbers) */
    int saved_scroll;   /* where Esc goes back to */
    int stuck;          /* the last Ctrl-R or Down found nothing further */
} tui_search;

typedef struct tui {
    peer_ctx *ctx;
    SCREEN *scr;
    FILE *scr_out;
    int active;          /* curses is up (between newterm and endwin) */
    int closing;
    int handles;         /* open uv handles; freed when 0 after close */
    uv_poll_t poll;      /* fd 0 readable */
    uv_signal_t winch;
    uv_prepare_t repaint;/* paints once per loop pass when dirty */
    uv_timer_t countdown;/* only while the tracker is reconnecting */
    int dirty;
    int bell_pending;
    int mouse_on;
    int b1_down;         /* a button-1 press was seen, its release not yet */
    int sgr_native;      /* ncurses parses SGR mouse itself (kmous=\E[<) */
    int colors;
    int saved_stderr;    /* fd, restored on close; -1 if not redirected */
    char log_path[4200];

    /* model */
    tui_user *users;     /* sorted by fold */
    size_t nusers, capusers;
    tui_conv *convs;
    tui_conv system;     /* notices with no conversation: help, errors, /list */
    tui_conv *shown;     /* the open conversation; NULL: system */
    int nwindows;        /* conversation windows made; they are numbered 2.. */
    char current[NAME_BUFLEN]; /* folded: chat's current conversation, as the
                            current and closed events tell it ("" none) */
    char me[NAME_BUFLEN];
    int preloading;      /* history events now are the start-up load, not /history */

    /* status */
    int trk;
    uint64_t retry_at;   /* uv_now() of the next tracker attempt */
    char notice[512];    /* last error or notice, on the status bar (tui_notice) */
    int notice_about;    /* NOTE_*: what ends it */
    char notice_who[NAME_BUFLEN]; /* NOTE_USER: the folded name */
    char last_error[512];/* repeated on stdout when quitting with an error */
    char last_code[32];  /* its ev_error code */
    char flash[160];     /* a passing word on the status bar (not kept in a
                            window), until the next key */

    /* panel */
    int focus;
    int sel;             /* index into the filtered list */
    int panel_top;       /* first filtered index on screen */
    char filter[NAME_BUFLEN];
    int panel_w;         /* columns of the panel, from the last layout */
    int panel_map[512];  /* screen row -> users index, -1 none (last paint) */
    int pane_body_top, pane_body_h; /* rows of the conversation body */

    /* tui_draw.c: the entry being laid out, kept between paints */
    char *scratch;
    size_t scratch_cap;
    long today;          /* year * 1000 + day of the year at this paint: older
                            entries show their date */

    tui_conf conf;
    tui_search search;
    tui_input in;
    int esc;             /* an Esc came: the next key is with Alt, or it was
                            Esc alone (tui_key_idle) */
    int esc_seq;         /* inside an escape sequence nobody knows: 1 CSI, 2 SS3 */
    int pasting;         /* inside a bracketed paste */
    int sgr_state;       /* own SGR parser: numbers read so far */
    int sgr_num[3];
} tui;

/* tui.c */
void tui_fe_close(void *fe); /* the close entry of tui_frontend */
void tui_dirty(tui *t);
void tui_set_mouse(tui *t, int on);
void tui_submit(tui *t, const char *line, size_t len); /* Enter on the input line */
void tui_open_conv(tui *t, const char *name);           /* click or Enter on a user */
/* Puts window num on screen (1: the notices); 0 if there is none. */
int tui_show_window(tui *t, int num);
/* The window before (-1) or after (+1) the one on screen, round. */
void tui_cycle_window(tui *t, int dir);
void tui_clear_window(tui *t);                          /* /clear */
void tui_flash(tui *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* tui_events.c */
extern const ev_frontend tui_frontend;
/* Start-up: a window for each conversation in history.db (none with
 * --no-history), most recent first, holding its last `rows` messages, so
 * what was said before is there; their users join the panel. */
void tui_load_history(tui *t, int rows);

/* tui_model.c */
tui_conv *tui_conv_find(tui *t, const char *name);
tui_conv *tui_conv_get(tui *t, const char *name); /* creates (numbered); NULL on no memory */
tui_conv *tui_window(tui *t, int num);            /* by number; NULL none (or 1) */
/* Forgets the window's entries (the screen's, not history.db's). */
void tui_conv_clear(tui_conv *cv);
/* Returns the entry (NULL: no memory), which the conversation owns. */
tui_entry *tui_conv_add(tui_conv *cv, int kind, int64_t ts, uint64_t seq, const char *from,
                        const char *text, size_t len);
void tui_conv_info(tui_conv *cv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tui_model_free(tui *t);
/* The window on screen: the open conversation, else the notices. */
tui_conv *tui_here(tui *t);
/* Puts a notice on the status bar, and its full text in the window on
 * screen too (the bar cuts what does not fit), unless that window is
 * `logged`, which already shows it.
 * about (NOTE_*) and who (a name, for NOTE_USER) say what ends it. */
void tui_notice(tui *t, const tui_conv *logged, int about, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* What a notice reported is over (about, who as for tui_notice): it goes
 * if it was that one. */
void tui_notice_over(tui *t, int about, const char *who);
void tui_notice_clear(tui *t);
tui_user *tui_user_get(tui *t, const char *name); /* creates */
void tui_user_set_online(tui *t, const char *name, int online);
/* Users shown in the panel (online, or with a conversation window, which
 * history.db gives at start; never self),
 * filtered; fills idx (users indexes), returns how many. */
int tui_panel_list(tui *t, int *idx, int max);
int tui_online_count(const tui *t);
int64_t tui_now_ms(void);

/* tui_text.c */
/* Decodes one character at s (n bytes left): its byte length (1 for an
 * invalid byte, *cp = U+FFFD) and its column width (0..2) in *w. */
size_t tui_char(const char *s, size_t n, unsigned *cp, int *w);
int tui_width(const char *s, size_t n);
/* Bytes of s that fit in cols columns. */
size_t tui_fit(const char *s, size_t n, int cols);
/* Escapes for display: C0/C1/DEL as \xNN (tab as a space, '\n' kept when
 * keep_nl).  Returns a malloc'd string. */
char *tui_sanitize(const char *s, size_t n, int keep_nl);
size_t tui_prev_char(const char *s, size_t cur);
size_t tui_next_char(const char *s, size_t len, size_t cur);
/* Finds needle (m bytes) in s[0..n), ignoring case (towlower, character
 * by character): 0 with the match at s[*a..*b), -1 none. */
int tui_find(const char *s, size_t n, const char *needle, size_t m, size_t *a, size_t *b);
/* 1 when text names name: ignoring case, a whole word (not inside a
 * longer run of letters, digits and '_'). */
int tui_mentions(const char *text, size_t n, const char *name);
/* "-- Wednesday, 2 December 2026 --", for the day of tm. */
void tui_date_line(const struct tm *tm, char *out, size_t cap);
/* The one line breaker: s[0..n) in rows of cols columns, the first from
 * column 0, the rest (after a wrap or a '\n') from column indent, the
 * hanging indent.  Rows break at spaces, and those spaces are dropped; a
 * word is split only when it is wider than a row (see tui_text.c for
 * where).  A word that fits a row but not past the indent starts further
 * left instead of being split.  Use:
 *     tui_wrap w; tui_wrap_start(&w, s, n, cols, indent);
 *     while (tui_wrap_next(&w, &start, &end, &col)) draw s[start..end) at col */
typedef struct tui_wrap {
    const char *s;
    size_t n, pos;
    int cols, indent;
    int first, done;
} tui_wrap;
void tui_wrap_start(tui_wrap *w, const char *s, size_t n, int cols, int indent);
int tui_wrap_next(tui_wrap *w, size_t *start, size_t *end, int *col);

/* tui_draw.c */
void tui_paint(tui *t);
int tui_name_color(const tui *t, const char *name);

/* tui_input.c */
void tui_in_insert(tui_input *in, const char *s, size_t n);
void tui_in_left(tui_input *in);
void tui_in_right(tui_input *in);
void tui_in_home(tui_input *in);
void tui_in_end(tui_input *in);
void tui_in_backspace(tui_input *in);
void tui_in_delete(tui_input *in);
void tui_in_clear(tui_input *in);
void tui_in_history(tui_input *in, int dir); /* -1 older, +1 newer */
void tui_in_remember(tui_input *in);           /* the line just submitted */
void tui_in_complete(tui *t);
void tui_in_free(tui_input *in);

/* tui_keys.c */
void tui_key(tui *t, int is_code, wint_t ch);
/* No more keys for now: an Esc still waiting for its key was Esc alone. */
void tui_key_idle(tui *t);
void tui_mouse(tui *t, int button, int x, int y, int press);

/* tui_search.c */
void tui_search_start(tui *t, const char *q, size_t n); /* in the window on screen */
void tui_search_type(tui *t, const char *s, size_t n);   /* the query grows */
void tui_search_erase(tui *t);                           /* Backspace */
void tui_search_older(tui *t);                           /* Ctrl-R, Up */
void tui_search_newer(tui *t);                           /* Down */
void tui_search_stop(tui *t, int stay);                  /* Enter stays, Esc goes back */
/* Whether e holds the query (in its sender or its text). */
int tui_search_matches(const tui *t, const tui_entry *e);
/* How many entries of the searched window hold the query; *nth: which
 * of them (counting from the oldest, 1-based) the hit is, 0 none. */
int tui_search_count(const tui *t, int *nth);

/* tui_conf.c */
/* Reads path into *c (defaults first; a file that does not exist leaves
 * them).  0, or a negative error with "PATH line N: what is wrong" (or
 * why the file cannot be read) in err. */
int tui_conf_read(const char *path, tui_conf *c, char *err, size_t errlen);
void tui_conf_defaults(tui_conf *c);

#endif
