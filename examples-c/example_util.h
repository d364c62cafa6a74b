/*
 * example_util.h: the little bit of plumbing the C examples share.
 *
 * Library callbacks run on library threads, and the strings they get are
 * valid only during the callback. So every callback here copies what it is
 * given (strdup) into a "waiter": a mutex + condition variable guarding a
 * list of everything one client received. The main thread then waits, with
 * a timeout, for the entry it expects:
 *
 *     ex_waiter bob;
 *     ex_waiter_init(&bob, "bob");
 *     nim_signaling_client *c = ex_client_new(url, "bob", "", "bob-phone", &bob);
 *     ex_finish(&bob, "login", nim_signaling_login(c, ex_on_result, &bob), NULL);
 *     const char *invite = ex_wait_event(&bob, "INVITE");
 *
 * Requests: pass ex_on_result with the client's waiter as user_data, and
 * call ex_finish right away; keep one request in flight per client (the
 * next result that arrives is taken as the answer).
 *
 * Notification lines are printed by the callbacks as they arrive; a
 * request's "op -> code" line is printed by ex_finish when the main thread
 * collects the result, so it may come after notifications that followed it.
 *
 * Include this header before any other (it selects POSIX.1-2008).
 * Header-only C99; every function is static inline so an example may use
 * any subset of them without "unused function" warnings.
 */
#ifndef EXAMPLE_UTIL_H
#define EXAMPLE_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nim_signaling.h"

/* How long any step may take before the example gives up. */
#define EX_TIMEOUT_MS 10000
/* Requests: the library itself answers 408 after requestTimeoutMs (10 s by
 * default), so wait a little longer to see that answer. */
#define EX_RESULT_TIMEOUT_MS (EX_TIMEOUT_MS + 2000)

/* What an entry of a waiter is. */
enum ex_kind {
    EX_RESULT,       /* a request's result (nim_signaling_result_cb) */
    EX_EVENT,        /* signalingNotify: one event */
    EX_MULTI_SYNC,   /* an ACCEPT/REJECT done on another device */
    EX_MEMBERS_SYNC, /* {"channelInfo","members"} */
    EX_OFFLINE,      /* {"eventList":[...]} after login */
    EX_CHANNELS,     /* {"channels":[...]} after login */
    EX_CONNECTION,   /* {"state","code"} */
    EX_KINDS
};

static const char *const ex_kind_names[EX_KINDS] = {
    "result", "event", "multi-client sync", "members sync",
    "offline events", "channels sync", "connection",
};

typedef struct {
    enum ex_kind kind;
    int32_t code; /* EX_RESULT only */
    char *json;   /* our copy */
    int taken;    /* already returned by a wait */
} ex_entry;

typedef struct {
    const char *name; /* printed as "[name]" */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ex_entry *items;
    size_t len, cap;
} ex_waiter;

/* Prints one line at once (callbacks of different clients may print
 * concurrently on different library threads). */
#define ex_log(name, ...)            \
    do {                             \
        flockfile(stdout);           \
        printf("[%s] ", (name));     \
        printf(__VA_ARGS__);         \
        putchar('\n');               \
        fflush(stdout);              \
        funlockfile(stdout);         \
    } while (0)

static inline void ex_die_oom(void)
{
    fputs("out of memory\n", stderr);
    exit(1);
}

/* Makes room for one more element in a growable array holding `len` of
 * them: doubles *cap (starting at `first`) when it is full. Returns the
 * array, moved or not. */
static inline void *ex_grow(void *items, size_t len, size_t *cap, size_t elem_size, size_t first)
{
    if (len == *cap) {
        size_t n = *cap ? 2 * *cap : first;
        items = realloc(items, n * elem_size);
        if (!items)
            ex_die_oom();
        *cap = n;
    }
    return items;
}

static inline void ex_waiter_init(ex_waiter *w, const char *name)
{
    pthread_condattr_t attr;
    w->name = name;
    w->items = NULL;
    w->len = w->cap = 0;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &attr);
    pthread_condattr_destroy(&attr);
}

/* Only once no callback can use it any more (after the client is freed). */
static inline void ex_waiter_destroy(ex_waiter *w)
{
    size_t i;
    for (i = 0; i < w->len; i++)
        free(w->items[i].json);
    free(w->items);
    w->items = NULL;
    w->len = w->cap = 0;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Copies json (valid only during the callback) into the waiter. */
static inline void ex_push(ex_waiter *w, enum ex_kind kind, int32_t code, const char *json)
{
    char *copy = strdup(json ? json : "null");
    if (!copy)
        ex_die_oom();
    pthread_mutex_lock(&w->mu);
    w->items = ex_grow(w->items, w->len, &w->cap, sizeof *w->items, 16);
    w->items[w->len].kind = kind;
    w->items[w->len].code = code;
    w->items[w->len].json = copy;
    w->items[w->len].taken = 0;
    w->len++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/*
 * Copies the string value of the first "key":"..." in json into out
 * (escapes are copied as they are). Returns 1 if found, 0 if not. Enough
 * for the library's compact JSON and the fields the examples read.
 */
static inline int ex_json_string(const char *json, const char *key, char *out, size_t outsz)
{
    char pattern[64];
    const char *p;
    size_t n = 0;
    if (!json || outsz == 0)
        return 0;
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    p = strstr(json, pattern);
    if (!p)
        return 0;
    for (p += strlen(pattern); *p && *p != '"'; p++) {
        if (*p == '\\' && p[1]) {
            if (n + 1 < outsz)
                out[n++] = *p;
            p++;
        }
        if (n + 1 < outsz)
            out[n++] = *p;
    }
    out[n] = '\0';
    return *p == '"';
}

/* The first entry not taken yet that matches; called with w->mu held. */
static inline ex_entry *ex_find_locked(ex_waiter *w, enum ex_kind kind, const char *has,
                                       const char *lacks)
{
    size_t i;
    for (i = 0; i < w->len; i++) {
        ex_entry *e = &w->items[i];
        if (!e->taken && e->kind == kind && (!has || strstr(e->json, has)) &&
            (!lacks || !strstr(e->json, lacks)))
            return e;
    }
    return NULL;
}

/* 1 if json (may be NULL) has "key":"want"; otherwise says so, returns 0. */
static inline int ex_field_is(ex_waiter *w, const char *json, const char *key, const char *want)
{
    char got[256];
    if (!json)
        return 0;
    if (!ex_json_string(json, key, got, sizeof got)) {
        ex_log(w->name, "FAILED: no \"%s\" in %s", key, json);
        return 0;
    }
    if (strcmp(got, want) != 0) {
        ex_log(w->name, "FAILED: \"%s\" is \"%s\", expected \"%s\"", key, got, want);
        return 0;
    }
    return 1;
}

/*
 * Waits up to timeout_ms for an entry of `kind` not returned before whose
 * JSON contains `has` and does not contain `lacks` (either may be NULL),
 * marks it taken and returns its JSON (owned by the waiter) and, if
 * code_out is not NULL, its code. On timeout prints what was missing and
 * returns NULL.
 */
static inline const char *ex_wait_for_code(ex_waiter *w, enum ex_kind kind, const char *has,
                                           const char *lacks, int timeout_ms, int32_t *code_out)
{
    struct timespec deadline;
    ex_entry *e;
    const char *json = NULL;
    int timed_out = 0;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    for (;;) {
        e = ex_find_locked(w, kind, has, lacks);
        if (e) {
            e->taken = 1;
            json = e->json;
            if (code_out)
                *code_out = e->code;
            break;
        }
        if (timed_out)
            break;
        timed_out = pthread_cond_timedwait(&w->cv, &w->mu, &deadline) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&w->mu);
    if (!json)
        ex_log(w->name, "MISSING after %d ms: %s%s%s%s%s", timeout_ms, ex_kind_names[kind],
               has ? " containing " : "", has ? has : "", lacks ? " without " : "",
               lacks ? lacks : "");
    return json;
}

static inline const char *ex_wait_for(ex_waiter *w, enum ex_kind kind, const char *has,
                                      const char *lacks, int timeout_ms)
{
    return ex_wait_for_code(w, kind, has, lacks, timeout_ms, NULL);
}

/* Waits for a signalingNotify event of the given type ("INVITE", ...). */
static inline const char *ex_wait_event(ex_waiter *w, const char *event_type)
{
    char has[64];
    snprintf(has, sizeof has, "\"eventType\":\"%s\"", event_type);
    return ex_wait_for(w, EX_EVENT, has, NULL, EX_TIMEOUT_MS);
}

/* ex_wait_event, then checks that the event's "key" is `value`. */
static inline const char *ex_expect_event(ex_waiter *w, const char *event_type, const char *key,
                                          const char *value)
{
    const char *ev = ex_wait_event(w, event_type);
    return ex_field_is(w, ev, key, value) ? ev : NULL;
}

/* The nim_signaling_result_cb of every request; user_data is the waiter. */
static inline void ex_on_result(int32_t code, const char *result_json, void *user_data)
{
    ex_push((ex_waiter *)user_data, EX_RESULT, code, result_json);
}

/*
 * Finishes a request: `started` is what the request function returned
 * (it was called with ex_on_result and w). Waits for the result, prints
 * "[name] op -> code json" and returns the code; -1 on timeout. The
 * result JSON (owned by the waiter) goes to *json_out if not NULL.
 */
static inline int32_t ex_finish(ex_waiter *w, const char *op, int32_t started,
                                const char **json_out)
{
    const char *json;
    int32_t code = -1;
    if (json_out)
        *json_out = NULL;
    if (started != NIM_SIGNALING_OK) {
        ex_log(w->name, "%s -> not started: %d", op, (int)started);
        return started;
    }
    json = ex_wait_for_code(w, EX_RESULT, NULL, NULL, EX_RESULT_TIMEOUT_MS, &code);
    if (!json) {
        ex_log(w->name, "%s -> no result", op);
        return -1;
    }
    ex_log(w->name, "%s -> %d %s", op, (int)code, json);
    if (json_out)
        *json_out = json;
    return code;
}

/* ex_finish, and 1 if the code is 200; otherwise says so and returns 0. */
static inline int ex_ok(ex_waiter *w, const char *op, int32_t started, const char **json_out)
{
    int32_t code = ex_finish(w, op, started, json_out);
    if (code != NIM_SIGNALING_OK)
        ex_log(w->name, "FAILED: %s gave %d, expected 200", op, (int)code);
    return code == NIM_SIGNALING_OK;
}

/* Notification callbacks: print the line, keep a copy. */
static inline void ex_note(void *user_data, enum ex_kind kind, const char *json)
{
    ex_waiter *w = (ex_waiter *)user_data;
    char what[32] = "";
    if (kind == EX_EVENT || kind == EX_MULTI_SYNC)
        ex_json_string(json, "eventType", what, sizeof what);
    else if (kind == EX_CONNECTION)
        ex_json_string(json, "state", what, sizeof what);
    ex_log(w->name, "%s%s%s %s", ex_kind_names[kind], what[0] ? " " : "", what, json);
    ex_push(w, kind, 0, json);
}
static inline void ex_on_event(const char *j, void *ud) { ex_note(ud, EX_EVENT, j); }
static inline void ex_on_multi_sync(const char *j, void *ud) { ex_note(ud, EX_MULTI_SYNC, j); }
static inline void ex_on_members_sync(const char *j, void *ud) { ex_note(ud, EX_MEMBERS_SYNC, j); }
static inline void ex_on_offline(const char *j, void *ud) { ex_note(ud, EX_OFFLINE, j); }
static inline void ex_on_channels(const char *j, void *ud) { ex_note(ud, EX_CHANNELS, j); }
static inline void ex_on_connection(const char *j, void *ud) { ex_note(ud, EX_CONNECTION, j); }

/* Registers every notification callback of `c`, all feeding `w`. */
static inline void ex_watch(nim_signaling_client *c, ex_waiter *w)
{
    nim_signaling_reg_online_notify_cb(c, ex_on_event, w);
    nim_signaling_reg_multi_client_sync_notify_cb(c, ex_on_multi_sync, w);
    nim_signaling_reg_members_sync_cb(c, ex_on_members_sync, w);
    nim_signaling_reg_offline_notify_cb(c, ex_on_offline, w);
    nim_signaling_reg_channels_sync_cb(c, ex_on_channels, w);
    nim_signaling_reg_connection_state_cb(c, ex_on_connection, w);
}

/*
 * Creates a client for account/device on url with every notification
 * going to w. NULL (and a printed reason) on failure. Account, token and
 * device must not need JSON escaping.
 */
static inline nim_signaling_client *ex_client_new(const char *url, const char *account,
                                                  const char *token, const char *device,
                                                  ex_waiter *w)
{
    char config[1024];
    nim_signaling_client *c = NULL;
    int32_t rc;
    snprintf(config, sizeof config,
             "{\"serverUrl\":\"%s\",\"account\":\"%s\",\"token\":\"%s\",\"deviceId\":\"%s\"}",
             url, account, token, device);
    rc = nim_signaling_client_new(config, &c);
    if (rc != NIM_SIGNALING_OK) {
        ex_log(w->name, "client_new -> %d (config %s)", (int)rc, config);
        return NULL;
    }
    ex_watch(c, w);
    return c;
}

/* Starts an embedded server; NULL (and a printed reason) on failure. */
static inline nim_signaling_server *ex_server_start(const char *config_json)
{
    nim_signaling_server *srv = NULL;
    int32_t rc = nim_signaling_server_start(config_json, &srv);
    if (rc != NIM_SIGNALING_OK) {
        ex_log("server", "start %s -> %d", config_json, (int)rc);
        return NULL;
    }
    ex_log("server", "nim-signaling %s listening on %s", nim_signaling_version(),
           nim_signaling_server_url(srv));
    return srv;
}

static inline void ex_sleep_ms(int ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

#endif /* EXAMPLE_UTIL_H */
