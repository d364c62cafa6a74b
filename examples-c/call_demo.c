/*
 * call_demo: a one-to-one call from start to end, against a server embedded
 * in this process.
 *
 *   alice calls bob (create + join + invite in one step), bob is rung and
 *   accepts with autoJoin, alice sees ACCEPT and bob's ROOM_JOIN, alice
 *   sends a control command that bob receives, alice closes the room and
 *   bob gets ROOM_CLOSE.
 *
 * Every step and every notification is printed. Exits 0 (last line
 * "call demo: OK") only when all of them happened, each within
 * EX_TIMEOUT_MS; otherwise prints what was missing and exits 1.
 */
#include "example_util.h"

int main(void)
{
    ex_waiter aw, bw; /* what alice's and bob's callbacks received */
    nim_signaling_server *srv = NULL;
    nim_signaling_client *alice = NULL, *bob = NULL;
    const char *url, *res, *ev;
    char cid[128], params[512];
    int ok = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    ex_waiter_init(&aw, "alice");
    ex_waiter_init(&bw, "bob");

    srv = ex_server_start("{}");
    if (!srv)
        goto out;
    url = nim_signaling_server_url(srv);
    alice = ex_client_new(url, "alice", "", "alice-phone", &aw);
    bob = ex_client_new(url, "bob", "", "bob-phone", &bw);
    if (!alice || !bob)
        goto out;

    /* Both log in. */
    if (!ex_ok(&aw, "login", nim_signaling_login(alice, ex_on_result, &aw), NULL) ||
        !ex_ok(&bw, "login", nim_signaling_login(bob, ex_on_result, &bw), NULL))
        goto out;

    /* alice calls bob: the room is created, alice joins, bob is invited. */
    if (!ex_ok(&aw, "call",
               nim_signaling_call(alice,
                                  "{\"type\":1,\"account\":\"bob\",\"requestId\":\"req-1\","
                                  "\"attachExt\":\"hello\"}",
                                  ex_on_result, &aw),
               &res))
        goto out;
    if (!ex_json_string(res, "channelId", cid, sizeof cid)) {
        ex_log("alice", "FAILED: no channelId in the call result");
        goto out;
    }

    /* bob is rung and accepts, joining the room at once. */
    ev = ex_expect_event(&bw, "INVITE", "requestId", "req-1");
    if (!ex_field_is(&bw, ev, "attachExt", "hello"))
        goto out;
    snprintf(params, sizeof params,
             "{\"channelId\":\"%s\",\"account\":\"alice\",\"requestId\":\"req-1\","
             "\"autoJoin\":true}",
             cid);
    if (!ex_ok(&bw, "accept", nim_signaling_accept(bob, params, ex_on_result, &bw), NULL))
        goto out;

    /* alice learns that bob accepted and joined. */
    if (!ex_expect_event(&aw, "ACCEPT", "fromAccountId", "bob") ||
        !ex_expect_event(&aw, "ROOM_JOIN", "account", "bob"))
        goto out;

    /* A control command (e.g. "mute") from alice to the room. */
    snprintf(params, sizeof params,
             "{\"channelId\":\"%s\",\"attachExt\":\"{\\\"cmd\\\":\\\"mute\\\"}\"}", cid);
    if (!ex_ok(&aw, "control", nim_signaling_control(alice, params, ex_on_result, &aw), NULL))
        goto out;
    if (!ex_expect_event(&bw, "CONTROL", "attachExt", "{\\\"cmd\\\":\\\"mute\\\"}"))
        goto out;

    /* alice hangs up: the room is closed for everyone. */
    snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", cid);
    if (!ex_ok(&aw, "close", nim_signaling_close(alice, params, ex_on_result, &aw), NULL))
        goto out;
    if (!ex_expect_event(&bw, "ROOM_CLOSE", "fromAccountId", "alice"))
        goto out;

    ok = 1;
out:
    /* After client_free returns no callback of that client runs, so the
     * waiters can go once both clients are freed. */
    nim_signaling_client_free(alice);
    nim_signaling_client_free(bob);
    nim_signaling_server_stop(srv);
    ex_waiter_destroy(&aw);
    ex_waiter_destroy(&bw);
    puts(ok ? "call demo: OK" : "call demo: FAILED");
    return ok ? 0 : 1;
}
