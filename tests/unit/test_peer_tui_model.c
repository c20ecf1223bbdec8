/* test_peer_tui_model: the terminal UI's model fed through its ev_frontend
 * (peer/ui/tui_events.c) without a terminal: the marks of our messages
 * (sending, stored at the tracker, delivered, expired) move forward only
 * and find their message by #N, the copies from history.db with it; a
 * stored message says once per link that the tracker keeps it; /history
 * is a block in NAME's window, which comes on screen; the start-up load
 * is the rows alone.  (The stored event needs a tracker with a mailbox,
 * which the integration tests do not have yet: this is where it is
 * tested.)  And what the keys do to the model (peer/ui/tui_keys.c,
 * tui_search.c): windows numbered as they come, Alt-N and Alt-Left/Right
 * as ncurses hands them over (Esc, then the key), unknown escape
 * sequences swallowed, Ctrl-R's search, /search and /clear; a mention of
 * our name highlighted and rung, with the bell setting of parley.conf and
 * --no-bell over it. */
#include "test.h"
#include "ui/tui_impl.h"

#include <locale.h>

static peer_ctx ctx;

static tui *make_tui(void) {
    memset(&ctx, 0, sizeof ctx);
    snprintf(ctx.user, sizeof ctx.user, "alice");
    snprintf(ctx.user_fold, sizeof ctx.user_fold, "alice");
    ctx.no_bell = 1;
    tui *t = calloc(1, sizeof *t);
    ASSERT(t != NULL);
    t->ctx = &ctx;
    snprintf(t->system.name, sizeof t->system.name, "parley");
    t->system.num = 1;
    tui_conf_defaults(&t->conf);
    snprintf(t->me, sizeof t->me, "alice");
    ASSERT(setlocale(LC_CTYPE, "C.UTF-8") != NULL);
    return t;
}

static void free_tui(tui *t) {
    tui_model_free(t);
    tui_in_free(&t->in);
    free(t);
}

static void msg(tui *t, const char *from, const char *text) {
    tui_frontend.msg(t, from, 0, tui_now_ms(), text, strlen(text));
}

/* Types s (UTF-8) as ncurses hands it over: one character a key. */
static void keys(tui *t, const char *s) {
    while (*s) {
        wchar_t wc;
        int k = mbtowc(&wc, s, strlen(s));
        ASSERT(k > 0);
        tui_key(t, 0, (wint_t)wc);
        s += k;
    }
}

static void alt(tui *t, wint_t ch) {
    tui_key(t, 0, 27);
    tui_key(t, ch >= KEY_MIN, ch);
}

static int shown_num(tui *t) { return t->shown ? t->shown->num : 1; }

static void sent(tui *t, uint64_t seq, const char *text) {
    tui_frontend.sent(t, "bob", seq, 1000 * (int64_t)seq, text, strlen(text));
}

/* The i-th entry of bob's window. */
static tui_entry *entry(tui *t, size_t i) {
    tui_conv *cv = tui_conv_find(t, "bob");
    ASSERT(cv != NULL);
    ASSERT_INT(i, <, cv->n);
    return cv->v[i];
}

static size_t entries(tui *t) { return tui_conv_find(t, "bob")->n; }

static size_t count_info(tui *t, const char *prefix) {
    size_t k = 0;
    tui_conv *cv = tui_conv_find(t, "bob");
    for (size_t i = 0; i < cv->n; i++)
        k += cv->v[i]->kind == TE_INFO && strncmp(cv->v[i]->text, prefix, strlen(prefix)) == 0;
    return k;
}

static void stored_then_delivered_forward_only(void) {
    tui *t = make_tui();
    sent(t, 1, "one");
    sent(t, 2, "two");
    ASSERT_EQ(entry(t, 0)->state, TS_SENDING);
    tui_frontend.stored(t, "bob", 1);
    tui_frontend.stored(t, "bob", 2);
    ASSERT_EQ(entry(t, 0)->state, TS_STORED);
    ASSERT_EQ(entry(t, 1)->state, TS_STORED);
    ASSERT_EQ(count_info(t, "cannot reach bob now: the tracker keeps your messages"), 1); /* once */
    tui_frontend.delivered(t, "BOB", 1); /* any spelling */
    ASSERT_EQ(entry(t, 0)->state, TS_DELIVERED);
    tui_frontend.stored(t, "bob", 1); /* late: never undoes delivered */
    ASSERT_EQ(entry(t, 0)->state, TS_DELIVERED);
    ASSERT_EQ(entry(t, 1)->state, TS_STORED);
    /* A link came and went: the next stored message is told again. */
    tui_frontend.connected(t, "bob", EV_PATH_DIRECT, "dialed");
    sent(t, 3, "three");
    tui_frontend.stored(t, "bob", 3);
    ASSERT_EQ(count_info(t, "cannot reach bob now: the tracker keeps your messages"), 2);
    tui_frontend.stored(t, "carol", 1); /* nobody's: nothing happens */
    ASSERT(tui_conv_find(t, "carol") == NULL);
    free_tui(t);
}

/* Without history.db, #N starts again with a new conversation: the newest
 * message that can still move is the one. */
static void a_restarted_number_marks_the_newest(void) {
    tui *t = make_tui();
    sent(t, 1, "first conversation");
    tui_frontend.closed(t, "bob", EV_CLOSED_YOU_BYE);
    sent(t, 1, "second conversation");
    tui_frontend.delivered(t, "bob", 1);
    ASSERT_EQ(entry(t, 0)->state, TS_SENDING);
    ASSERT_EQ(entry(t, 2)->state, TS_DELIVERED);
    tui_frontend.delivered(t, "bob", 1); /* the older one now */
    ASSERT_EQ(entry(t, 0)->state, TS_DELIVERED);
    free_tui(t);
}

static const ev_hist_row rows[] = {
    {1, 1, 1000, "sending", "one", 3},
    {0, 0, 2000, NULL, "hi\x01", 3},
    {1, 2, 3000, "expired", "two", 3},
    {1, 3, 4000, "stored", "three", 5},
    {1, 4, 5000, "delivered", "four", 4},
};
#define NROWS (sizeof rows / sizeof *rows)

static void history_is_a_block_in_the_window_of_name(void) {
    tui *t = make_tui();
    sent(t, 1, "one"); /* shown when typed, still undelivered */
    ASSERT(t->shown == NULL);
    tui_frontend.history(t, "Bob", rows, NROWS);
    tui_conv *cv = tui_conv_find(t, "bob");
    ASSERT(t->shown == cv); /* NAME's window comes on screen */
    ASSERT_STR(cv->name, "bob");  /* and keeps its spelling */
    ASSERT_EQ(entries(t), 1 + 1 + NROWS + 1);
    ASSERT_STR(entry(t, 1)->text, "-- history with bob: the last 5 messages --");
    ASSERT_STR(entry(t, 2 + NROWS)->text, "-- end of the history with bob --");
    static const int kinds[] = {TE_OUT, TE_IN, TE_OUT, TE_OUT, TE_OUT};
    static const int states[] = {TS_SENDING, TS_SENDING, TS_EXPIRED, TS_STORED, TS_DELIVERED};
    for (size_t i = 0; i < NROWS; i++) {
        tui_entry *e = entry(t, 2 + i);
        ASSERT_EQ(e->kind, kinds[i]);
        ASSERT_EQ(e->from_hist, 1);
        ASSERT_EQ(e->ts, rows[i].ts);
        ASSERT_EQ(e->seq, rows[i].seq);
        ASSERT_STR(e->from, rows[i].out ? "alice" : "bob");
        if (e->kind == TE_OUT)
            ASSERT_EQ(e->state, states[i]);
    }
    ASSERT_STR(entry(t, 3)->text, "hi\\x01"); /* escaped for the screen */
    /* #1 arrives: the line typed and its copy in the block both say so. */
    tui_frontend.delivered(t, "bob", 1);
    ASSERT_EQ(entry(t, 0)->state, TS_DELIVERED);
    ASSERT_EQ(entry(t, 2)->state, TS_DELIVERED);
    /* A late delivery wins over expired; stored after delivered is late. */
    tui_frontend.delivered(t, "bob", 2);
    ASSERT_EQ(entry(t, 4)->state, TS_DELIVERED);
    tui_frontend.stored(t, "bob", 4);
    ASSERT_EQ(entry(t, 6)->state, TS_DELIVERED);
    ASSERT_EQ(cv->unread, 0);
    /* Nothing kept: said so, in NAME's window. */
    tui_frontend.history(t, "carol", rows, 0);
    ASSERT(t->shown == tui_conv_find(t, "carol"));
    ASSERT_EQ(t->shown->n, 1);
    ASSERT_STR(t->shown->v[0]->text, "-- no history with carol --");
    /* Yours is in the window on screen, which stays. */
    tui_frontend.history(t, "Alice", rows, 0);
    ASSERT(t->shown == tui_conv_find(t, "carol"));
    ASSERT(tui_conv_find(t, "alice") == NULL);
    ASSERT_STR(t->shown->v[1]->text, "-- no history with Alice --");
    free_tui(t);
}

static void the_start_up_load_is_the_rows_alone(void) {
    tui *t = make_tui();
    t->preloading = 1;
    tui_frontend.history(t, "bob", rows, NROWS);
    tui_frontend.history(t, "carol", rows, 0);
    t->preloading = 0;
    ASSERT(t->shown == NULL); /* the notices stay on screen */
    ASSERT_EQ(entries(t), NROWS);
    ASSERT_EQ(entry(t, 0)->state, TS_SENDING);
    ASSERT_EQ(entry(t, 3)->state, TS_STORED);
    ASSERT_EQ(tui_conv_find(t, "bob")->unread, 0);
    ASSERT_EQ(tui_conv_find(t, "carol")->n, 0);
    /* Both are in the panel, offline until the tracker says otherwise. */
    int idx[8];
    ASSERT_EQ(tui_panel_list(t, idx, 8), 2);
    ASSERT(!t->users[idx[0]].online && !t->users[idx[1]].online);
    tui_frontend.presence(t, "bob", 1);
    ASSERT(tui_user_get(t, "bob")->online);
    /* The message left in the outbox goes out at the next link: its
     * #N marks the line loaded, not a new one. */
    tui_frontend.delivered(t, "bob", 1);
    ASSERT_EQ(entry(t, 0)->state, TS_DELIVERED);
    free_tui(t);
}

static void windows_are_numbered_and_alt_keys_switch(void) {
    tui *t = make_tui();
    msg(t, "bob", "one");
    msg(t, "Carol", "two");
    tui_frontend.current(t, "dave");
    ASSERT_EQ(tui_conv_find(t, "bob")->num, 2);
    ASSERT_EQ(tui_conv_find(t, "carol")->num, 3);
    ASSERT_EQ(tui_conv_find(t, "dave")->num, 4);
    ASSERT_EQ(shown_num(t), 4);
    ASSERT_EQ(tui_conv_find(t, "bob")->unread, 1);
    alt(t, '2');
    ASSERT_EQ(shown_num(t), 2);
    ASSERT_EQ(tui_conv_find(t, "bob")->unread, 0); /* read */
    alt(t, '1');
    ASSERT(t->shown == NULL);                        /* the notices */
    alt(t, TUI_KEY_ALT_RIGHT);                       /* \E[1;3C, as tui.c defines it */
    ASSERT_EQ(shown_num(t), 2);
    alt(t, KEY_LEFT);                                /* Esc then Left (rxvt) */
    ASSERT_EQ(shown_num(t), 1);
    tui_key(t, 1, TUI_KEY_ALT_LEFT);                 /* round: from 1 to the last */
    ASSERT_EQ(shown_num(t), 4);
    tui_key(t, 1, TUI_KEY_ALT_RIGHT);
    ASSERT_EQ(shown_num(t), 1);
    alt(t, '7');                                     /* none: said, nothing moves */
    ASSERT_EQ(shown_num(t), 1);
    ASSERT_STR(t->flash, "no window 7: the windows are 1 (notices) to 4");
    keys(t, "x");
    ASSERT_STR(t->flash, "");                        /* until the next key */
    alt(t, '0');
    ASSERT(strstr(t->flash, "no window 10") != NULL);
    /* Esc alone leaves the panel; Esc before a key is Alt, never the key
     * typed; a sequence nobody knows (Ctrl-Left) is swallowed whole. */
    tui_in_clear(&t->in);
    t->focus = FOCUS_PANEL;
    tui_key(t, 0, 27);
    ASSERT_EQ(t->focus, FOCUS_PANEL);
    tui_key_idle(t);
    ASSERT_EQ(t->focus, FOCUS_INPUT);
    alt(t, 'q');
    tui_key(t, 0, 27);
    keys(t, "[1;5D");
    tui_key(t, 0, 27);
    keys(t, "OP");
    keys(t, "ok");
    tui_key_idle(t);
    ASSERT_STR(t->in.buf, "ok");
    free_tui(t);
}

static void add_lines(tui *t, const char *const *texts, size_t n) {
    for (size_t i = 0; i < n; i++)
        msg(t, "bob", texts[i]);
}

static const char *hit_text(tui *t) {
    tui_conv *cv = t->search.cv;
    ASSERT(t->search.has_hit);
    return cv->v[t->search.hit - cv->dropped]->text;
}

static void ctrl_r_searches_the_window_on_screen(void) {
    tui *t = make_tui();
    static const char *const lines[] = {"an Apple early", "a needle", "plain", "apple late",
                                        "\xc3\x89MILE here"};
    add_lines(t, lines, 5);
    tui_frontend.current(t, "bob");
    tui_conv *cv = t->shown;
    cv->scroll = 3;
    keys(t, "draft");
    tui_key(t, 0, 'r' & 0x1f);
    ASSERT(t->search.active && t->search.cv == cv);
    keys(t, "APP");                                  /* the newest, ignoring case */
    ASSERT_STR(hit_text(t), "apple late");
    ASSERT(cv->revealing && cv->reveal == t->search.hit); /* the paint scrolls to it */
    int nth;
    ASSERT_EQ(tui_search_count(t, &nth), 2);
    ASSERT_EQ(nth, 2);
    tui_key(t, 0, 'r' & 0x1f);                       /* older */
    ASSERT_STR(hit_text(t), "an Apple early");
    ASSERT(!t->search.stuck);
    tui_key(t, 0, 'r' & 0x1f);                       /* none older: it stays */
    ASSERT_STR(hit_text(t), "an Apple early");
    ASSERT(t->search.stuck);
    tui_key(t, 1, KEY_DOWN);                         /* newer */
    ASSERT_STR(hit_text(t), "apple late");
    keys(t, "le l");                                 /* more text: the hit if it still holds it */
    ASSERT_STR(hit_text(t), "apple late");
    keys(t, "x");
    ASSERT(!t->search.has_hit);
    ASSERT_EQ(tui_search_count(t, &nth), 0);
    tui_key(t, 0, 127);                              /* Backspace: found again */
    ASSERT_STR(hit_text(t), "apple late");
    ASSERT_STR(t->search.q, "APPle l");
    tui_key(t, 0, 'u' & 0x1f);                       /* a new query, from the newest */
    keys(t, "bob");                                  /* the sender counts too */
    ASSERT_STR(hit_text(t), "\xc3\x89MILE here");
    tui_key(t, 0, 'u' & 0x1f);
    keys(t, "\xc3\xa9mile");                         /* case beyond ASCII */
    ASSERT_STR(hit_text(t), "\xc3\x89MILE here");
    cv->scroll = 2;                                  /* as the paint would have */
    tui_key(t, 0, 27);
    tui_key_idle(t);                                 /* Esc: back to where it was */
    ASSERT(!t->search.active);
    ASSERT_EQ(cv->scroll, 3);
    ASSERT_STR(t->in.buf, "draft");                  /* the line waited */
    /* /search TEXT: the same, TEXT typed; Enter stays. */
    tui_in_clear(&t->in);
    tui_submit(t, "/search needle", 14);
    ASSERT(t->search.active);
    ASSERT_STR(hit_text(t), "a needle");
    cv->scroll = 2;
    tui_key(t, 0, '\r');
    ASSERT(!t->search.active);
    ASSERT_EQ(cv->scroll, 2);
    /* Another window on screen ends a search. */
    tui_key(t, 0, 'r' & 0x1f);
    keys(t, "a");
    alt(t, '1');
    ASSERT(!t->search.active);
    free_tui(t);
}

static void clear_empties_the_window_and_hits_keep_their_number(void) {
    tui *t = make_tui();
    static const char *const lines[] = {"one", "two needle", "three"};
    add_lines(t, lines, 3);
    tui_frontend.current(t, "bob");
    tui_conv *cv = t->shown;
    tui_submit(t, "/search needle", 14);
    uint64_t hit = t->search.hit;
    ASSERT_EQ(hit, 1);
    /* The oldest entries go at the cap: the hit is still the same entry. */
    for (int i = 0; i < TUI_CONV_MAX_ENTRIES; i++)
        tui_conv_info(cv, "filler %d", i);
    ASSERT_EQ(cv->n, TUI_CONV_MAX_ENTRIES);
    ASSERT_EQ(cv->dropped, 3);
    tui_search_older(t);                             /* it is gone: nothing older either */
    ASSERT(t->search.stuck);
    tui_search_stop(t, 1);
    tui_conv_info(cv, "a needle again");
    tui_submit(t, "/search needle", 14);
    ASSERT_STR(hit_text(t), "a needle again");
    tui_key(t, 0, '\r');
    tui_submit(t, "/clear", 6);
    ASSERT_EQ(cv->n, 0);
    ASSERT_EQ(cv->scroll, 0);
    ASSERT(strstr(t->flash, "/history bob") != NULL);
    msg(t, "bob", "after");
    ASSERT_EQ(cv->n, 1);
    ASSERT_EQ(cv->dropped, 4 + TUI_CONV_MAX_ENTRIES); /* the cap took 4, /clear the rest */
    free_tui(t);
}

static void a_mention_is_highlighted_and_rings(void) {
    tui *t = make_tui();
    ctx.no_bell = 0;
    tui_frontend.current(t, "bob");
    msg(t, "bob", "malice and alice_b are not you");
    ASSERT(!t->shown->v[0]->mention);
    ASSERT(!t->bell_pending);                        /* on screen, no name: quiet */
    msg(t, "bob", "hey ALICE, look");
    ASSERT(t->shown->v[1]->mention);
    ASSERT(t->bell_pending);                         /* even on screen */
    t->bell_pending = 0;
    msg(t, "carol", "nothing for you");              /* another window: the bell */
    ASSERT(t->bell_pending);
    ASSERT(!tui_conv_find(t, "carol")->mentioned);
    t->bell_pending = 0;
    t->conf.bell = BELL_MENTIONS;
    msg(t, "carol", "still nothing");
    ASSERT(!t->bell_pending);
    msg(t, "carol", "@alice: ping");
    ASSERT(t->bell_pending);
    ASSERT(tui_conv_find(t, "carol")->mentioned);    /* its count stands out */
    t->bell_pending = 0;
    t->conf.bell = BELL_OFF;
    msg(t, "carol", "alice!");
    ASSERT(!t->bell_pending);
    t->conf.bell = BELL_ON;
    ctx.no_bell = 1;                                 /* --no-bell wins over the file */
    msg(t, "carol", "alice?");
    ASSERT(!t->bell_pending);
    alt(t, '3');
    ASSERT(!tui_conv_find(t, "carol")->mentioned);   /* read */
    /* From history.db: highlighted, never rung. */
    ctx.no_bell = 0;
    static const ev_hist_row hr[] = {{0, 0, 1000, NULL, "old news, Alice", 15}};
    t->preloading = 1;
    tui_frontend.history(t, "dave", hr, 1);
    t->preloading = 0;
    ASSERT(tui_conv_find(t, "dave")->v[0]->mention);
    ASSERT(!t->bell_pending);
    ctx.no_bell = 1;
    free_tui(t);
}

/* /bye ends the conversation on screen: chat's current follows the
 * window (instant when its link is up); one not connected is said so. */
static void bye_is_for_the_window_on_screen(void) {
    tui *t = make_tui();
    tui_frontend.current(t, "bob");
    ASSERT_STR(t->current, "bob");
    msg(t, "carol", "hi");
    alt(t, '3');
    tui_submit(t, "/bye", 4);                        /* carol: not connected */
    ASSERT(strstr(t->notice, "not connected to carol") != NULL);
    alt(t, '1');
    tui_submit(t, "plain words", 11);
    ASSERT(strstr(t->notice, "the notices window sends nothing") != NULL);
    tui_frontend.closed(t, "bob", EV_CLOSED_BYE);
    ASSERT_STR(t->current, "");
    free_tui(t);
}

int main(int argc, char **argv) {
    static const test_entry tests[] = {
        {"stored_then_delivered_forward_only", stored_then_delivered_forward_only},
        {"a_restarted_number_marks_the_newest", a_restarted_number_marks_the_newest},
        {"history_is_a_block_in_the_window_of_name", history_is_a_block_in_the_window_of_name},
        {"the_start_up_load_is_the_rows_alone", the_start_up_load_is_the_rows_alone},
        {"windows_are_numbered_and_alt_keys_switch", windows_are_numbered_and_alt_keys_switch},
        {"ctrl_r_searches_the_window_on_screen", ctrl_r_searches_the_window_on_screen},
        {"clear_empties_the_window_and_hits_keep_their_number",
         clear_empties_the_window_and_hits_keep_their_number},
        {"a_mention_is_highlighted_and_rings", a_mention_is_highlighted_and_rings},
        {"bye_is_for_the_window_on_screen", bye_is_for_the_window_on_screen},
    };
    return test_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
