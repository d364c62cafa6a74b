/*
 * group_call: a room with three accounts, one of them on two devices,
 * against a server embedded in this process.
 *
 *   alice creates a room and joins it, then invites bob, who is logged in
 *   on two devices: both ring. bob-phone accepts (autoJoin) and bob-laptop
 *   is told so by the multi-client sync notification. alice invites carol,
 *   who accepts (autoJoin). Then carol's device vanishes (its client is
 *   freed without leaving the room); after the server's memberDropGraceMs
 *   alice gets a members sync without carol.
 *
 * Every step and every notification is printed. Exits 0 (last line
 * "group call: OK") only when all of them happened, each within
 * EX_TIMEOUT_MS; otherwise prints what was missing and exits 1.
 */
#include "example_util.h"

/* alice invites `who`; the invitee's device `invitee` is rung and accepts
 * with autoJoin. */
static int invite_and_accept(nim_signaling_client *alice, ex_waiter *aw, const char *cid,
                             const char *who, const char *request_id,
                             nim_signaling_client *invitee, ex_waiter *iw)
{
    char params[512];
    snprintf(params, sizeof params,
             "{\"channelId\":\"%s\",\"account\":\"%s\",\"requestId\":\"%s\","
             "\"attachExt\":\"join us\"}",
             cid, who, request_id);
    if (!ex_ok(aw, "invite", nim_signaling_invite(alice, params, ex_on_result, aw), NULL))
        return 0;
    if (!ex_expect_event(iw, "INVITE", "requestId", request_id))
        return 0;
    snprintf(params, sizeof params,
             "{\"channelId\":\"%s\",\"account\":\"alice\",\"requestId\":\"%s\","
             "\"autoJoin\":true}",
             cid, request_id);
    return ex_ok(iw, "accept", nim_signaling_accept(invitee, params, ex_on_result, iw), NULL);
}

int main(void)
{
    ex_waiter aw, pw, lw, cw; /* alice, bob-phone, bob-laptop, carol */
    nim_signaling_server *srv = NULL;
    nim_signaling_client *alice = NULL, *phone = NULL, *laptop = NULL, *carol = NULL;
    const char *url, *res, *sync;
    char cid[128], params[512], has[192];
    int ok = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    ex_waiter_init(&aw, "alice");
    ex_waiter_init(&pw, "bob-phone");
    ex_waiter_init(&lw, "bob-laptop");
    ex_waiter_init(&cw, "carol");

    /* A member whose device is gone for 500 ms is dropped from its rooms. */
    srv = ex_server_start("{\"memberDropGraceMs\":500}");
    if (!srv)
        goto out;
    url = nim_signaling_server_url(srv);
    alice = ex_client_new(url, "alice", "", "alice-phone", &aw);
    phone = ex_client_new(url, "bob", "", "bob-phone", &pw);
    laptop = ex_client_new(url, "bob", "", "bob-laptop", &lw);
    carol = ex_client_new(url, "carol", "", "carol-phone", &cw);
    if (!alice || !phone || !laptop || !carol)
        goto out;

    if (!ex_ok(&aw, "login", nim_signaling_login(alice, ex_on_result, &aw), NULL) ||
        !ex_ok(&pw, "login", nim_signaling_login(phone, ex_on_result, &pw), NULL) ||
        !ex_ok(&lw, "login", nim_signaling_login(laptop, ex_on_result, &lw), NULL) ||
        !ex_ok(&cw, "login", nim_signaling_login(carol, ex_on_result, &cw), NULL))
        goto out;

    /* alice creates the room and joins it. */
    if (!ex_ok(&aw, "create",
               nim_signaling_create(alice, "{\"type\":2,\"channelName\":\"standup\"}",
                                    ex_on_result, &aw),
               &res))
        goto out;
    if (!ex_json_string(res, "channelId", cid, sizeof cid)) {
        ex_log("alice", "FAILED: no channelId in the create result");
        goto out;
    }
    snprintf(params, sizeof params, "{\"channelId\":\"%s\"}", cid);
    if (!ex_ok(&aw, "join", nim_signaling_join(alice, params, ex_on_result, &aw), NULL))
        goto out;

    /* bob rings on both devices; the phone answers, the laptop is told. */
    if (!invite_and_accept(alice, &aw, cid, "bob", "inv-bob", phone, &pw))
        goto out;
    if (!ex_expect_event(&lw, "INVITE", "requestId", "inv-bob"))
        goto out;
    sync = ex_wait_for(&lw, EX_MULTI_SYNC, "\"eventType\":\"ACCEPT\"", NULL, EX_TIMEOUT_MS);
    if (!ex_field_is(&lw, sync, "requestId", "inv-bob"))
        goto out;
    if (!ex_expect_event(&aw, "ACCEPT", "fromAccountId", "bob") ||
        !ex_expect_event(&aw, "ROOM_JOIN", "account", "bob"))
        goto out;

    /* carol is invited and joins too; everyone in the room sees her join. */
    if (!invite_and_accept(alice, &aw, cid, "carol", "inv-carol", carol, &cw))
        goto out;
    if (!ex_expect_event(&aw, "ACCEPT", "fromAccountId", "carol") ||
        !ex_expect_event(&aw, "ROOM_JOIN", "account", "carol") ||
        !ex_expect_event(&pw, "ROOM_JOIN", "account", "carol"))
        goto out;

    /* carol's device vanishes without leaving the room. */
    ex_log("carol", "vanishing: client freed without leaving the room");
    nim_signaling_client_free(carol);
    carol = NULL;

    /* After the grace period alice's member list no longer has carol. */
    snprintf(has, sizeof has, "\"channelId\":\"%s\"", cid);
    sync = ex_wait_for(&aw, EX_MEMBERS_SYNC, has, "\"account\":\"carol\"", EX_TIMEOUT_MS);
    if (!sync)
        goto out;
    if (!strstr(sync, "\"account\":\"alice\"") || !strstr(sync, "\"account\":\"bob\"")) {
        ex_log("alice", "FAILED: the members sync should still list alice and bob");
        goto out;
    }
    ex_log("alice", "carol is gone from the room's members");

    ok = 1;
out:
    nim_signaling_client_free(alice);
    nim_signaling_client_free(phone);
    nim_signaling_client_free(laptop);
    nim_signaling_client_free(carol);
    nim_signaling_server_stop(srv);
    ex_waiter_destroy(&aw);
    ex_waiter_destroy(&pw);
    ex_waiter_destroy(&lw);
    ex_waiter_destroy(&cw);
    puts(ok ? "group call: OK" : "group call: FAILED");
    return ok ? 0 : 1;
}
