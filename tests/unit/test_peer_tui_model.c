/* test_peer_tui_model: the terminal UI's model fed through its ev_frontend
 * (peer/ui/tui_events.c) without a terminal: the marks of our messages
 * (sending, stored at the tracker, delivered, expired) move forward only
 * and find their message by #N, the copies from history.db with it; a
 * stored message says once per link that the tracker keeps it; /history
 * is a block in NAME's window, which comes on screen; the start-up load
 * is the rows alone.  (The stored event needs a tracker with a mailbox,
 * which the integration tests do not have yet: this is where it is
 * tested.) */
#include "test.h"
#include "ui/tui_impl.h"

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
    return t;
}

static void free_tui(tui *t) {
    tui_model_free(t);
    free(t);
}

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
    tui_frontend.connected(t, "bob", EV_PATH_DIRECT);
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

int main(int argc, char **argv) {
    static const test_entry tests[] = {
        {"stored_then_delivered_forward_only", stored_then_delivered_forward_only},
        {"a_restarted_number_marks_the_newest", a_restarted_number_marks_the_newest},
        {"history_is_a_block_in_the_window_of_name", history_is_a_block_in_the_window_of_name},
        {"the_start_up_load_is_the_rows_alone", the_start_up_load_is_the_rows_alone},
    };
    return test_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
