/* test_peer_tui_conf: HOME/parley.conf as peer/ui/tui_conf.c reads it: the
 * defaults without a file, every setting in both spellings of a line
 * ("NAME = VALUE", "NAME VALUE"), quotes keeping spaces, and each bad line
 * refused with the file, its line number and what would be right. */
#include "test.h"
#include "ui/tui_impl.h"

#include <locale.h>

static char path[256];

static void write_file(const char *text) {
    ASSERT(setlocale(LC_CTYPE, "C.UTF-8") != NULL);
    snprintf(path, sizeof path, "/tmp/parley-tui-conf-%d.conf", (int)getpid());
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void no_file_gives_the_defaults(void) {
    tui_conf c;
    char err[512] = "";
    ASSERT_EQ(tui_conf_read("/nonexistent/parley.conf", &c, err, sizeof err), 0);
    ASSERT_EQ(c.colors, 1);
    ASSERT_EQ(c.bell, BELL_ON);
    ASSERT_STR(c.time_format, "%H:%M:%S");
    ASSERT_EQ(c.nbinds, 0);
    ASSERT_STR(err, "");
}

static void every_setting_is_read(void) {
    write_file("# a comment\n"
               "\n"
               "  colors = off  \n"
               "bell mentions\n"
               "time-format=\" %H:%M \"\n"
               "key-search = Ctrl-F\n"
               "key-prev-window = alt-P\n"
               "key-next-window = F5\r\n"
               "key-clear = M-k\n"
               "colours on\n");
    tui_conf c;
    char err[512] = "";
    ASSERT_EQ(tui_conf_read(path, &c, err, sizeof err), 0);
    unlink(path);
    ASSERT_EQ(c.colors, 1); /* the last line wins */
    ASSERT_EQ(c.bell, BELL_MENTIONS);
    ASSERT_STR(c.time_format, " %H:%M ");
    ASSERT_EQ(c.nbinds, 4);
    ASSERT(!c.binds[0].meta && !c.binds[0].is_code && c.binds[0].ch == ('f' & 0x1f));
    ASSERT_EQ(c.binds[0].action, ACT_SEARCH);
    ASSERT(c.binds[1].meta && c.binds[1].ch == 'p' && c.binds[1].action == ACT_PREV_WINDOW);
    ASSERT(c.binds[2].is_code && c.binds[2].ch == (wint_t)KEY_F(5));
    ASSERT_EQ(c.binds[2].action, ACT_NEXT_WINDOW);
    ASSERT(c.binds[3].meta && c.binds[3].ch == 'k' && c.binds[3].action == ACT_CLEAR);
}

static void bad_lines_name_the_file_and_line(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"colors = maybe\n", "line 1: colors maybe is not on or off; fix or remove the line"},
        {"# one\nbell = loud\n", "line 2: bell loud is not on, off or mentions;"},
        {"\n\ncolour = on\n", "line 3: unknown setting colour; the settings are tracker, colors, "},
        {"bell\n", "line 1: bell needs a value (bell = VALUE);"},
        {"= on\n", "line 1: a line is NAME = VALUE;"},
        {"time-format = %H\x01\n", "line 1: time-format has a control character;"},
        {"time-format = %H:%M:%S %H:%M:%S %H:%M:%S %H:%M:%S\n", "gives more than 32 columns"},
        {"key-search = Ctrl-A\n", "key-search Ctrl-A: Ctrl-A moves to the start of the line"},
        {"key-search = Ctrl-1\n", "key-search Ctrl-1: after Ctrl- comes one letter"},
        {"key-clear = Ctrl-R\n", "key-clear Ctrl-R: Ctrl-R searches already"},
        {"key-next-window = Alt-3\n", "Alt and a digit switch windows"},
        {"key-next-window = F2\n", "F2 moves to the users panel already"},
        {"key-next-window = Shift-X\n", "a key is Ctrl-LETTER, Alt-LETTER or F1 to F12"},
        {"tracker = example.org:99999\n", "tracker example.org:99999 is not HOST:PORT (the port is out of range"},
        {"tracker = [::1\n", "tracker [::1 is not HOST:PORT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file(cases[i].text);
        tui_conf c;
        char err[512] = "";
        int r = tui_conf_read(path, &c, err, sizeof err);
        if (r != UV_EINVAL)
            fprintf(stderr, "%s: accepted\n", cases[i].text);
        ASSERT_EQ(r, UV_EINVAL);
        if (strncmp(err, path, strlen(path)) != 0 || !strstr(err, cases[i].want))
            fprintf(stderr, "%s: got \"%s\", want \"%s\"\n", cases[i].text, err, cases[i].want);
        ASSERT(strncmp(err, path, strlen(path)) == 0 && strstr(err, cases[i].want));
        ASSERT(strstr(err, "; fix or remove the line") != NULL);
    }
    write_file("");
    FILE *f = fopen(path, "w"); /* fputs stops at a NUL: by hand */
    fwrite("bell on\n\0", 1, 9, f);
    fclose(f);
    tui_conf c;
    char err[512];
    ASSERT_EQ(tui_conf_read(path, &c, err, sizeof err), UV_EINVAL);
    ASSERT(strstr(err, "contains a NUL byte") != NULL);
    unlink(path);
}

int main(int argc, char **argv) {
    static const test_entry tests[] = {
        {"no_file_gives_the_defaults", no_file_gives_the_defaults},
        {"every_setting_is_read", every_setting_is_read},
        {"bad_lines_name_the_file_and_line", bad_lines_name_the_file_and_line},
    };
    return test_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
