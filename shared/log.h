/* log: one line per event on stderr, "TIME LEVEL prog: text".  The logger is
 * a plain value kept in each process's context; nothing here is global. */
#ifndef PARLEY_LOG_H
#define PARLEY_LOG_H

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

typedef struct logger {
    int level;          /* messages above this level are dropped */
    const char *prog;   /* "parley-tracker" or "parley" */
} logger;

/* Parses "error", "warn", "info" or "debug".  0 or UV_EINVAL. */
int log_level_parse(const char *s, int *level);

void log_at(const logger *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(lg, ...) log_at((lg), LOG_ERROR, __VA_ARGS__)
#define log_warn(lg, ...)  log_at((lg), LOG_WARN, __VA_ARGS__)
#define log_info(lg, ...)  log_at((lg), LOG_INFO, __VA_ARGS__)
#define log_debug(lg, ...) log_at((lg), LOG_DEBUG, __VA_ARGS__)

#endif
