/* tui: the terminal UI's life cycle and its hooks into the loop.  stdin is
 * watched with uv_poll (ncurses reads it, without blocking, when it is
 * readable), SIGWINCH arrives through uv_signal, and the screen is painted
 * at most once per loop pass from a uv_prepare when something changed.
 * No timer runs while idle (the one timer counts down a tracker reconnect).
 * Every way out (/quit, SIGINT, SIGTERM, a fatal tracker refusal) goes
 * through peer_quit -> ev_close_frontend -> tui_fe_close, which gives the
 * terminal back before anything else is printed. */
#include "tui.h"

#include "command.h"
#include "control.h"
#include "tui_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <term.h>
#include <unistd.h>

int tui_possible(void) { return isatty(0) && isatty(1); }

void tui_dirty(tui *t) { t->dirty = 1; }

static void raw_out(const char *s) {
    fputs(s, stdout);
    fflush(stdout);
}

void tui_set_mouse(tui *t, int on) {
    t->mouse_on = on;
    if (on) {
        mousemask(BUTTON1_PRESSED | BUTTON1_RELEASED | BUTTON4_PRESSED | BUTTON5_PRESSED, NULL);
        /* SGR reporting: any column, and unambiguous; ncurses parses it when
         * terminfo says kmous=\E[<, tui_keys.c otherwise. */
        raw_out("\033[?1000h\033[?1006h");
    } else {
        mousemask(0, NULL);
        raw_out("\033[?1006l\033[?1000l");
    }
}

/* ---- the terminal ---- */

static void restore_terminal(tui *t) {
    if (t->active) {
        t->active = 0;
        if (t->mouse_on)
            tui_set_mouse(t, 0);
        raw_out("\033[?2004l"); /* bracketed paste off */
        endwin();
        delscreen(t->scr);
        t->scr = NULL;
    }
    if (t->saved_stderr >= 0) {
        fflush(stderr);
        dup2(t->saved_stderr, 2);
        close(t->saved_stderr);
        t->saved_stderr = -1;
    }
}

static void on_closed(uv_handle_t *h) {
    tui *t = h->data;
    if (--t->handles > 0)
        return;
    tui_model_free(t);
    tui_in_free(&t->in);
    free(t->scratch);
    free(t);
}

void tui_fe_close(void *fe) {
    tui *t = fe;
    if (!t || t->closing)
        return;
    t->closing = 1;
    restore_terminal(t);
    /* Leaving because of an error (the tracker refused us, say): the
     * screen that showed it is gone, so say it again where it stays.  The
     * event goes to ctx->fe_base: ev_close_frontend let go of us first. */
    if (t->ctx->exit_code != 0 && t->last_error[0]) {
        ev_error(t->ctx, t->last_code, "%s", t->last_error);
        fflush(stdout);
    }
    ctl_cancel(t->ctx->ctl, t);
    uv_close((uv_handle_t *)&t->poll, on_closed);
    uv_close((uv_handle_t *)&t->winch, on_closed);
    uv_close((uv_handle_t *)&t->repaint, on_closed);
    uv_close((uv_handle_t *)&t->countdown, on_closed);
}

/* ---- loop hooks ---- */

static void on_repaint(uv_prepare_t *h) {
    tui *t = h->data;
    if (!t->active || t->closing)
        return;
    if (t->dirty) {
        t->dirty = 0;
        tui_paint(t);
    }
    if (t->bell_pending) {
        t->bell_pending = 0;
        beep();
    }
}

static void on_winch(uv_signal_t *h, int signum) {
    tui *t = h->data;
    struct winsize ws;
    if (!t->active || ioctl(1, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0)
        return;
    resizeterm(ws.ws_row, ws.ws_col);
    clearok(curscr, TRUE); /* the terminal may have reflowed: draw it all */
    tui_dirty(t);
}

static void on_stdin(uv_poll_t *h, int status, int events) {
    tui *t = h->data;
    if (status < 0 || (events & UV_DISCONNECT)) {
        log_warn(&t->ctx->lg, "terminal input: %s; quitting",
                 status < 0 ? uv_strerror(status) : "hung up");
        peer_quit(t->ctx, 0, 1, QUIT_NOW);
        return;
    }
    int got = 0;
    while (t->active && !t->closing) {
        wint_t ch;
        int r = wget_wch(stdscr, &ch);
        if (r == ERR)
            break;
        got = 1;
        if (r == KEY_CODE_YES && ch == KEY_MOUSE) {
            MEVENT me;
            if (getmouse(&me) != OK)
                continue;
            /* Some terminals (and ncurses' own merging) deliver only the
             * release: a release without a press counts as the click. */
            if (me.bstate & BUTTON1_PRESSED) {
                t->b1_down = 1;
                tui_mouse(t, 1, me.x, me.y, 1);
            } else if (me.bstate & BUTTON1_RELEASED) {
                if (!t->b1_down)
                    tui_mouse(t, 1, me.x, me.y, 1);
                t->b1_down = 0;
            }
            else if (me.bstate & BUTTON4_PRESSED)
                tui_mouse(t, 4, me.x, me.y, 1);
            else if (me.bstate & BUTTON5_PRESSED)
                tui_mouse(t, 5, me.x, me.y, 1);
            continue;
        }
        tui_key(t, r == KEY_CODE_YES, ch);
    }
    if (t->active && !t->closing)
        tui_key_idle(t); /* an Esc with nothing after it was Esc alone */
    if (!got && !t->closing) {
        /* Readable with nothing to read: the terminal is gone. */
        int n = 0;
        if (ioctl(0, FIONREAD, &n) == 0 && n == 0) {
            log_warn(&t->ctx->lg, "terminal input ended; quitting");
            peer_quit(t->ctx, 0, 1, QUIT_NOW);
        }
    }
}

/* ---- actions ---- */

void tui_open_conv(tui *t, const char *name) {
    tui_conv *cv = tui_conv_find(t, name);
    if (cv && cv == t->shown && cv->linked)
        return;
    cmd_dial(t->ctx, name); /* current NAME comes back as an event */
}

void tui_flash(tui *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->flash, sizeof t->flash, fmt, ap);
    va_end(ap);
    tui_dirty(t);
}

/* Windows are numbered in the order they came (the notices are 1), as in
 * irssi and WeeChat; they stay until the peer exits. */
int tui_show_window(tui *t, int num) {
    tui_conv *cv = num == 1 ? NULL : tui_window(t, num);
    if (num != 1 && !cv)
        return 0;
    if (t->search.active)
        tui_search_stop(t, 1);
    t->shown = cv;
    if (cv) {
        cv->unread = 0;
        cv->mentioned = 0;
        /* The chat's current conversation follows when that is free (the
         * link is up, so no dial), so /bye ends the one on screen. */
        if (cv->linked && t->ctx->chat && strcmp(t->current, cv->fold) != 0)
            cmd_dial(t->ctx, cv->name);
    }
    tui_dirty(t);
    return 1;
}

void tui_cycle_window(tui *t, int dir) {
    int total = t->nwindows + 1, here = t->shown ? t->shown->num : 1;
    tui_show_window(t, ((here - 1 + dir) % total + total) % total + 1);
}

void tui_clear_window(tui *t) {
    tui_conv *cv = tui_here(t);
    if (t->search.active && t->search.cv == cv)
        tui_search_stop(t, 1);
    tui_conv_clear(cv);
    if (t->shown)
        tui_flash(t, "cleared on screen only; /history %s brings it back", cv->name);
    else
        tui_flash(t, "window cleared");
}

/* /bye ends the conversation on screen (line mode's: the current one). */
static int bye_here(tui *t) {
    if (!t->shown) {
        tui_notice(t, NULL, NOTE_OTHER, NULL, "the notices window has no conversation to end; "
                   "switch to one first (Alt-2..9, Alt-Left/Right)");
        return 0;
    }
    if (strcmp(t->current, t->shown->fold) == 0)
        return 1;
    if (!t->shown->linked) {
        tui_notice(t, NULL, NOTE_OTHER, NULL, "not connected to %s: no conversation to end",
                   t->shown->name);
        return 0;
    }
    cmd_dial(t->ctx, t->shown->name); /* the link is up: current at once */
    return 1;
}

void tui_submit(tui *t, const char *line, size_t len) {
    tui_notice_clear(t); /* the user has moved on */
    if (len == 0)
        return;
    if (strcmp(line, "/mouse") == 0) {
        tui_set_mouse(t, !t->mouse_on);
        tui_notice(t, NULL, NOTE_OTHER, NULL, "mouse reporting %s",
                   t->mouse_on ? "on" : "off: select text with the terminal; /mouse turns it on");
        return;
    }
    if (strcmp(line, "/clear") == 0) {
        tui_clear_window(t);
        return;
    }
    if (strncmp(line, "/search", 7) == 0 && (line[7] == '\0' || line[7] == ' ')) {
        const char *q = line + 7 + strspn(line + 7, " ");
        tui_search_start(t, q, strlen(q));
        return;
    }
    if (strcmp(line, "/bye") == 0 && !bye_here(t))
        return;
    int plain = line[0] != '/' || line[1] == '/';
    if (plain && !t->shown) {
        tui_notice(t, NULL, NOTE_OTHER, NULL, "the notices window sends nothing: open a "
                   "conversation (click a name, Tab, Alt-2..9) or /msg NAME TEXT");
        return;
    }
    if (plain && t->shown) {
        /* To the open conversation, which may have ended: that starts it
         * again, as line mode's /msg does. */
        const char *text = line[0] == '/' ? line + 1 : line;
        cmd_send_to(t->ctx, t->shown->name, text, len - (size_t)(text - line));
        return;
    }
    cmd_line(t->ctx, line, len);
}

/* ---- start ---- */

static int utf8_locale(void) {
    setlocale(LC_CTYPE, "");
    const char *cs = nl_langinfo(CODESET);
    if (cs && strcmp(cs, "UTF-8") == 0)
        return 1;
    /* The terminal gets UTF-8 from us either way; wcwidth needs to agree. */
    return setlocale(LC_CTYPE, "C.UTF-8") != NULL;
}

static int redirect_log(tui *t, const char *home) {
    snprintf(t->log_path, sizeof t->log_path, "%s/peer.log", home);
    int fd = open(t->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    fflush(stderr);
    t->saved_stderr = dup(2);
    if (t->saved_stderr < 0 || dup2(fd, 2) < 0) {
        int e = -errno;
        close(fd);
        if (t->saved_stderr >= 0)
            close(t->saved_stderr);
        t->saved_stderr = -1;
        return e;
    }
    close(fd);
    return 0;
}

static void init_handles(tui *t, uv_loop_t *loop) {
    uv_handle_t *hs[] = {(uv_handle_t *)&t->winch, (uv_handle_t *)&t->repaint,
                         (uv_handle_t *)&t->countdown, (uv_handle_t *)&t->poll};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        hs[i]->data = t;
    uv_signal_init(loop, &t->winch);
    uv_prepare_init(loop, &t->repaint);
    uv_timer_init(loop, &t->countdown);
}

int tui_open(peer_ctx *ctx, const char *home, char *err, size_t errlen) {
    if (!tui_possible()) {
        snprintf(err, errlen, "the terminal UI needs a terminal on stdin and stdout; use --ui line");
        return UV_EINVAL;
    }
    if (!utf8_locale()) {
        snprintf(err, errlen, "no UTF-8 locale is available (tried $LANG and C.UTF-8); set LANG "
                 "to a UTF-8 locale or use --ui line");
        return UV_EINVAL;
    }
    tui *t = calloc(1, sizeof *t);
    if (!t)
        return UV_ENOMEM;
    t->ctx = ctx;
    t->saved_stderr = -1;
    t->in.hpos = 0;
    t->shown = NULL;
    snprintf(t->me, sizeof t->me, "%s", ctx->user);
    snprintf(t->system.name, sizeof t->system.name, "parley");
    t->system.num = 1;
    /* HOME/parley.conf first: a bad line stops us before the screen is
     * taken, so the error is a plain line the user sees. */
    char conf[4200];
    snprintf(conf, sizeof conf, "%s/parley.conf", home);
    int r = tui_conf_read(conf, &t->conf, err, errlen);
    if (r) {
        free(t);
        return r;
    }
    r = redirect_log(t, home);
    if (r) {
        snprintf(err, errlen, "cannot open the log file %s: %s; check --home", t->log_path,
                 uv_strerror(r));
        free(t);
        return r;
    }
    log_info(&ctx->lg, "terminal UI started; log lines go to this file while it runs");

    /* Before ncurses starts, so it leaves SIGWINCH to us. */
    init_handles(t, ctx->loop);
    t->handles = 3;
    uv_signal_start(&t->winch, on_winch, SIGWINCH);

    t->scr = newterm(NULL, stdout, stdin);
    if (!t->scr) {
        snprintf(err, errlen, "cannot start the terminal UI for TERM=%s; set TERM or use --ui line",
                 getenv("TERM") ? getenv("TERM") : "(unset)");
        restore_terminal(t); /* puts stderr back */
        t->closing = 1;
        uv_close((uv_handle_t *)&t->winch, on_closed);
        uv_close((uv_handle_t *)&t->repaint, on_closed);
        uv_close((uv_handle_t *)&t->countdown, on_closed);
        return UV_EINVAL;
    }
    set_term(t->scr);
    t->active = 1;
    cbreak(); /* Ctrl-C stays a signal: uv_signal turns it into a clean quit */
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    nodelay(stdscr, TRUE);
    set_escdelay(25);
    mouseinterval(0); /* press and release as they come: no click timer */
    if (t->conf.colors && has_colors()) {
        start_color();
        use_default_colors();
        static const short pal[] = {COLOR_RED, COLOR_GREEN, COLOR_YELLOW, COLOR_BLUE,
                                    COLOR_MAGENTA, COLOR_CYAN};
        for (short i = 0; i < 6; i++)
            init_pair((short)(i + 1), pal[i], -1);
        t->colors = 6;
    }
    define_key("\033[200~", TUI_KEY_PASTE_BEGIN);
    define_key("\033[201~", TUI_KEY_PASTE_END);
    /* Alt-Left/Right as xterm and tmux send them (terminfo's kLFT3 and
     * kRIT3, when it has them); Esc then Left (rxvt) is Alt too. */
    define_key("\033[1;3D", TUI_KEY_ALT_LEFT);
    define_key("\033[1;3C", TUI_KEY_ALT_RIGHT);
    const char *km = tigetstr("kmous");
    t->sgr_native = km && km != (char *)-1 && strcmp(km, "\033[<") == 0;
    if (!t->sgr_native)
        define_key("\033[<", TUI_KEY_SGR_MOUSE);
    tui_set_mouse(t, 1);
    raw_out("\033[?2004h"); /* bracketed paste */

    /* uv_poll makes fd 0 non-blocking, and on a terminal fd 0 and fd 1 are
     * usually one open file: a non-blocking stdout could drop screen
     * updates.  ncurses reads only when told the fd is readable anyway. */
    int fl = fcntl(0, F_GETFL);
    r = uv_poll_init(ctx->loop, &t->poll, 0);
    if (r == 0) {
        t->handles++;
        if (fl >= 0)
            fcntl(0, F_SETFL, fl & ~O_NONBLOCK);
        r = uv_poll_start(&t->poll, UV_READABLE | UV_DISCONNECT, on_stdin);
    }
    if (r) {
        snprintf(err, errlen, "cannot watch the terminal for input: %s", uv_strerror(r));
        restore_terminal(t);
        t->closing = 1;
        if (t->handles == 4)
            uv_close((uv_handle_t *)&t->poll, on_closed);
        uv_close((uv_handle_t *)&t->winch, on_closed);
        uv_close((uv_handle_t *)&t->repaint, on_closed);
        uv_close((uv_handle_t *)&t->countdown, on_closed);
        return r;
    }
    uv_prepare_start(&t->repaint, on_repaint);
    tui_conv_info(&t->system, "welcome, %s. Tab or F2 moves to the users panel; click a name "
                  "or press Enter on it to chat. Alt-1..9 switch windows (1 is this one, the "
                  "others are numbered in the panel), Ctrl-R searches the window. /help lists "
                  "the commands and keys.", ctx->user);
    if (ctx->user_note[0]) /* no --user: say which name this is */
        tui_conv_info(&t->system, "%s", ctx->user_note);
    ev_set_frontend(ctx, &tui_frontend, t);
    tui_load_history(t, LINES - 3); /* a screenful each: the pane's rows */
    tui_dirty(t);
    return 0;
}
