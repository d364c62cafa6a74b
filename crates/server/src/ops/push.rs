//! The push gateway: when an invitation with `pushInfo.needPush` reaches an
//! account none of whose devices is online, the server POSTs the push to
//! the operator's gateway (which talks to APNs, FCM, …). The gateway's
//! answer decides the invitation's code: 2xx took it (10201, "peer offline,
//! pushed"), anything else or no answer refused it (10202). See
//! docs/PUSH.md.

use bytes::Bytes;
use serde_json::{json, Value};
use std::time::Duration;

use crate::config::PushConfig;
use crate::engine::observe::{Push, Pusher};
use crate::ops::http::{self, Roots, SIGNATURE_HEADER};
use nim_signaling_protocol::codes::INVALID_PARAM;
use nim_signaling_protocol::Failure;

pub struct PushGateway {
    gateway: http::Endpoint,
    secret: Option<String>,
}

impl Push<'_> {
    /// The JSON the gateway gets (documented in docs/PUSH.md).
    pub fn body(&self) -> Value {
        json!({
            "account": self.account,
            "title": self.info.push_title,
            "content": self.info.push_content,
            "payload": self.info.push_payload,
            "badge": self.info.need_badge,
            "devices": self.tokens,
            "invitation": {
                "channelInfo": self.channel,
                "from": self.from,
                "to": self.account,
                "requestId": self.request_id,
                "attachExt": self.attach_ext,
            },
            "at": self.at,
        })
    }
}

impl PushGateway {
    /// Reads `caFile` now, so that a bad one stops the server's start.
    pub fn new(cfg: &PushConfig) -> Result<Self, Failure> {
        let roots = Roots::load(cfg.ca_file.as_deref())
            .map_err(|e| Failure::new(INVALID_PARAM, format!("server config: push.{e}")))?;
        let gateway = http::Endpoint::new(&cfg.url, &roots, Duration::from_millis(cfg.timeout_ms))
            .map_err(|e| Failure::new(INVALID_PARAM, format!("server config: push.url: {e}")))?;
        Ok(PushGateway {
            gateway,
            secret: cfg.secret.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Pusher for PushGateway {
    /// POSTs `push`; true when the gateway took it (a 2xx answer in time).
    async fn send(&self, push: &Push<'_>) -> bool {
        let body = Bytes::from(push.body().to_string());
        let mut headers = Vec::new();
        if let Some(secret) = &self.secret {
            headers.push((SIGNATURE_HEADER, http::signature(secret, push.at, &body)));
        }
        match self.gateway.post_json(&headers, body).await {
            Ok(status) if (200..300).contains(&status) => true,
            Ok(status) => {
                tracing::warn!(
                    account = push.account,
                    status,
                    "push gateway refused a push"
                );
                false
            }
            Err(why) => {
                tracing::warn!(account = push.account, error = %why, "push gateway unreachable");
                false
            }
        }
    }
}
