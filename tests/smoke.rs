mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn call_accept_control_close() {
    let srv = start_server(json!({})).await;
    let alice = login(srv.url(), "alice", "a1").await;
    let mut bob = login(srv.url(), "bob", "b1").await;
    let call = alice
        .ok(
            "call",
            json!({"type": 1, "account": "bob", "requestId": "r1"}),
        )
        .await;
    let cid = call["channelInfo"]["channelId"]
        .as_str()
        .unwrap()
        .to_string();
    let inv = bob.expect_event("INVITE").await;
    assert_eq!(inv["requestId"], "r1");
    let acc = bob
        .ok(
            "accept",
            json!({"channelId": cid, "account": "alice", "requestId": "r1", "autoJoin": true}),
        )
        .await;
    assert_eq!(acc["members"].as_array().unwrap().len(), 2);
    srv.shutdown().await;
}
