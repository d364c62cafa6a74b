//! The signaling server.
//!
//! - `listener` (this file): accept loop, connection limits, shutdown.
//! - [`session`]: one per connection — handshake, login, requests, events.
//! - [`service`]: runs rules inside the store's atomic updates, delivers events.
//! - [`store`]: where state lives (memory; Redis for clusters).
//! - [`router`]: which sessions live here, and waking them.
//! - [`auth`], [`config`]: who may log in; the settings.
//! - [`tls`]: TLS termination and the stream a session runs over.
//! - [`metrics`], [`admin`]: the operator's HTTP listeners.

pub mod config;
pub mod engine;
pub mod net;
pub mod ops;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, RwLock};

use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::Signal;
pub use config::{ServerConfig, StoreConfig};
pub use net::tls::TlsConfig;
use net::tls::{self, TlsAcceptor};
use nim_signaling_protocol::codes::INTERNAL;
use nim_signaling_protocol::Failure;

/// Where a server is in its life; sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Serving,
    /// Shutting down: take no new requests.
    Quiesce,
    /// Every request has finished: hand over pending events and close.
    Drain,
}

/// Shared by the listener and its sessions for a graceful shutdown.
pub(crate) struct Stopping {
    pub phase: watch::Sender<Phase>,
    /// Requests hold the read side while they run.
    pub gate: RwLock<()>,
}

impl Stopping {
    fn new() -> Arc<Self> {
        Arc::new(Stopping {
            phase: watch::Sender::new(Phase::Serving),
            gate: RwLock::new(()),
        })
    }

    /// Takes no new request and waits for those in progress.
    async fn quiesce(&self) {
        self.phase.send_if_modified(|p| {
            let serving = *p == Phase::Serving;
            if serving {
                *p = Phase::Quiesce;
            }
            serving
        });
        drop(self.gate.write().await);
    }
}

/// How often due timers are looked for: the lateness of an INVITE_TIMEOUT
/// or a member drop is at most this.
const TIMER_TICK: Duration = Duration::from_millis(100);
use engine::observe::{Happening, Observer, Observers, Pusher};
use engine::service::{now_ms, Service};
use net::{limits, session};
use ops::{admin, metrics, push, webhooks};

/// A running server. Dropping it without [`ServerHandle::shutdown`] leaves
/// the server running until the runtime ends.
pub struct ServerHandle {
    addr: SocketAddr,
    url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    service: Arc<Service>,
    /// What the node counts (also one of the service's observers).
    counters: Arc<metrics::Metrics>,
    /// The webhook queues (also an observer), flushed at shutdown.
    webhooks: Option<Arc<webhooks::Webhooks>>,
    metrics: SideListener,
    admin: SideListener,
    stopping: Arc<Stopping>,
}

impl ServerHandle {
    /// `http://IP:PORT` of `/metrics` and `/healthz`, when `metricsListen`
    /// is set.
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics.url()
    }

    /// `http://IP:PORT` of the admin API (docs/ADMIN.md), when
    /// `adminListen` is set.
    pub fn admin_url(&self) -> Option<String> {
        self.admin.url()
    }

    /// `ws://IP:PORT` clients connect to (`wss://` with TLS).
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }
    /// The node's counters, as `/metrics` shows them.
    pub fn metrics(&self) -> &Arc<metrics::Metrics> {
        &self.counters
    }
    /// The first half of a graceful shutdown: takes no new request and
    /// returns once those in progress are applied. Nodes of a cluster that
    /// stop together call this on each before [`ServerHandle::shutdown`], so
    /// that an event acknowledged on one node is in the log before any node
    /// hands its sessions their last events.
    pub async fn quiesce(&self) {
        self.stopping.quiesce().await;
    }

    /// Marks the node draining (or serving again): it refuses new
    /// connections and `/healthz` answers 503, so a load balancer sends
    /// clients elsewhere, while the sessions it has go on until they end
    /// or [`ServerHandle::shutdown`] moves them.
    pub fn set_draining(&self, on: bool) {
        self.service.draining.store(on, Relaxed);
    }

    /// Stops accepting, closes every session and waits until all are gone.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.done).await;
        // After the sessions: the last requests' webhooks are queued by now.
        if let Some(w) = &self.webhooks {
            w.shutdown().await;
        }
        self.metrics.stop();
        self.admin.stop();
    }
}

/// Binds `cfg.listen` and serves until [`ServerHandle::shutdown`].
pub async fn start(cfg: ServerConfig) -> Result<ServerHandle, Failure> {
    let cfg = cfg.validate()?;
    // Before binding: a bad certificate or key fails the start.
    let tls = cfg.tls.as_ref().map(tls::acceptor).transpose()?;
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let listener = listen(&cfg.listen)
        .await
        .map_err(|e| Failure::new(INTERNAL, format!("cannot listen on {}: {e}", cfg.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::new(INTERNAL, e.to_string()))?;
    let store: Arc<dyn crate::store::Store> = match &cfg.store {
        StoreConfig::Memory {} => Arc::new(MemoryStore::new(cfg.log_limits())),
        StoreConfig::Redis { url, prefix } => {
            Arc::new(RedisStore::connect(url, prefix, cfg.log_limits()).await?)
        }
    };
    // The operator side hangs off the engine through its ports: the
    // counters and the webhooks observe it, the gateway takes its pushes.
    let counters = metrics::Metrics::new();
    let webhooks = match &cfg.webhooks {
        Some(w) => Some(Arc::new(webhooks::Webhooks::start(w, counters.clone())?)),
        None => None,
    };
    let mut observers: Vec<Arc<dyn Observer>> = vec![counters.clone()];
    if let Some(w) = &webhooks {
        observers.push(w.clone());
    }
    let push = match &cfg.push {
        Some(p) => Some(Arc::new(push::PushGateway::new(p)?) as Arc<dyn Pusher>),
        None => None,
    };
    let service = Service::new(store, &cfg)
        .with_push(push)
        .with_observer(Arc::new(Observers::new(observers)));
    let service = Arc::new(service);
    let metrics = SideListener::bind(cfg.metrics_listen.as_deref(), "metricsListen", |l| {
        metrics::serve_http(l, service.clone(), counters.clone())
    })
    .await?;
    // validate() made sure a token comes with adminListen.
    let token = cfg.admin_token.clone().unwrap_or_default();
    let admin = SideListener::bind(cfg.admin_listen.as_deref(), "adminListen", |l| {
        admin::serve_http(l, service.clone(), counters.clone(), token)
    })
    .await
    .inspect_err(|_| metrics.stop())?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stopping = Stopping::new();
    let done = tokio::spawn(run(
        listener,
        service.clone(),
        cfg,
        tls,
        stopping.clone(),
        async {
            let _ = rx.await;
        },
    ));
    Ok(ServerHandle {
        stopping,
        addr,
        url: format!("{scheme}://{addr}"),
        shutdown: Some(tx),
        done,
        service,
        counters,
        webhooks,
        metrics,
        admin,
    })
}

/// An operator-side HTTP listener (metrics, admin), when configured.
#[derive(Default)]
struct SideListener {
    addr: Option<SocketAddr>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SideListener {
    /// Binds `at` (None: not configured) and spawns `serve` on it; `key`
    /// names the setting in the error.
    async fn bind<F>(
        at: Option<&str>,
        key: &str,
        serve: impl FnOnce(TcpListener) -> F,
    ) -> Result<SideListener, Failure>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(at) = at else {
            return Ok(SideListener::default());
        };
        let l = TcpListener::bind(at)
            .await
            .map_err(|e| Failure::new(INTERNAL, format!("cannot listen on {at} ({key}): {e}")))?;
        Ok(SideListener {
            addr: l.local_addr().ok(),
            task: Some(tokio::spawn(serve(l))),
        })
    }

    fn url(&self) -> Option<String> {
        self.addr.map(|a| format!("http://{a}"))
    }

    fn stop(&self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Connections the kernel queues before they are accepted. The default of
/// `TcpListener::bind` (128) overflows when many clients log in at once (a
/// reconnect storm after a restart), and each overflow costs the client a
/// one-second SYN retransmit.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (an IP:port or host:port) with [`LISTEN_BACKLOG`].
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let at = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")
    })?;
    let socket = if at.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `listener` until `shutdown` completes, then closes every session
/// and returns once all of them have finished. With `tls` (from
/// [`tls::acceptor`]) every connection is TLS.
pub(crate) async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    cfg: ServerConfig,
    tls: Option<TlsAcceptor>,
    stopping: Arc<Stopping>,
    shutdown: impl Future<Output = ()>,
) {
    let cfg = Arc::new(cfg);
    // Each session holds a clone; recv() returns None once all are dropped.
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let limits = limits::ConnectionLimits::new(&cfg);
    let sweeper = tokio::spawn(timer_loop(service.clone(), limits.rates.clone()));
    let signals = service.store.signals().map(|mut rx| {
        let service = service.clone();
        tokio::spawn(async move {
            while let Some(signal) = rx.recv().await {
                match signal {
                    Signal::DeviceGone {
                        account,
                        device,
                        at,
                    } => service.device_went_away(&account, &device, at).await,
                    other => service.hub.on_signal(other),
                }
            }
        })
    });

    let accept = async {
        loop {
            // Before accepting: while maxPendingLogins connections are
            // logging in, none of them old enough to give its place up to
            // a new one, new ones wait in the kernel's backlog.
            if limits.pending_ready().await.is_err() {
                return;
            }
            let (socket, peer) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(address) = limits.admit(peer.ip()) else {
                // Over maxConnectionsPerIp or maxPendingLoginsPerIp: closed
                // before any handshake, so an address over its share costs
                // no TLS, no WebSocket, no place among the pending logins,
                // and evicts nobody.
                tracing::debug!(%peer, "connection refused: maxConnectionsPerIp or maxPendingLoginsPerIp");
                service.observer.happened(Happening::ConnectionRefused);
                drop(socket);
                continue;
            };
            // Normally at once, as pending_ready said there is a place to
            // have; but if the oldest pending connection's login arrived
            // meanwhile (it keeps its place) and the others are too young,
            // this one waits here, accepted, as the next would in the
            // backlog.
            let Ok((admission, from)) = limits.place(address).await else {
                return;
            };
            if from == limits::PlaceFrom::Evicted {
                tracing::debug!(%peer, "pending logins full: the oldest pending connection gave its place up");
                service.observer.happened(Happening::PendingEvicted);
            }
            let svc = service.clone();
            let cfg = cfg.clone();
            let stopping = stopping.clone();
            let alive = alive_tx.clone();
            let tls = tls.clone();
            let limits = limits.clone();
            tokio::spawn(async move {
                let observer = svc.observer.clone();
                observer.happened(Happening::ConnectionOpened);
                session::serve(svc, cfg, socket, tls, stopping, limits, admission).await;
                observer.happened(Happening::ConnectionClosed);
                drop(alive);
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = shutdown => {}
    }
    sweeper.abort();
    if let Some(t) = signals {
        t.abort();
    }
    // Graceful, in two steps: no new request starts and those in progress
    // finish (the gate's write side waits for them); then every session
    // hands over its pending events and asks its client to reconnect.
    stopping.quiesce().await;
    stopping.phase.send_replace(Phase::Drain);
    drop(alive_tx);
    let _ = alive_rx.recv().await;
}

/// Runs due timers (invitation expiry, vanished devices) every tick,
/// deletes rooms that are past their time once a second, and every
/// [`ops::heap::TRIM_EVERY_MS`] forgets idle rate buckets and hands the
/// heap's free memory back.
async fn timer_loop(service: Arc<Service>, rates: Arc<limits::DeviceRates>) {
    let mut tick = tokio::time::interval(TIMER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = 0;
    let mut last_trim = now_ms();
    loop {
        tick.tick().await;
        let now = now_ms();
        service.run_due_timers(now).await;
        if now - last_sweep >= 1000 {
            last_sweep = now;
            if let Err(e) = service.sweep(now).await {
                tracing::warn!(error = %e, "sweep failed");
            }
        }
        if now - last_trim >= ops::heap::TRIM_EVERY_MS {
            last_trim = now;
            // Not awaited: the timers go on while it runs. The rate
            // buckets of devices gone go first, so that their memory is
            // free to hand back.
            let rates = rates.clone();
            tokio::task::spawn_blocking(move || {
                rates.prune(std::time::Instant::now());
                ops::heap::trim();
            });
        }
    }
}
