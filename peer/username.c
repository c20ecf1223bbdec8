/* username: HOME/user is one line, the name as typed.  It is read once at
 * start, before the loop runs; it is written after a registration, on
 * libuv's threadpool (an fsync must not stall the loop), and only when it
 * holds another name. */
#include "username.h"

#include "name.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int path_of(const char *home, char *out, size_t outlen) {
    int n = snprintf(out, outlen, "%s/user", home);
    return n < 0 || (size_t)n >= outlen ? UV_ENAMETOOLONG : 0;
}

/* The first line of path, without its newline; 0, or -1 when it cannot be
 * read. */
static int read_line(const char *path, char *line, size_t linelen) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, linelen - 1, f);
    fclose(f);
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    return 0;
}

int uname_default(const char *home, char *out, uname_source *src, char *err, size_t errlen) {
    char path[4200], line[256];
    const char *why;
    /* An empty file (a crash between its creation and its write) is no
     * name: the login name serves, and the next registration rewrites it. */
    if (path_of(home, path, sizeof path) == 0 && read_line(path, line, sizeof line) == 0 &&
        line[0]) {
        size_t n = strlen(line);
        if (name_check(line, n, &why)) {
            snprintf(err, errlen, "%s holds no valid user name (%s); pass --user NAME (it "
                     "replaces the file once registered)", path, why);
            return UV_EINVAL;
        }
        memcpy(out, line, n + 1);
        *src = UNAME_LAST_RUN;
        return 0;
    }
    const char *login = getenv("USER");
    if (!login || name_check(login, strlen(login), &why))
        return UV_ENOENT;
    snprintf(out, NAME_BUFLEN, "%s", login);
    *src = UNAME_LOGIN;
    return 0;
}

typedef struct remember {
    uv_work_t req;
    const logger *lg;
    int status;
    char path[4200];
    char name[NAME_BUFLEN];
} remember;

/* On the threadpool: touches nothing but its own struct and the file. */
static void write_name(uv_work_t *req) {
    remember *w = req->data;
    char now[NAME_BUFLEN + 2], tmp[4300];
    if (read_line(w->path, now, sizeof now) == 0 && strcmp(now, w->name) == 0)
        return; /* nothing to change */
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", w->path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        w->status = -errno;
        return;
    }
    size_t len = strlen(w->name);
    if (write(fd, w->name, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd))
        w->status = -errno;
    if (close(fd) && !w->status)
        w->status = -errno;
    if (!w->status && rename(tmp, w->path))
        w->status = -errno;
    if (w->status)
        unlink(tmp);
}

static void written(uv_work_t *req, int status) {
    remember *w = req->data;
    if (!status)
        status = w->status;
    if (status)
        log_warn(w->lg, "cannot remember the name %s in %s: %s", w->name, w->path,
                 uv_strerror(status));
    free(w);
}

int uname_remember(uv_loop_t *loop, const char *home, const char *name, const logger *lg) {
    remember *w = calloc(1, sizeof *w);
    if (!w)
        return UV_ENOMEM;
    if (path_of(home, w->path, sizeof w->path)) {
        free(w);
        return UV_ENAMETOOLONG;
    }
    snprintf(w->name, sizeof w->name, "%s", name);
    w->lg = lg;
    w->req.data = w;
    int r = uv_queue_work(loop, &w->req, write_name, written);
    if (r)
        free(w);
    return r;
}
