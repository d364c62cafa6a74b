//! A local HTTP receiver standing in for an operator's backend (the push
//! gateway): it records every request and answers as it is told to. Also
//! the signature check every receiver test uses.

use nim_signaling_server::ops::http::{serve, HttpRequest, HttpResponse};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
struct Answer {
    status: u16,
    delay: Duration,
}

pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    seen: Arc<Mutex<Vec<HttpRequest>>>,
    answer: Arc<Mutex<Answer>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on a free port, answering 200 at once until told otherwise.
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            delay: Duration::ZERO,
        }));
        let (s, a) = (seen.clone(), answer.clone());
        let task = tokio::spawn(serve(listener, move |req| {
            let (s, a) = (s.clone(), a.clone());
            async move {
                s.lock().unwrap().push(req);
                let Answer { status, delay } = *a.lock().unwrap();
                tokio::time::sleep(delay).await;
                HttpResponse::text(status, "")
            }
        }));
        Receiver {
            url,
            seen,
            answer,
            task,
        }
    }

    /// Answers every later request with `status` after `delay`.
    pub fn answer_with(&self, status: u16, delay: Duration) {
        *self.answer.lock().unwrap() = Answer { status, delay };
    }

    pub fn requests(&self) -> Vec<HttpRequest> {
        self.seen.lock().unwrap().clone()
    }

    /// The JSON bodies received so far, in order.
    pub fn bodies(&self) -> Vec<Value> {
        self.requests()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `req` carries a valid `X-Nim-Signature` for `secret`, checked
/// here from the documented recipe (HMAC-SHA256 over "<t>." + body), not
/// with the server's own signing code.
pub fn signed_by(secret: &str, req: &HttpRequest) -> bool {
    use hmac::{Hmac, Mac};
    let Some(header) = req
        .headers
        .get("x-nim-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x),
            Some(("v1", x)) => v1 = Some(x),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(want) = hex::decode(v1) else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&req.body);
    mac.verify_slice(&want).is_ok()
}
