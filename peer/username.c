/* username: HOME/user is one line, the name as typed.  It is read once at
 * start and written after a registration under another name than the one
 * it holds; never on the loop's hot path. */
#include "username.h"

#include "name.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

static int path_of(const char *home, const char *file, char *out, size_t outlen) {
    int n = snprintf(out, outlen, "%s/%s", home, file);
    return n < 0 || (size_t)n >= outlen ? UV_ENAMETOOLONG : 0;
}

int uname_default(const char *home, char *out, uname_source *src, char *err, size_t errlen) {
    char path[4200], line[256];
    const char *why;
    if (path_of(home, "user", path, sizeof path) == 0) {
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(line, 1, sizeof line - 1, f);
            fclose(f);
            line[n] = '\0';
            line[strcspn(line, "\n")] = '\0';
            n = strlen(line);
            if (name_check(line, n, &why)) {
                snprintf(err, errlen, "%s holds no valid user name (%s); pass --user NAME (it "
                         "replaces the file once registered)", path, why);
                return UV_EINVAL;
            }
            memcpy(out, line, n + 1);
            *src = UNAME_LAST_RUN;
            return 0;
        }
    }
    const char *login = getenv("USER");
    if (!login || name_check(login, strlen(login), &why))
        return UV_ENOENT;
    snprintf(out, NAME_BUFLEN, "%s", login);
    *src = UNAME_LOGIN;
    return 0;
}

int uname_remember(const char *home, const char *name) {
    char path[4200], tmp[4300], now[NAME_BUFLEN + 2];
    if (path_of(home, "user", path, sizeof path))
        return UV_ENAMETOOLONG;
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(now, 1, sizeof now - 1, f);
        fclose(f);
        now[n] = '\0';
        now[strcspn(now, "\n")] = '\0';
        if (strcmp(now, name) == 0)
            return 0; /* nothing to change */
    }
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    size_t len = strlen(name);
    int r = 0;
    if (write(fd, name, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd))
        r = -errno;
    if (close(fd) && !r)
        r = -errno;
    if (!r && rename(tmp, path))
        r = -errno;
    if (r)
        unlink(tmp);
    return r;
}
