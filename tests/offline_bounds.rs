//! What the server keeps for accounts that are not online, and for how
//! long (docs/SECURITY.md, "Bounds"; docs/DELIVERY.md): offline events
//! have a list of their own that other traffic cannot push out, a cap that
//! says when it dropped something, and a lifetime; the state of accounts
//! and devices nobody uses goes away.

mod common;

use common::*;
use nim_signaling_client::{ConnState, Notification};
use serde_json::{json, Value};

/// Logs `account`/`device` in afresh and returns the client, its first
/// `connected` state's resync reason and the offline list (if one came).
async fn fresh_login(
    url: &str,
    account: &str,
    device: &str,
) -> (TestClient, Option<String>, Option<Value>) {
    let mut c = client_for(url, account, device, json!({}));
    let (code, body) = c.client.login().await;
    assert_eq!(code, 200, "login of {account}/{device}: {body}");
    let change = c.expect_change(ConnState::Connected).await;
    let offline = match c.next().await {
        Notification::Offline(t) => {
            let v: Value = serde_json::from_str(&t).unwrap();
            c.expect_channels().await;
            Some(v)
        }
        Notification::Channels(_) => None,
        other => panic!("{account}: expected the offline list or channels, got {other:?}"),
    };
    (c, change.resync, offline)
}

/// The requestIds in an offline list, in order.
fn request_ids(offline: &Value) -> Vec<String> {
    offline["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["requestId"].as_str().map(str::to_string))
        .collect()
}

/// The defect: mallory, who has nothing to do with alice's room, sent more
/// CONTROLs to offline vic (through a room vic is in) than the log keeps,
/// and the log's count cap dropped alice's INVITE, so vic logged in to no
/// offline list while queryInvitations still said it was pending.
#[tokio::test]
async fn a_stranger_cannot_flush_an_offline_invitation_out() {
    let srv = start_server(json!({"logMaxEvents": 20})).await;
    let mallory = login(srv.url(), "mallory", "m1").await;
    let vic = login(srv.url(), "vic", "v1").await;
    let room = mallory.create_joined(None).await;
    vic.ok("join", json!({"channelId": room})).await;
    // vic's device goes away; it stays a member for memberDropGraceMs.
    drop(vic);
    wait_until("vic offline", || async {
        !srv.service().store.account_online("vic").await.unwrap()
    })
    .await;

    let alice = login(srv.url(), "alice", "a1").await;
    let call = alice.create_joined(None).await;
    alice.invite_offline(&call, "vic", "r1").await;
    for i in 0..50 {
        let (code, v) = mallory
            .req("control", control_to(&room, "vic", format!("spam {i}")))
            .await;
        assert!(code == 200 || code == 10201, "control {i}: {code} {v}");
    }

    let (_vic, resync, offline) = fresh_login(srv.url(), "vic", "v1").await;
    let offline = offline.expect("alice's INVITE is still kept for vic");
    assert_eq!(request_ids(&offline), ["r1"], "{offline}");
    assert_eq!(resync, None, "nothing was dropped");
    srv.shutdown().await;
}

/// A full offline list drops its oldest event, and the next fresh login
/// says so (`resync: trimmed`) instead of passing the rest for everything.
#[tokio::test]
async fn a_full_offline_list_drops_the_oldest_and_the_login_says_trimmed() {
    let srv = start_server(json!({"maxOfflineEvents": 3})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    for i in 0..5 {
        let room = alice.create_joined(None).await;
        alice.invite_offline(&room, "bob", &format!("r{i}")).await;
    }
    let (bob, resync, offline) = fresh_login(srv.url(), "bob", "b1").await;
    let offline = offline.expect("an offline list");
    assert_eq!(request_ids(&offline), ["r2", "r3", "r4"], "{offline}");
    assert_eq!(resync.as_deref(), Some("trimmed"));
    drop(bob);

    // The same device, having seen the list, is not told again; a device
    // that never saw it is.
    let (_b1, resync, offline) = fresh_login(srv.url(), "bob", "b1").await;
    assert_eq!((resync, offline), (None, None), "b1 took it all already");
    let (_b2, resync, offline) = fresh_login(srv.url(), "bob", "b2").await;
    assert_eq!(resync.as_deref(), Some("trimmed"), "b2 missed r0 and r1");
    assert_eq!(request_ids(&offline.unwrap()), ["r2", "r3", "r4"]);
    srv.shutdown().await;
}

/// The defect: invite + cancel with offlineEnabled to account names that
/// never log in kept every event forever (15k ghosts: 300 MB). Now they
/// last `offlineRetentionMs`, and the logs left empty are forgotten.
#[tokio::test]
async fn offline_events_for_accounts_that_never_log_in_age_out() {
    let srv = start_server(json!({"offlineRetentionMs": 1500, "logRetentionMs": 1000})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    let attach = "x".repeat(4096);
    for i in 0..20 {
        let inv = json!({"channelId": room, "account": format!("ghost{i}"),
                         "requestId": format!("r{i}"), "offlineEnabled": true,
                         "attachExt": attach});
        alice.fails("invite", inv.clone(), 10201).await;
        alice.ok("cancel", inv).await;
    }
    let store = &srv.service().store;
    let kept = store.read_offline("ghost0", 0, u64::MAX).await.unwrap();
    assert_eq!(kept.len(), 2, "ghost0 holds its INVITE and CANCEL");
    wait_until("the ghosts' events aged out", || async {
        let mut held = 0;
        for i in 0..20 {
            let g = format!("ghost{i}");
            held += store.read_offline(&g, 0, u64::MAX).await.unwrap().len();
            held += store.read_after(&g, 0, 10).await.unwrap().len();
        }
        held == 0
    })
    .await;
    if !common::cluster::on_cluster() {
        // Here the gauge is exact (on Redis it counts what was trimmed on
        // append, not what expired; docs/METRICS).
        assert_eq!(store.stats().await.log_entries, 0);
    }
    let (_g, resync, offline) = fresh_login(srv.url(), "ghost0", "g1").await;
    assert_eq!(
        (resync, offline),
        (None, None),
        "nothing is kept for ghost0"
    );
    srv.shutdown().await;
}

/// The defect: 120,000 deviceIds logged in and out left state behind for
/// each (80 MB with no session and no timer left). A device's absence
/// record goes once its grace has been dealt with, and its cursor once
/// nothing is kept for offline delivery.
#[tokio::test]
async fn devices_that_come_and_go_leave_nothing_behind() {
    let srv = start_server(json!({"memberDropGraceMs": 200})).await;
    for i in 0..30 {
        let c = login(srv.url(), "carol", &format!("d{i}")).await;
        if i % 2 == 0 {
            c.client.logout().await;
        } else {
            drop(c); // gone without a word: its grace runs
        }
    }
    let store = &srv.service().store;
    wait_until("every absence reviewed and forgotten", || async {
        let mut left = 0;
        for i in 0..30 {
            if store
                .device_gone_since("carol", &format!("d{i}"))
                .await
                .is_some()
            {
                left += 1;
            }
        }
        left == 0
    })
    .await;
    for i in 0..30 {
        assert_eq!(store.cursor("carol", &format!("d{i}")).await, 0, "d{i}");
    }
    srv.shutdown().await;
}

/// The defect: one account parked events in the offline lists of ever new
/// never-seen accounts (invite, then cancel to free its pending-invite
/// quota), each list under its own cap, so nothing bounded what one sender
/// made the server hold. Past maxOfflineEventsPerSender its offlineEnabled
/// requests are refused naming the setting, and keep nothing; it still
/// reaches online accounts without offlineEnabled, other senders are not
/// affected, and it may keep events again once its count aged out.
#[tokio::test]
async fn one_sender_cannot_park_more_than_its_share_of_offline_events() {
    let srv = start_server(json!({
        "maxOfflineEventsPerSender": 3,
        "offlineRetentionMs": 3000,
    }))
    .await;
    let alice = login(srv.url(), "alice", "a1").await;
    let room = alice.create_joined(None).await;
    for i in 0..3 {
        alice
            .invite_offline(&room, &format!("ghost{i}"), &format!("r{i}"))
            .await;
    }
    let over =
        json!({"channelId": room, "account": "ghost3", "requestId": "r3", "offlineEnabled": true});
    let v = alice.fails("invite", over, 403).await;
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains("maxOfflineEventsPerSender"), "{v}");
    // What ends an invitation is never refused by it.
    let cancel =
        json!({"channelId": room, "account": "ghost2", "requestId": "r2", "offlineEnabled": true});
    alice.ok("cancel", cancel).await;
    let (_ghost2, _, offline) = fresh_login(srv.url(), "ghost2", "g1").await;
    let offline = offline.expect("ghost2's invitation and its cancel are kept");
    let kinds: Vec<_> = offline["eventList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].clone())
        .collect();
    assert_eq!(kinds, ["INVITE", "CANCEL_INVITE"], "{offline}");

    let mut bob = login(srv.url(), "bob", "b1").await;
    alice
        .ok(
            "invite",
            json!({"channelId": room, "account": "bob", "requestId": "rb"}),
        )
        .await;
    bob.expect_event_from("INVITE", &room, "alice").await;

    let carol = login(srv.url(), "carol", "c1").await;
    let hers = carol.create_joined(None).await;
    carol.invite_offline(&hers, "ghost3", "c1").await;
    let (_ghost3, _, offline) = fresh_login(srv.url(), "ghost3", "g1").await;
    let offline = offline.expect("carol's invitation is kept");
    assert_eq!(
        request_ids(&offline),
        ["c1"],
        "alice's refused one kept nothing: {offline}"
    );

    // Two windows of offlineRetentionMs at most.
    wait_until("alice's count to age out", || async {
        let p = json!({"channelId": room, "account": "ghost4", "requestId": "r4", "offlineEnabled": true});
        let (code, v) = alice.req("invite", p).await;
        assert!(code == 403 || code == 10201, "{v}");
        code == 10201
    })
    .await;
    srv.shutdown().await;
}
