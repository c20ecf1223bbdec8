/* test_peer_tui_text: peer/ui/tui_text.c's line breaker, the one every
 * wrapped text of the terminal UI goes through: breaks at spaces, a
 * hanging indent, no row starting with a space, a word split only when it
 * is wider than a row, a fingerprint kept whole whenever it fits, and
 * widths (accents, CJK) measured in columns, not bytes.  And the finding
 * of text the search and the mentions use (case ignored, beyond ASCII
 * too; a mention a whole word), and the date line's words. */
#include "test.h"
#include "ui/tui_impl.h"

#include <locale.h>

/* The rows as "COL|TEXT" lines, for one comparison per case. */
static const char *rows(const char *s, int cols, int indent) {
    static char out[4096];
    size_t o = 0;
    tui_wrap w;
    tui_wrap_start(&w, s, strlen(s), cols, indent);
    size_t a, b;
    int c;
    while (tui_wrap_next(&w, &a, &b, &c)) {
        ASSERT(o + (b - a) + 16 < sizeof out);
        o += (size_t)snprintf(out + o, sizeof out - o, "%d|%.*s\n", c, (int)(b - a), s + a);
        ASSERT_INT(c + tui_width(s + a, b - a), <=, cols); /* every row fits */
    }
    out[o] = '\0';
    return out;
}

static void setup(void) { ASSERT(setlocale(LC_CTYPE, "C.UTF-8") != NULL); }

/* Texts wrapped at a width and indent, and the rows each must give (the
 * rules in general: random_texts_keep_the_rules). */
static const struct {
    const char *s;
    int cols, indent;
    const char *want;
} cases[] = {
    /* breaks at spaces, the rest under the hanging indent */
    {"the quick brown fox jumps", 11, 2, "0|the quick\n2|brown fox\n2|jumps\n"},
    /* the spaces at a break are dropped: no row starts with one */
    {"a    b", 3, 1, "0|a\n1|b\n"},
    /* the row after a '\n' keeps its leading spaces: they are the text's */
    {"ab\n  cd", 10, 2, "0|ab\n2|  cd\n"},
    /* spaces overflowing just before a '\n' make no empty row */
    {"abc       \nd", 5, 0, "0|abc\n0|d\n"},
    /* a word too wide for any row starts where it is and fills the rows */
    {"hi abcdefghijklmn", 10, 2, "0|hi abcdefg\n2|hijklmn\n"},
    /* punctuation comes off before a word is cut elsewhere ("(FP)") */
    {"(aaaaaaaaaa)", 5, 0, "0|(\n0|aaaaa\n0|aaaaa\n0|)\n"},
    /* a fingerprint (29 columns) that fits under the indent moves down
     * whole, its comma with it */
    {"the key is ab12-cd34-ef56-0123-4567-89ab, and more", 40, 8,
     "0|the key is\n8|ab12-cd34-ef56-0123-4567-89ab,\n8|and more\n"},
    /* one that fits a row only from further left starts further left, and
     * the comma that would make it too wide comes off instead */
    {"the key is ab12-cd34-ef56-0123-4567-89ab, and more", 29, 8,
     "0|the key is\n0|ab12-cd34-ef56-0123-4567-89ab\n8|, and more\n"},
};

static void cases_give_their_rows(void) {
    setup();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ASSERT_STR(rows(cases[i].s, cases[i].cols, cases[i].indent), cases[i].want);
}

/* Narrower than a word: a fingerprint breaks between its groups only, CJK
 * between characters (two columns each), and a glyph wider than the row
 * still moves on, one a row. */
static void narrow_rows_cut_between_parts(void) {
    setup();
    ASSERT_STR(rows("ab12-cd34-ef56-0123-4567-89ab", 12, 0),
               "0|ab12-cd34-\n0|ef56-0123-\n0|4567-89ab\n");
    ASSERT_STR(rows("\xe5\xb1\xb1\xe7\x94\xb0\xe5\xb1\xb1\xe7\x94\xb0\xe5\xb1\xb1", 5, 0),
               "0|\xe5\xb1\xb1\xe7\x94\xb0\n0|\xe5\xb1\xb1\xe7\x94\xb0\n0|\xe5\xb1\xb1\n");
    tui_wrap w;
    const char *wide = "\xe5\xb1\xb1\xe5\xb1\xb1";
    tui_wrap_start(&w, wide, strlen(wide), 1, 0);
    size_t a, b;
    int c, n = 0;
    while (tui_wrap_next(&w, &a, &b, &c)) {
        ASSERT_EQ(b - a, 3);
        n++;
    }
    ASSERT_EQ(n, 2);
}

/* Random texts of words, runs of spaces, newlines, accents, CJK and
 * fingerprint-like groups at random widths: whatever the text, every row
 * fits, nothing but spaces at breaks is lost, no wrapped row starts with a
 * space or is empty, and a word that fits a row is never split. */
static void random_texts_keep_the_rules(void) {
    setup();
    static const char *const atoms[] = {"a", "bb", "word", "longerword", "\xc3\xa9",
                                        "\xe5\xb1\xb1", "-", "ab12-", ",", "(", " ", "  ",
                                        " ", "\n"};
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        char s[512];
        size_t n = 0;
        int parts = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 40;
        for (int k = 0; k < parts; k++) {
            const char *at = atoms[((seed = seed * 1103515245u + 12345u) >> 16) %
                                   (sizeof atoms / sizeof *atoms)];
            size_t l = strlen(at);
            if (n + l >= sizeof s)
                break;
            memcpy(s + n, at, l);
            n += l;
        }
        s[n] = '\0';
        int cols = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 30;
        int indent = (int)((seed = seed * 1103515245u + 12345u) >> 16) % 12;
        tui_wrap w;
        tui_wrap_start(&w, s, n, cols, indent);
        size_t a, b, expect = 0, nrows = 0, starts[600], ends[600];
        int c;
        while (tui_wrap_next(&w, &a, &b, &c)) {
            ASSERT(nrows < 600);
            starts[nrows] = a;
            ends[nrows++] = b;
            ASSERT(a >= expect && b >= a && b <= n);
            for (size_t i = expect; i < a; i++) /* only spaces (or the '\n') dropped */
                ASSERT(s[i] == ' ' || s[i] == '\n');
            for (size_t i = a; i < b; i++)
                ASSERT(s[i] != '\n');
            int width = tui_width(s + a, b - a);
            unsigned cp;
            int w0 = 0;
            if (b > a)
                tui_char(s + a, b - a, &cp, &w0);
            ASSERT(c + width <= cols || (width == w0 && w0 > cols)); /* or one glyph too wide */
            if (a > 0 && s[a - 1] != '\n' && b > a)
                ASSERT(s[a] != ' '); /* a wrapped row starts with text */
            if (b == a) /* empty rows: only an empty line of the text */
                ASSERT(a == 0 || s[a - 1] == '\n');
            expect = b;
        }
        for (size_t i = expect; i < n; i++)
            ASSERT(s[i] == ' ' || s[i] == '\n');
        /* every word that fits a row lies within one row */
        for (size_t i = 0; i < n;) {
            if (s[i] == ' ' || s[i] == '\n') {
                i++;
                continue;
            }
            size_t j = i;
            while (j < n && s[j] != ' ' && s[j] != '\n')
                j++;
            if (tui_width(s + i, j - i) <= cols) {
                int inside = 0;
                for (size_t r = 0; r < nrows; r++)
                    inside |= starts[r] <= i && j <= ends[r];
                if (!inside)
                    fprintf(stderr, "split: \"%.*s\" in \"%s\" (cols %d, indent %d)\n",
                            (int)(j - i), s + i, s, cols, indent);
                ASSERT(inside);
            }
            i = j;
        }
    }
}

static void find_ignores_case(void) {
    setup();
    size_t a, b;
    const char *s = "An \xc3\x89MILE and a NEEDLE";
    ASSERT_EQ(tui_find(s, strlen(s), "needle", 6, &a, &b), 0);
    ASSERT_EQ(a, 16); /* bytes: É is two */
    ASSERT_EQ(b, 22);
    ASSERT_EQ(tui_find(s, strlen(s), "\xc3\xa9mile", 6, &a, &b), 0); /* é finds É */
    ASSERT_EQ(a, 3);
    ASSERT_EQ(b, 9);
    ASSERT_EQ(tui_find(s, strlen(s), "needles", 7, &a, &b), -1); /* past the end */
    ASSERT_EQ(tui_find(s, strlen(s), "", 0, &a, &b), -1);
    ASSERT_EQ(tui_find(s, 5, "mile", 4, &a, &b), -1);              /* within n only */
}

static void a_mention_is_a_whole_word(void) {
    setup();
    static const struct {
        const char *text;
        int yes;
    } words[] = {
        {"alice", 1}, {"hey Alice!", 1}, {"ALICE: look", 1}, {"@alice, hi", 1},
        {"alice's turn", 1}, {"(alice)", 1}, {"malice", 0}, {"alicex", 0}, {"alice_b", 0},
        {"alice2", 0}, {"\xc3\xa9" "alice", 0}, {"malice and then alice", 1}, {"", 0},
        {"ali ce", 0},
    };
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        int got = tui_mentions(words[i].text, strlen(words[i].text), "alice");
        if (got != words[i].yes)
            fprintf(stderr, "\"%s\": %d\n", words[i].text, got);
        ASSERT_EQ(got, words[i].yes);
    }
    ASSERT_EQ(tui_mentions("hi \xc3\x89mile.", 10, "\xc3\xa9mile"), 1);
    ASSERT_EQ(tui_mentions("bob! there", 10, "bob!"), 1); /* a name may end in punctuation */
}

static void date_lines_say_the_day(void) {
    struct tm tm = {.tm_year = 126, .tm_mon = 11, .tm_mday = 2, .tm_wday = 3};
    char out[80];
    tui_date_line(&tm, out, sizeof out);
    ASSERT_STR(out, "-- Wednesday, 2 December 2026 --");
    tm = (struct tm){.tm_year = 127, .tm_mon = 0, .tm_mday = 31, .tm_wday = 0};
    tui_date_line(&tm, out, sizeof out);
    ASSERT_STR(out, "-- Sunday, 31 January 2027 --");
}

int main(int argc, char **argv) {
    static const test_entry tests[] = {
        {"cases_give_their_rows", cases_give_their_rows},
        {"narrow_rows_cut_between_parts", narrow_rows_cut_between_parts},
        {"random_texts_keep_the_rules", random_texts_keep_the_rules},
        {"find_ignores_case", find_ignores_case},
        {"a_mention_is_a_whole_word", a_mention_is_a_whole_word},
        {"date_lines_say_the_day", date_lines_say_the_day},
    };
    return test_main(argc, argv, tests, sizeof tests / sizeof *tests);
}
