/* config: the tracker's --config file, the command-line flags one per line
 * without their dashes ("listen 127.0.0.1:5960", "ttl 60"), '#' comments
 * and blank lines.  This file only reads and splits it; main.c checks each
 * line with the same code as the command line, so a bad line fails at
 * start with the file name and line number, and command-line flags given
 * after it override it. */
#ifndef PARLEY_CONFIG_H
#define PARLEY_CONFIG_H

#include <stddef.h>

#define CONF_MAX_BYTES (1 << 20) /* a config file is small; refuse anything huge */

/* One line as argv words: argv[0] = "parley-tracker", argv[1] = "--NAME",
 * argv[2] = VALUE when the line has one (argc 2 or 3). */
typedef struct conf_line {
    int line;      /* 1-based line number in the file */
    int argc;
    char *argv[4]; /* NULL-terminated, pointing into the conf_file */
} conf_line;

typedef struct conf_file {
    const char *path;
    char *text;       /* the rewritten text the words point into */
    conf_line *lines;
    size_t nlines;
} conf_file;

/* Reads path into *out (a value: free it with conf_free).  0, or a negative
 * error with a message naming the file (and the line, for a line that is
 * not "NAME" or "NAME VALUE") in err. */
int conf_read(const char *path, conf_file *out, char *err, size_t errlen);

/* Frees what conf_read allocated; a zeroed conf_file is a no-op. */
void conf_free(conf_file *cf);

#endif
