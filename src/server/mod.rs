//! The signaling server.
//!
//! - `listener` (this file): accept loop, connection limit, shutdown.
//! - [`session`]: one per connection — handshake, login, requests, events.
//! - [`service`]: runs rules inside the store's atomic updates, delivers events.
//! - [`rules`]: the seed's rules as pure functions.
//! - [`router`]: which sessions live here, and waking them.
//! - [`auth`], [`config`]: who may log in; the settings.

pub mod auth;
pub mod config;
pub mod router;
pub mod rules;
pub mod service;
pub mod session;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};

use crate::protocol::codes::INTERNAL;
use crate::protocol::Failure;
use crate::store::memory::MemoryStore;
pub use config::{ServerConfig, StoreConfig};
use service::{now_ms, Service};

/// A running server. Dropping it without [`ServerHandle::shutdown`] leaves
/// the server running until the runtime ends.
pub struct ServerHandle {
    addr: SocketAddr,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    service: Arc<Service>,
}

impl ServerHandle {
    /// `ws://IP:PORT` clients connect to.
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }
    /// Stops accepting, closes every session and waits until all are gone.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.done).await;
    }
}

/// Binds `cfg.listen` and serves until [`ServerHandle::shutdown`].
pub async fn start(cfg: ServerConfig) -> Result<ServerHandle, Failure> {
    let cfg = cfg.validate()?;
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Failure::new(INTERNAL, format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::new(INTERNAL, e.to_string()))?;
    let store = Arc::new(MemoryStore::new(cfg.log_limits()));
    let service = Arc::new(Service::new(
        store,
        cfg.limits(),
        Duration::from_millis(cfg.member_drop_grace_ms as u64),
    ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(run(listener, service.clone(), cfg, async {
        let _ = rx.await;
    }));
    Ok(ServerHandle {
        addr,
        url: format!("ws://{addr}"),
        shutdown: Some(tx),
        done,
        service,
    })
}

/// Serves `listener` until `shutdown` completes, then closes every session
/// and returns once all of them have finished.
pub async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let cfg = Arc::new(cfg);
    let (notify_shutdown, _) = broadcast::channel::<()>(1);
    // Each session holds a clone; recv() returns None once all are dropped.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let permits = Arc::new(Semaphore::new(cfg.max_connections));
    let sweeper = tokio::spawn(sweep_loop(service.clone()));

    let accept = async {
        loop {
            // Take the permit before accepting: at the limit, connections
            // wait in the kernel backlog instead of being accepted and dropped.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (socket, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let svc = service.clone();
            let cfg = cfg.clone();
            let rx = notify_shutdown.subscribe();
            let alive = alive_tx.clone();
            tokio::spawn(async move {
                session::serve(svc, cfg, socket, rx).await;
                drop(permit);
                drop(alive);
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    sweeper.abort();
    let _ = notify_shutdown.send(());
    drop(alive_tx);
    let _ = alive_rx.recv().await;
}

/// Deletes rooms that are past their time, once a second.
async fn sweep_loop(service: Arc<Service>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = service.store.sweep(now_ms()).await {
            tracing::warn!(error = %e, "sweep failed");
        }
    }
}
