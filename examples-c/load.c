/*
 * load: a load generator for call setups that goes through the C ABI only
 * (include/nim_signaling.h), to measure what a C application gets.
 *
 *   load [--url ws://HOST:PORT] [--pairs N] [--idle M] [--rate R]
 *        [--duration S] [--warmup S] [--server-pid PID] [--timeout-ms MS]
 *        [--login-concurrency N] [--no-receipts] [--json]
 *
 * N caller/callee pairs of clients make calls; M more clients log in and
 * stay idle. One call setup:
 *
 *   caller nim_signaling_call {type, account: callee, requestId}
 *     -> the callee's online callback gets INVITE; from that callback it
 *        calls nim_signaling_accept {channelId, account: caller, requestId,
 *        autoJoin: true}
 *     -> the caller's online callback gets ACCEPT; from that callback it
 *        calls nim_signaling_close {channelId}
 *     -> the callee's online callback gets ROOM_CLOSE: the setup is done.
 *
 * Every step runs in the library's callbacks, as an application's would;
 * the main thread only starts setups (open loop), watches the deadlines
 * and reads the clocks.
 *
 * --rate R > 0 starts R setups per second over all pairs (open loop): a
 * start that falls due while every pair is busy is counted as missed, not
 * queued. --rate 0 (the default) runs every pair back to back, flat out.
 *
 * Measured: the --duration seconds after --warmup. A setup counts when its
 * ROOM_CLOSE arrives inside that window, a failure when it happens inside
 * it. Reported: setups/s; failures by step and code ("timeout:STEP": the
 * step's notification did not come within --timeout-ms, which is also the
 * clients' requestTimeoutMs); latency from calling nim_signaling_call to
 * the callee's INVITE callback and to its ROOM_CLOSE callback (µs, exact
 * nearest-rank quantiles); CPU time per setup of this process (getrusage)
 * and, with --server-pid, of the server (/proc/PID/stat utime + stime),
 * both read at the start and the end of the window; resident memory
 * (VmRSS) of both before the clients connect, once they are logged in, and
 * at the end; and, to tell how quiet the machine was, what the rest of it
 * used in the window (busy CPU less this process and the server's) and how
 * much the hypervisor stole (/proc/stat).
 *
 * Without --url a server is started inside this process
 * (nim_signaling_server_start); its CPU and memory are then this
 * process's. For the client alone run nim-signaling-server apart and pass
 * --url and --server-pid (scripts/c-load.sh does, pinning each to a core).
 *
 * Every client connects from 127.0.0.1 (the C client has no source address
 * setting), so past ~28,000 clients (the ephemeral port range) connections
 * fail. Each client is a file descriptor (two with the embedded server):
 * the soft limit is raised to the hard one (ulimit -n). An external
 * server's own limits apply: raise its maxConnectionsPerIp,
 * maxPendingLoginsPerIp and maxRequestsPerSecond (docs/CONFIG.md).
 *
 * Exits 0 after printing the report, 1 when the clients could not log in
 * or the server could not start, 64 for bad arguments.
 */
#include "example_util.h"

#include <sys/resource.h>
#include <unistd.h>

#define NS_PER_S 1000000000LL
#define NS_PER_MS 1000000LL
#define MAX_FAILURE_KINDS 64
/* How often the main thread looks for setups past their deadline. */
#define SCAN_NS (10 * NS_PER_MS)

/* ---- options ---------------------------------------------------------- */

static struct {
    const char *url; /* NULL: embedded server */
    long pairs, idle;
    double rate, duration, warmup;
    long server_pid; /* 0: none */
    long timeout_ms;
    long login_concurrency;
    int receipts;
    int json;
} opt = {NULL, 200, 0, 0.0, 10.0, 2.0, 0, 5000, 64, 1, 0};

static int usage(void)
{
    fputs("usage: load [options]\n"
          "  --url URL               ws://host:port of a running server (default: start one\n"
          "                          in this process)\n"
          "  --pairs N               caller/callee pairs making calls (200)\n"
          "  --idle M                more clients, logged in and idle (0)\n"
          "  --rate R                setups per second, open loop; 0: each pair back to back (0)\n"
          "  --duration S            measured seconds (10)\n"
          "  --warmup S              seconds of load before measuring (2)\n"
          "  --server-pid PID        read the server's CPU time and memory from /proc/PID\n"
          "  --timeout-ms MS         request timeout and the wait for each notification (5000)\n"
          "  --login-concurrency N   logins in progress at once (64)\n"
          "  --no-receipts           clients do not acknowledge INVITEs (inviteReceipts false)\n"
          "  --json                  print the report as one JSON object\n",
          stderr);
    return 64;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi))
        return 0;
    *out = v;
    return 1;
}

static int parse_args(int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--no-receipts")) {
            opt.receipts = 0;
            continue;
        }
        if (!strcmp(a, "--json")) {
            opt.json = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "load: %s needs a value\n", a);
            return 0;
        }
        i++;
        if (!strcmp(a, "--url")) {
            /* It goes into JSON strings as it is. */
            opt.url = v;
            ok = (!strncmp(v, "ws://", 5) || !strncmp(v, "wss://", 6)) && !strpbrk(v, "\"\\") &&
                 strlen(v) < 512;
        }
        else if (!strcmp(a, "--pairs"))
            ok = parse_long(v, 1, 100000, &opt.pairs);
        else if (!strcmp(a, "--idle"))
            ok = parse_long(v, 0, 1000000, &opt.idle);
        else if (!strcmp(a, "--rate"))
            ok = parse_double(v, 0, 1e7, &opt.rate);
        else if (!strcmp(a, "--duration"))
            ok = parse_double(v, 0.1, 86400, &opt.duration);
        else if (!strcmp(a, "--warmup"))
            ok = parse_double(v, 0, 86400, &opt.warmup);
        else if (!strcmp(a, "--server-pid"))
            ok = parse_long(v, 1, 1L << 30, &opt.server_pid);
        else if (!strcmp(a, "--timeout-ms"))
            ok = parse_long(v, 1, 3600000, &opt.timeout_ms);
        else if (!strcmp(a, "--login-concurrency"))
            ok = parse_long(v, 1, 100000, &opt.login_concurrency);
        else {
            fprintf(stderr, "load: unknown option %s\n", a);
            return 0;
        }
        if (!ok) {
            fprintf(stderr, "load: bad value for %s: %s\n", a, v);
            return 0;
        }
    }
    return 1;
}

/* ---- clocks and /proc ------------------------------------------------- */

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * NS_PER_S + t.tv_nsec;
}

static void sleep_until_ns(long long t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(t / NS_PER_S);
    ts.tv_nsec = (long)(t % NS_PER_S);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

/* This process's user + system CPU time (µs). */
static long long self_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

/* utime + stime of a process (µs, clock-tick resolution), -1 if unknown. */
static long long proc_cpu_us(long pid)
{
    char path[64], buf[2048], *p;
    unsigned long long utime, stime;
    size_t n;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces: fields count from the
     * last ')'. utime and stime are fields 14 and 15. */
    p = strrchr(buf, ')');
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return -1;
    return (long long)((utime + stime) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* VmRSS (KiB) of a process (pid 0: this one), -1 if unknown. */
static long rss_kib(long pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;
    if (pid)
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
    else
        snprintf(path, sizeof path, "/proc/self/status");
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* The whole machine's busy and stolen CPU time so far (µs, all CPUs;
 * /proc/stat), to tell what else ran during the window. */
static void machine_cpu_us(long long *busy, long long *steal)
{
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, st = 0;
    long long tick = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/stat", "r");
    *busy = *steal = -1;
    if (!f)
        return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
               &iowait, &irq, &softirq, &st) >= 7) {
        *busy = (long long)(user + nice + sys + irq + softirq) * 1000000LL / tick;
        *steal = (long long)st * 1000000LL / tick;
    }
    fclose(f);
}

/* Raises the soft limit of open files to the hard one; returns the limit. */
static long long raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) != 0)
        return 0;
    if (r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
        getrlimit(RLIMIT_NOFILE, &r);
    }
    return r.rlim_cur == RLIM_INFINITY ? (long long)1 << 40 : (long long)r.rlim_cur;
}

/* ---- statistics ------------------------------------------------------- */

typedef struct {
    uint32_t *v;
    size_t len, cap;
} samples;

static void samples_add(samples *s, long long ns)
{
    long long us = ns / 1000;
    s->v = ex_grow(s->v, s->len, &s->cap, sizeof *s->v, 4096);
    s->v[s->len++] = (uint32_t)(us < 0 ? 0 : us > 0xffffffffLL ? 0xffffffffLL : us);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank quantile of sorted samples; 0 when there are none. */
static uint32_t quantile(const samples *s, double q)
{
    size_t rank;
    if (!s->len)
        return 0;
    rank = (size_t)(q * (double)s->len + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->len)
        rank = s->len;
    return s->v[rank - 1];
}

static struct {
    pthread_mutex_t mu;
    long long measure_from, end; /* the window, monotonic ns */
    unsigned long setups;        /* completed inside the window */
    unsigned long second_setups; /* completed since the last progress line */
    unsigned long failed, missed, drops;
    samples invite, setup;
    struct {
        char what[40];
        unsigned long n;
    } failures[MAX_FAILURE_KINDS];
    int failure_kinds;
    int count_drops; /* connection losses count from the end of the logins */
} st = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, {NULL, 0, 0}, {NULL, 0, 0}, {{"", 0}}, 0, 0};

static int in_window(long long t)
{
    return t >= st.measure_from && t < st.end;
}

static void record_setup(long long t_invite, long long t_close, long long started)
{
    pthread_mutex_lock(&st.mu);
    st.second_setups++;
    if (in_window(t_close)) {
        st.setups++;
        samples_add(&st.invite, t_invite - started);
        samples_add(&st.setup, t_close - started);
    }
    pthread_mutex_unlock(&st.mu);
}

static void record_failure(const char *what, long long at)
{
    int i;
    pthread_mutex_lock(&st.mu);
    if (in_window(at)) {
        st.failed++;
        for (i = 0; i < st.failure_kinds; i++)
            if (!strcmp(st.failures[i].what, what))
                break;
        if (i == st.failure_kinds && i < MAX_FAILURE_KINDS) {
            snprintf(st.failures[i].what, sizeof st.failures[i].what, "%s", what);
            st.failure_kinds++;
        }
        if (i < st.failure_kinds)
            st.failures[i].n++;
    }
    pthread_mutex_unlock(&st.mu);
}

/* ---- clients ---------------------------------------------------------- */

/* Run identifier: this run's accounts are its own, so that what a server
 * still remembers of an earlier run (rooms, invitations) does not matter. */
static char run_prefix[32];

static void on_connection_state(const char *json, void *user_data)
{
    (void)user_data;
    if (strstr(json, "\"reconnecting\"") || strstr(json, "\"disconnected\"") ||
        strstr(json, "\"kicked\"")) {
        pthread_mutex_lock(&st.mu);
        if (st.count_drops)
            st.drops++;
        pthread_mutex_unlock(&st.mu);
    }
}

static nim_signaling_client *client_new(const char *url, const char *account)
{
    char cfg[1024];
    nim_signaling_client *c = NULL;
    int32_t rc;
    snprintf(cfg, sizeof cfg,
             "{\"serverUrl\":\"%s\",\"account\":\"%s\",\"deviceId\":\"load\","
             "\"requestTimeoutMs\":%ld,\"inviteReceipts\":%s}",
             url, account, opt.timeout_ms, opt.receipts ? "true" : "false");
    rc = nim_signaling_client_new(cfg, &c);
    if (rc != NIM_SIGNALING_OK) {
        fprintf(stderr, "load: client_new(%s) -> %d: %s\n", account, (int)rc,
                nim_signaling_last_error() ? nim_signaling_last_error() : "");
        return NULL;
    }
    nim_signaling_reg_connection_state_cb(c, on_connection_state, NULL);
    return c;
}

/* Logins in progress and their outcome. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long in_flight, done, failed;
    int32_t first_failure;
} lg = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

static void on_login(int32_t code, const char *json, void *user_data)
{
    (void)user_data;
    pthread_mutex_lock(&lg.mu);
    lg.in_flight--;
    lg.done++;
    if (code != NIM_SIGNALING_OK) {
        if (!lg.failed++) {
            lg.first_failure = code;
            fprintf(stderr, "load: a login failed: %d %s\n", (int)code, json);
        }
    }
    pthread_cond_broadcast(&lg.cv);
    pthread_mutex_unlock(&lg.mu);
}

/* Starts a login once fewer than --login-concurrency are in progress. */
static int login_start(nim_signaling_client *c)
{
    int32_t rc;
    pthread_mutex_lock(&lg.mu);
    while (lg.in_flight >= opt.login_concurrency)
        pthread_cond_wait(&lg.cv, &lg.mu);
    lg.in_flight++;
    pthread_mutex_unlock(&lg.mu);
    rc = nim_signaling_login(c, on_login, NULL);
    if (rc != NIM_SIGNALING_OK) {
        on_login(rc, "{\"message\":\"not started\"}", NULL);
        return 0;
    }
    return 1;
}

/* Waits for every login started; 1 if all succeeded. */
static int logins_finish(long total)
{
    long last = -1;
    int ok;
    long long next_note = now_ns() + NS_PER_S;
    pthread_mutex_lock(&lg.mu);
    while (lg.in_flight > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&lg.cv, &lg.mu, &ts);
        if (now_ns() >= next_note && lg.done != last) {
            fprintf(stderr, "logging in: %ld/%ld\n", lg.done, total);
            last = lg.done;
            next_note = now_ns() + NS_PER_S;
        }
    }
    ok = lg.failed == 0;
    pthread_mutex_unlock(&lg.mu);
    return ok;
}

/* ---- pairs and their setups ------------------------------------------- */

enum step { IDLE, WAIT_INVITE, WAIT_ACCEPT, WAIT_CLOSE };
static const char *const step_names[] = {"idle", "INVITE", "ACCEPT", "ROOM_CLOSE"};

typedef struct pair {
    pthread_mutex_t mu;
    long index;
    nim_signaling_client *caller, *callee;
    char caller_acc[96], callee_acc[96];
    /* The setup in progress (step != IDLE), numbered by gen. */
    unsigned long gen;
    enum step step;
    long long started, invited, deadline;
    char request_id[64];
    char channel[128];
} pair;

/* What a request's result callback gets: its setup, and which step. */
enum op { OP_CALL, OP_ACCEPT, OP_CLOSE, OP_CLEANUP };
static const char *const op_names[] = {"call", "accept", "close", "cleanup"};

typedef struct {
    pair *p;
    unsigned long gen;
    enum op op;
} request;

typedef int32_t (*request_fn)(nim_signaling_client *, const char *, nim_signaling_result_cb, void *);

static pair *pairs;
static int closed_loop;

/* Pairs waiting for the open loop (or, after a failure, for the closed
 * loop to start them again). */
static struct {
    pthread_mutex_t mu;
    long *ring;
    long head, len;
    int stopping; /* the window is over: no new setups */
} idle_q = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, 0};

static int stopping(void)
{
    int s;
    pthread_mutex_lock(&idle_q.mu);
    s = idle_q.stopping;
    pthread_mutex_unlock(&idle_q.mu);
    return s;
}

static void idle_push(pair *p)
{
    pthread_mutex_lock(&idle_q.mu);
    idle_q.ring[(idle_q.head + idle_q.len) % opt.pairs] = p->index;
    idle_q.len++;
    pthread_mutex_unlock(&idle_q.mu);
}

static pair *idle_pop(void)
{
    pair *p = NULL;
    pthread_mutex_lock(&idle_q.mu);
    if (idle_q.len > 0) {
        p = &pairs[idle_q.ring[idle_q.head]];
        idle_q.head = (idle_q.head + 1) % opt.pairs;
        idle_q.len--;
    }
    pthread_mutex_unlock(&idle_q.mu);
    return p;
}

static void on_result(int32_t code, const char *json, void *user_data);
static void start_setup(pair *p);

/* Sends a request for setup `gen` of p; on a refusal fails that setup. */
static void send_request(pair *p, unsigned long gen, enum op op, request_fn fn,
                         nim_signaling_client *c, const char *params);

/* Ends the setup in progress as failed (p->mu held; returns with it
 * released). The room it made, if known, is closed. */
static void fail_locked(pair *p, const char *what, long long at)
{
    char params[192] = "";
    unsigned long gen = p->gen;
    record_failure(what, at);
    if (p->channel[0])
        snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", p->channel);
    p->step = IDLE;
    pthread_mutex_unlock(&p->mu);
    /* A room left open would count against the accounts' quotas (not
     * worth it once the window is over: the clients are about to go). */
    if (params[0] && !stopping())
        send_request(p, gen, OP_CLEANUP, nim_signaling_close, p->caller, params);
    /* Not started again from here: a refusal that comes at once would
     * recurse. The main thread picks it up. */
    idle_push(p);
}

static void send_request(pair *p, unsigned long gen, enum op op, request_fn fn,
                         nim_signaling_client *c, const char *params)
{
    request *r = malloc(sizeof *r);
    int32_t rc;
    if (!r)
        ex_die_oom();
    r->p = p;
    r->gen = gen;
    r->op = op;
    rc = fn(c, params, on_result, r);
    if (rc != NIM_SIGNALING_OK) {
        char what[40];
        free(r);
        if (op == OP_CLEANUP)
            return;
        snprintf(what, sizeof what, "%s:%d(not sent)", op_names[op], (int)rc);
        pthread_mutex_lock(&p->mu);
        if (p->step != IDLE && p->gen == gen)
            fail_locked(p, what, now_ns());
        else
            pthread_mutex_unlock(&p->mu);
    }
}

static void on_result(int32_t code, const char *json, void *user_data)
{
    request *r = (request *)user_data;
    pair *p = r->p;
    char channel[128];
    int has_channel = ex_json_string(json, "channelId", channel, sizeof channel);
    int current;
    pthread_mutex_lock(&p->mu);
    current = p->step != IDLE && p->gen == r->gen;
    if (current && r->op == OP_CALL && has_channel && !p->channel[0])
        snprintf(p->channel, sizeof p->channel, "%s", channel);
    if (current && code != NIM_SIGNALING_OK && r->op != OP_CLEANUP) {
        char what[40];
        snprintf(what, sizeof what, "%s:%d", op_names[r->op], (int)code);
        fail_locked(p, what, now_ns());
    } else {
        pthread_mutex_unlock(&p->mu);
        /* The call of a setup that already failed (timed out) made a room
         * after all: close it. */
        if (!current && r->op == OP_CALL && has_channel && !stopping()) {
            char params[192];
            snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", channel);
            send_request(p, r->gen, OP_CLEANUP, nim_signaling_close, p->caller, params);
        }
    }
    free(r);
}

/* The setup is done: count it, go on. (p->mu held; returns released.) */
static void succeed_locked(pair *p, long long at)
{
    long long started = p->started, invited = p->invited;
    p->step = IDLE;
    pthread_mutex_unlock(&p->mu);
    record_setup(invited, at, started);
    if (closed_loop && !stopping())
        start_setup(p);
    else
        idle_push(p);
}

static void event_type(const char *ev, char *out, size_t n)
{
    if (!ex_json_string(ev, "eventType", out, n))
        out[0] = '\0';
}

static void on_callee_event(const char *ev, void *user_data)
{
    pair *p = (pair *)user_data;
    long long at = now_ns();
    char type[32], rid[64], channel[128], params[512];
    unsigned long gen;
    event_type(ev, type, sizeof type);
    if (!strcmp(type, "INVITE")) {
        if (!ex_json_string(ev, "requestId", rid, sizeof rid) ||
            !ex_json_string(ev, "channelId", channel, sizeof channel))
            return;
        pthread_mutex_lock(&p->mu);
        if (p->step != WAIT_INVITE || strcmp(rid, p->request_id) != 0) {
            pthread_mutex_unlock(&p->mu);
            return; /* a leftover of a failed setup */
        }
        if (!p->channel[0])
            snprintf(p->channel, sizeof p->channel, "%s", channel);
        p->invited = at;
        p->step = WAIT_ACCEPT;
        p->deadline = at + opt.timeout_ms * NS_PER_MS;
        gen = p->gen;
        snprintf(params, sizeof params,
                 "{\"channelId\":\"%s\",\"account\":\"%s\",\"requestId\":\"%s\","
                 "\"autoJoin\":true}",
                 channel, p->caller_acc, rid);
        pthread_mutex_unlock(&p->mu);
        send_request(p, gen, OP_ACCEPT, nim_signaling_accept, p->callee, params);
    } else if (!strcmp(type, "ROOM_CLOSE")) {
        if (!ex_json_string(ev, "channelId", channel, sizeof channel))
            return;
        pthread_mutex_lock(&p->mu);
        if (p->step == WAIT_CLOSE && !strcmp(channel, p->channel))
            succeed_locked(p, at);
        else
            pthread_mutex_unlock(&p->mu);
    }
}

static void on_caller_event(const char *ev, void *user_data)
{
    pair *p = (pair *)user_data;
    long long at = now_ns();
    char type[32], rid[64], params[192];
    unsigned long gen;
    event_type(ev, type, sizeof type);
    if (strcmp(type, "ACCEPT") != 0 || !ex_json_string(ev, "requestId", rid, sizeof rid))
        return; /* ROOM_JOIN, INVITE_DELIVERED: not waited for */
    pthread_mutex_lock(&p->mu);
    if (p->step != WAIT_ACCEPT || strcmp(rid, p->request_id) != 0) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->step = WAIT_CLOSE;
    p->deadline = at + opt.timeout_ms * NS_PER_MS;
    gen = p->gen;
    snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", p->channel);
    pthread_mutex_unlock(&p->mu);
    send_request(p, gen, OP_CLOSE, nim_signaling_close, p->caller, params);
}

static void start_setup(pair *p)
{
    char params[256];
    unsigned long gen;
    pthread_mutex_lock(&p->mu);
    gen = ++p->gen;
    p->step = WAIT_INVITE;
    p->channel[0] = '\0';
    snprintf(p->request_id, sizeof p->request_id, "%s-%ld-%lu", run_prefix, p->index, gen);
    snprintf(params, sizeof params, "{\"type\":1,\"account\":\"%s\",\"requestId\":\"%s\"}",
             p->callee_acc, p->request_id);
    p->started = now_ns();
    p->deadline = p->started + opt.timeout_ms * NS_PER_MS;
    pthread_mutex_unlock(&p->mu);
    send_request(p, gen, OP_CALL, nim_signaling_call, p->caller, params);
}

/* Fails the setups past their deadline; returns how many are running. */
static long scan_deadlines(long long now)
{
    long i, running = 0;
    for (i = 0; i < opt.pairs; i++) {
        pair *p = &pairs[i];
        pthread_mutex_lock(&p->mu);
        if (p->step != IDLE && now > p->deadline) {
            char what[40];
            snprintf(what, sizeof what, "timeout:%s", step_names[p->step]);
            fail_locked(p, what, now);
        } else {
            running += p->step != IDLE;
            pthread_mutex_unlock(&p->mu);
        }
    }
    return running;
}

/* ---- the report ------------------------------------------------------- */

typedef struct {
    long long self_cpu_us, server_cpu_us, at_ns, machine_busy_us, machine_steal_us;
} reading;

static reading read_clocks(void)
{
    reading r;
    r.at_ns = now_ns();
    r.self_cpu_us = self_cpu_us();
    r.server_cpu_us = opt.server_pid ? proc_cpu_us(opt.server_pid) : -1;
    machine_cpu_us(&r.machine_busy_us, &r.machine_steal_us);
    return r;
}

typedef struct {
    reading w0, w1;
    long rss_self[3], rss_server[3]; /* before, idle, end */
} report;

static double per_setup(long long a, long long b)
{
    return st.setups && a >= 0 && b >= 0 ? (double)(b - a) / (double)st.setups : -1;
}

static double busy_share(long long a, long long b, const report *r)
{
    double window = (double)(r->w1.at_ns - r->w0.at_ns) / 1000.0;
    return a >= 0 && b >= 0 && window > 0 ? (double)(b - a) / window : -1;
}

/* (idle - before) per connection, bytes. */
static long per_connection(const long rss[3], long clients)
{
    return rss[0] >= 0 && rss[1] >= 0 ? (rss[1] - rss[0]) * 1024 / clients : -1;
}

static void print_quantiles_json(const char *name, const samples *s)
{
    printf("\"%s\":{\"p50\":%u,\"p90\":%u,\"p99\":%u,\"max\":%u}", name, quantile(s, 0.50),
           quantile(s, 0.90), quantile(s, 0.99), s->len ? s->v[s->len - 1] : 0);
}

static void print_report(const report *r)
{
    long clients = 2 * opt.pairs + opt.idle;
    double window_s = (double)(r->w1.at_ns - r->w0.at_ns) / 1e9;
    double self_us = per_setup(r->w0.self_cpu_us, r->w1.self_cpu_us);
    double server_us = per_setup(r->w0.server_cpu_us, r->w1.server_cpu_us);
    double self_busy = busy_share(r->w0.self_cpu_us, r->w1.self_cpu_us, r);
    double server_busy = busy_share(r->w0.server_cpu_us, r->w1.server_cpu_us, r);
    /* What the rest of the machine used meanwhile, in cores. */
    double others = busy_share(r->w0.machine_busy_us, r->w1.machine_busy_us, r) - self_busy -
                    (server_busy > 0 ? server_busy : 0);
    double steal = busy_share(r->w0.machine_steal_us, r->w1.machine_steal_us, r);
    int i;
    if (st.invite.len)
        qsort(st.invite.v, st.invite.len, sizeof *st.invite.v, cmp_u32);
    if (st.setup.len)
        qsort(st.setup.v, st.setup.len, sizeof *st.setup.v, cmp_u32);
    if (opt.json) {
        printf("{\"setups\":%lu,\"duration_s\":%.3f,\"setups_per_s\":%.1f,\"failures\":{", st.setups,
               window_s, st.setups / window_s);
        for (i = 0; i < st.failure_kinds; i++)
            printf("%s\"%s\":%lu", i ? "," : "", st.failures[i].what, st.failures[i].n);
        printf("},\"failed\":%lu,\"missed_starts\":%lu,\"connection_drops\":%lu,", st.failed,
               st.missed, st.drops);
        print_quantiles_json("invite_notify_us", &st.invite);
        putchar(',');
        print_quantiles_json("setup_us", &st.setup);
        printf(",\"client_cpu_us_per_setup\":%.1f,\"client_cpu_share\":%.3f", self_us, self_busy);
        if (opt.server_pid)
            printf(",\"server_cpu_us_per_setup\":%.1f,\"server_cpu_share\":%.3f", server_us,
                   server_busy);
        printf(",\"other_cpu_share\":%.3f,\"steal_share\":%.3f", others, steal);
        printf(",\"pairs\":%ld,\"idle_clients\":%ld,\"rate\":%g,\"warmup_s\":%g,"
               "\"receipts\":%s,\"server\":\"%s\",\"server_pid\":%ld",
               opt.pairs, opt.idle, opt.rate, opt.warmup, opt.receipts ? "true" : "false",
               opt.url ? opt.url : "embedded", opt.server_pid);
        printf(",\"client_rss_kb\":{\"before\":%ld,\"idle\":%ld,\"end\":%ld}"
               ",\"client_bytes_per_connection\":%ld",
               r->rss_self[0], r->rss_self[1], r->rss_self[2], per_connection(r->rss_self, clients));
        if (opt.server_pid)
            printf(",\"server_rss_kb\":{\"before\":%ld,\"idle\":%ld,\"end\":%ld}"
                   ",\"server_bytes_per_connection\":%ld",
                   r->rss_server[0], r->rss_server[1], r->rss_server[2],
                   per_connection(r->rss_server, clients));
        printf("}\n");
        return;
    }
    printf("C ABI load, %s%s: %ld pairs, %ld idle clients, rate %s, %.3f s measured "
           "(+%g s warmup), receipts %s\n",
           opt.url ? "server " : "embedded server", opt.url ? opt.url : "", opt.pairs, opt.idle,
           opt.rate > 0 ? "open loop" : "max (back to back)", window_s, opt.warmup,
           opt.receipts ? "on" : "off");
    if (opt.rate > 0)
        printf("asked rate        %10g/s\n", opt.rate);
    printf("setups            %10lu  (%.1f/s)\n", st.setups, st.setups / window_s);
    printf("missed starts     %10lu\n", st.missed);
    printf("connection drops  %10lu\n", st.drops);
    printf("failures          %10lu", st.failed);
    for (i = 0; i < st.failure_kinds; i++)
        printf("%s%s: %lu", i ? ", " : "  (", st.failures[i].what, st.failures[i].n);
    if (st.failure_kinds)
        putchar(')');
    printf("\nlatency (us)             p50        p90        p99        max\n");
    printf("call -> INVITE    %10u %10u %10u %10u\n", quantile(&st.invite, 0.5),
           quantile(&st.invite, 0.9), quantile(&st.invite, 0.99),
           st.invite.len ? st.invite.v[st.invite.len - 1] : 0);
    printf("call -> ROOM_CLOSE%10u %10u %10u %10u\n", quantile(&st.setup, 0.5),
           quantile(&st.setup, 0.9), quantile(&st.setup, 0.99),
           st.setup.len ? st.setup.v[st.setup.len - 1] : 0);
    printf("CPU per setup     client %.1f us (%.1f %% of a core)", self_us, 100 * self_busy);
    if (opt.server_pid)
        printf(", server %.1f us (%.1f %% of a core), client/server %.2f", server_us,
               100 * server_busy, server_us > 0 ? self_us / server_us : 0);
    printf("\nrest of machine   %.1f %% of a core busy, %.1f %% stolen (/proc/stat, same window)",
           100 * others, 100 * steal);
    printf("\nclient RSS (KiB)  before %ld  idle %ld  end %ld  (%ld bytes per connection)\n",
           r->rss_self[0], r->rss_self[1], r->rss_self[2], per_connection(r->rss_self, clients));
    if (opt.server_pid)
        printf("server RSS (KiB)  before %ld  idle %ld  end %ld  (%ld bytes per connection)\n",
               r->rss_server[0], r->rss_server[1], r->rss_server[2],
               per_connection(r->rss_server, clients));
}

/* ---- main ------------------------------------------------------------- */

/* Reads the memory of phase i (0 before connecting, 1 logged in, 2 at the
 * end) and says whether lost connections count from now on. */
static void phase(report *r, int i, int count_drops)
{
    pthread_mutex_lock(&st.mu);
    st.count_drops = count_drops;
    pthread_mutex_unlock(&st.mu);
    r->rss_self[i] = rss_kib(0);
    r->rss_server[i] = opt.server_pid ? rss_kib(opt.server_pid) : -1;
}

static void progress(long long now, long long start, long running)
{
    unsigned long n, setups, failed;
    pthread_mutex_lock(&st.mu);
    n = st.second_setups;
    st.second_setups = 0;
    setups = st.setups;
    failed = st.failed;
    pthread_mutex_unlock(&st.mu);
    fprintf(stderr, "%5.0fs %-6s setups/s %6lu  in window %8lu  failures %5lu  running %5ld\n",
            (double)(now - start) / 1e9,
            now < st.measure_from ? "warmup" : now < st.end ? "run" : "drain", n, setups, failed,
            running);
}

/* Drives the load until the end of the window; returns the readings. */
static void drive(report *r)
{
    long long start = now_ns(), period = opt.rate > 0 ? (long long)(1e9 / opt.rate) : 0;
    long long next_due = start, next_scan = start + SCAN_NS, next_note = start + NS_PER_S;
    long running = 0, i;
    int window_open = 0;
    st.measure_from = start + (long long)(opt.warmup * 1e9);
    st.end = st.measure_from + (long long)(opt.duration * 1e9);
    if (period < 1 && opt.rate > 0)
        period = 1;
    if (closed_loop)
        for (i = 0; i < opt.pairs; i++)
            start_setup(idle_pop());
    for (;;) {
        long long now = now_ns(), wake;
        if (!window_open && now >= st.measure_from) {
            r->w0 = read_clocks();
            window_open = 1;
        }
        if (now >= st.end) {
            r->w1 = read_clocks();
            pthread_mutex_lock(&idle_q.mu);
            idle_q.stopping = 1;
            pthread_mutex_unlock(&idle_q.mu);
            break;
        }
        while (period && next_due <= now) {
            pair *p = idle_pop();
            if (p)
                start_setup(p);
            else if (next_due >= st.measure_from) {
                pthread_mutex_lock(&st.mu);
                st.missed++;
                pthread_mutex_unlock(&st.mu);
            }
            next_due += period;
        }
        if (now >= next_scan) {
            long n = 0;
            running = scan_deadlines(now);
            /* Closed loop: pairs whose setup failed start again here, each
             * once per scan (one refused at once goes back in line). */
            if (closed_loop) {
                pthread_mutex_lock(&idle_q.mu);
                n = idle_q.len;
                pthread_mutex_unlock(&idle_q.mu);
            }
            while (n-- > 0) {
                pair *p = idle_pop();
                if (p)
                    start_setup(p);
            }
            next_scan = now + SCAN_NS;
        }
        if (now >= next_note) {
            progress(now, start, running);
            next_note += NS_PER_S;
        }
        wake = next_scan < next_note ? next_scan : next_note;
        if (period && next_due < wake)
            wake = next_due;
        if (!window_open && st.measure_from < wake)
            wake = st.measure_from;
        if (st.end < wake)
            wake = st.end;
        sleep_until_ns(wake);
    }
    /* Let the setups in progress finish (or time out) before the clients
     * go: their callbacks would otherwise meet a shut-down client. */
    while (scan_deadlines(now_ns()) > 0)
        sleep_until_ns(now_ns() + SCAN_NS);
}

int main(int argc, char **argv)
{
    nim_signaling_server *srv = NULL;
    nim_signaling_client **idle = NULL;
    const char *url;
    report r;
    long i, clients, failed_new = 0;
    long long fds;
    int rc = 1;

    if (!parse_args(argc, argv))
        return usage();
    clients = 2 * opt.pairs + opt.idle;
    closed_loop = opt.rate <= 0;
    fds = raise_fd_limit();
    if (fds < clients * (opt.url ? 1 : 2) + 64) {
        fprintf(stderr, "load: %ld clients need about %ld file descriptors; the limit is %lld "
                        "(ulimit -n)\n",
                clients, clients * (opt.url ? 1 : 2) + 64, fds);
        return 64;
    }
    srand((unsigned)(now_ns() ^ (long long)getpid()));
    snprintf(run_prefix, sizeof run_prefix, "cl%08x", (unsigned)rand() ^ ((unsigned)rand() << 16));
    memset(&r, 0, sizeof r);
    phase(&r, 0, 0);

    if (!opt.url) {
        char cfg[512];
        snprintf(cfg, sizeof cfg,
                 "{\"maxConnections\":%ld,\"maxConnectionsPerIp\":%ld,"
                 "\"maxPendingLoginsPerIp\":1000,\"maxRequestsPerSecond\":1000000}",
                 clients + 100000, clients + 100000);
        if (nim_signaling_server_start(cfg, &srv) != NIM_SIGNALING_OK) {
            fprintf(stderr, "load: server_start: %s\n",
                    nim_signaling_last_error() ? nim_signaling_last_error() : "?");
            return 1;
        }
        url = nim_signaling_server_url(srv);
    } else {
        url = opt.url;
    }

    pairs = calloc((size_t)opt.pairs, sizeof *pairs);
    idle_q.ring = calloc((size_t)opt.pairs, sizeof *idle_q.ring);
    idle = calloc((size_t)(opt.idle ? opt.idle : 1), sizeof *idle);
    if (!pairs || !idle_q.ring || !idle)
        ex_die_oom();

    /* The callees log in first, so that the first calls find them online. */
    for (i = 0; i < opt.pairs; i++) {
        pair *p = &pairs[i];
        pthread_mutex_init(&p->mu, NULL);
        p->index = i;
        p->step = IDLE;
        snprintf(p->caller_acc, sizeof p->caller_acc, "%s-c%ld", run_prefix, i);
        snprintf(p->callee_acc, sizeof p->callee_acc, "%s-e%ld", run_prefix, i);
        p->callee = client_new(url, p->callee_acc);
        p->caller = client_new(url, p->caller_acc);
        if (!p->callee || !p->caller) {
            failed_new++;
            continue;
        }
        nim_signaling_reg_online_notify_cb(p->callee, on_callee_event, p);
        nim_signaling_reg_online_notify_cb(p->caller, on_caller_event, p);
        login_start(p->callee);
        login_start(p->caller);
        idle_push(p);
    }
    for (i = 0; i < opt.idle && !failed_new; i++) {
        char acc[96];
        snprintf(acc, sizeof acc, "%s-i%ld", run_prefix, i);
        idle[i] = client_new(url, acc);
        if (!idle[i])
            failed_new++;
        else
            login_start(idle[i]);
    }
    if (!logins_finish(clients) || failed_new) {
        fprintf(stderr, "load: %ld of %ld logins failed (first: %d), %ld clients not made\n",
                lg.failed, lg.done, (int)lg.first_failure, failed_new);
        goto out;
    }
    fprintf(stderr, "load: %ld clients logged in to %s\n", clients, url);
    /* Let the login bursts settle (channels sync, first heartbeats). */
    sleep_until_ns(now_ns() + NS_PER_S);
    phase(&r, 1, 1);
    drive(&r);
    phase(&r, 2, 0);
    print_report(&r);
    fflush(stdout);
    rc = 0;
out:
    /* After client_free returns no callback of that client runs: the
     * pairs and requests they point to can go once all are freed. */
    for (i = 0; i < opt.pairs; i++) {
        nim_signaling_client_free(pairs[i].caller);
        nim_signaling_client_free(pairs[i].callee);
    }
    for (i = 0; i < opt.idle; i++)
        nim_signaling_client_free(idle[i]);
    for (i = 0; i < opt.pairs; i++)
        pthread_mutex_destroy(&pairs[i].mu);
    nim_signaling_server_stop(srv);
    free(pairs);
    free(idle_q.ring);
    free(idle);
    free(st.invite.v);
    free(st.setup.v);
    return rc;
}
