/*
 * client_only: one client against a running nim-signaling-server.
 *
 *   client_only URL ACCOUNT TOKEN [PEER [SECONDS]]
 *
 * Logs in (exit 2 if the login fails), and when PEER is given (and is not
 * "-") creates a room, joins it and invites PEER, asking for a push should
 * PEER be offline. Prints every notification for SECONDS (default 5), closes the
 * room it made (if it is still open), logs out and exits 0.
 */
#include "example_util.h"

#define LISTEN_MS 5000
#define MAX_LISTEN_S 3600

static int usage(void)
{
    fputs("usage: client_only URL ACCOUNT TOKEN [PEER [SECONDS]]\n"
          "  URL      ws://host:port of a running nim-signaling-server\n"
          "  ACCOUNT  the account to log in as, with TOKEN\n"
          "  PEER     if given: create a room, join it and invite PEER (\"-\": nobody)\n"
          "  SECONDS  how long to print notifications (default 5, at most 3600)\n",
          stderr);
    return 64; /* EX_USAGE */
}

/* The arguments go into JSON strings as they are. */
static int json_safe(const char *s)
{
    return strpbrk(s, "\"\\") == NULL && strlen(s) < 200;
}

int main(int argc, char **argv)
{
    ex_waiter w;
    nim_signaling_client *c;
    const char *res;
    char cid[128] = "", params[512];
    int32_t code;
    int i, ok = 1, listen_ms = LISTEN_MS;

    if (argc < 4 || argc > 6)
        return usage();
    if (argc == 6) {
        char *end;
        long s = strtol(argv[5], &end, 10);
        if (*end != '\0' || s < 1 || s > MAX_LISTEN_S)
            return usage();
        listen_ms = (int)s * 1000;
    }
    for (i = 1; i < argc; i++)
        if (!json_safe(argv[i]))
            return usage();

    setvbuf(stdout, NULL, _IOLBF, 0);
    ex_waiter_init(&w, argv[2]);
    c = ex_client_new(argv[1], argv[2], argv[3], "client-only", &w);
    if (!c) {
        ex_waiter_destroy(&w);
        return 1;
    }

    code = ex_finish(&w, "login", nim_signaling_login(c, ex_on_result, &w), NULL);
    if (code != NIM_SIGNALING_OK) {
        printf("login failed: code %d\n", (int)code);
        nim_signaling_client_free(c);
        ex_waiter_destroy(&w);
        return 2;
    }

    if (argc >= 5 && strcmp(argv[4], "-") != 0) {
        ok = ex_ok(&w, "create", nim_signaling_create(c, "{\"type\":1}", ex_on_result, &w), &res) &&
             ex_json_string(res, "channelId", cid, sizeof cid);
        snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", cid);
        ok = ok && ex_ok(&w, "join", nim_signaling_join(c, params, ex_on_result, &w), NULL);
        if (ok) {
            snprintf(params, sizeof params,
                     "{\"channelId\":\"%s\",\"account\":\"%s\",\"requestId\":\"client-only-1\","
                     "\"pushInfo\":{\"needPush\":true,\"pushTitle\":\"%s calls\"}}",
                     cid, argv[4], argv[2]);
            /* 10201: PEER is offline (and was pushed, if the server has a
             * push gateway); 10202: the push could not go out. The
             * invitation is kept all the same. */
            code = ex_finish(&w, "invite", nim_signaling_invite(c, params, ex_on_result, &w), NULL);
            ok = code == NIM_SIGNALING_OK || code == NIM_SIGNALING_PEER_OFFLINE ||
                 code == NIM_SIGNALING_PUSH_UNREACHABLE;
        }
    }

    if (ok) {
        ex_log(argv[2], "listening for %d ms", listen_ms);
        ex_sleep_ms(listen_ms);
    }
    if (cid[0]) {
        snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", cid);
        ex_finish(&w, "close", nim_signaling_close(c, params, ex_on_result, &w), NULL);
    }
    ex_finish(&w, "logout", nim_signaling_logout(c, ex_on_result, &w), NULL);
    nim_signaling_client_free(c);
    ex_waiter_destroy(&w);
    return ok ? 0 : 1;
}
