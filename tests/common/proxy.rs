//! A fault-injecting TCP proxy for integration tests.
//!
//! Tests point a client at the proxy instead of the server and then break the
//! "network" on purpose: cut connections, make them go silent, add latency,
//! refuse new connections or redirect them to another server.
//!
//! Design: every fault lives in one `Faults` value inside a `watch` channel.
//! Each connection gets one task per direction that reads a chunk, lets it
//! pass the current faults and writes it to the other side. Tasks wait on the
//! watch channel inside `select!`, so a fault takes effect at once even while
//! a task is blocked in a read, a write or a delay. "Current connections
//! only" faults (cut, blackhole) are epochs: a connection remembers the epochs
//! at accept time and is affected once the proxy's epoch has moved past them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything a test can switch; the single source of truth for all tasks.
#[derive(Clone, Debug)]
struct Faults {
    target: SocketAddr,
    refuse: bool,
    stall: bool,
    delay: Duration,
    /// Bumped by `cut()`: connections born at an older epoch close.
    cut_epoch: u64,
    /// Bumped by `blackhole_current()`: connections born at an older epoch go silent.
    blackhole_epoch: u64,
}

/// The epochs a connection was accepted in (see `Faults`).
#[derive(Clone, Copy)]
struct Birth {
    cut_epoch: u64,
    blackhole_epoch: u64,
}

impl Birth {
    fn of(f: &Faults) -> Birth {
        Birth {
            cut_epoch: f.cut_epoch,
            blackhole_epoch: f.blackhole_epoch,
        }
    }
    fn is_cut(&self, f: &Faults) -> bool {
        f.cut_epoch > self.cut_epoch
    }
    fn is_silenced(&self, f: &Faults) -> bool {
        f.blackhole_epoch > self.blackhole_epoch
    }
}

#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    accepted: AtomicUsize,
}

/// Held by both direction tasks of a connection; the connection stops
/// counting as open when the last of them ends.
struct OpenGuard(Arc<Counters>);

impl OpenGuard {
    fn new(c: Arc<Counters>) -> OpenGuard {
        c.open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(c)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct FaultProxy {
    addr: SocketAddr,
    /// Only the proxy holds the sender: dropping it closes the channel, which
    /// every connection task treats as "close now" (that is how `Drop` works).
    faults: watch::Sender<Faults>,
    counters: Arc<Counters>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards every accepted connection to `target`.
    pub async fn start(target: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let addr = listener.local_addr().expect("proxy addr");
        let (faults, rx) = watch::channel(Faults {
            target,
            refuse: false,
            stall: false,
            delay: Duration::ZERO,
            cut_epoch: 0,
            blackhole_epoch: 0,
        });
        let counters = Arc::new(Counters::default());
        let accept_task = tokio::spawn(accept_loop(listener, rx, counters.clone()));
        FaultProxy {
            addr,
            faults,
            counters,
            accept_task,
        }
    }

    /// "ws://127.0.0.1:PORT" of the proxy's listener.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Points NEW connections at another server (e.g. a restarted one on a new port).
    pub fn set_target(&self, target: SocketAddr) {
        self.faults.send_modify(|f| f.target = target);
    }

    /// Closes every current connection (blackholed ones included) on both
    /// sides right away; both peers see FIN (or RST if data was in flight).
    /// New connections are accepted and forwarded normally.
    pub fn cut(&self) {
        self.faults.send_modify(|f| f.cut_epoch += 1);
    }

    /// While on, no bytes (and no FIN) move on any connection; chunks already
    /// read are held and delivered in order once it is turned off.
    pub fn stall(&self, on: bool) {
        self.faults.send_modify(|f| f.stall = on);
    }

    /// The current connections go silent forever: bytes are read and dropped,
    /// nothing is closed, not even when a peer closes. New connections pass.
    /// The silent ones close on `cut()` or when the proxy is dropped.
    pub fn blackhole_current(&self) {
        self.faults.send_modify(|f| f.blackhole_epoch += 1);
    }

    /// Every chunk waits `d` before being forwarded (order kept); ZERO turns it off.
    pub fn set_delay(&self, d: Duration) {
        self.faults.send_modify(|f| f.delay = d);
    }

    /// While on, new connections are accepted and closed at once.
    pub fn refuse(&self, on: bool) {
        self.faults.send_modify(|f| f.refuse = on);
    }

    /// Connections currently forwarded (target reached, not yet fully closed).
    pub fn open_connections(&self) -> usize {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Connections accepted since start, including refused ones.
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Stop listening; the `faults` sender is dropped right after this,
        // which makes every connection task close its sockets.
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, rx: watch::Receiver<Faults>, counters: Arc<Counters>) {
    loop {
        let client = match listener.accept().await {
            Ok((s, _)) => s,
            Err(_) => {
                // E.g. out of file descriptors: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        counters.accepted.fetch_add(1, Ordering::SeqCst);
        // Snapshot at accept time: a cut() after this line affects this connection.
        let (birth, target, refuse) = {
            let f = rx.borrow();
            (Birth::of(&f), f.target, f.refuse)
        };
        if refuse {
            drop(client);
            continue;
        }
        tokio::spawn(connect(client, target, rx.clone(), birth, counters.clone()));
    }
}

/// Resolves once this connection must close: it was cut, or the proxy is gone.
async fn closed(rx: &mut watch::Receiver<Faults>, birth: Birth) {
    let _ = rx.wait_for(|f| birth.is_cut(f)).await;
}

/// Dials the target for one accepted client and starts both directions.
async fn connect(
    client: TcpStream,
    target: SocketAddr,
    mut rx: watch::Receiver<Faults>,
    birth: Birth,
    counters: Arc<Counters>,
) {
    let server = tokio::select! {
        _ = closed(&mut rx, birth) => return,
        r = TcpStream::connect(target) => match r {
            Ok(s) => s,
            Err(_) => return, // unreachable target: the client just sees EOF
        },
    };
    // Small messages (WebSocket frames) should not wait for Nagle.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let open = Arc::new(OpenGuard::new(counters));
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    tokio::spawn(pump(client_r, server_w, rx.clone(), birth, open.clone()));
    tokio::spawn(pump(server_r, client_w, rx, birth, open));
}

/// Moves bytes in one direction, applying the faults to every chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut rx: watch::Receiver<Faults>,
    birth: Birth,
    _open: Arc<OpenGuard>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = closed(&mut rx, birth) => break,
            // A read error is handled like EOF: this direction is over.
            r = from.read(&mut buf) => r.unwrap_or(0),
        };

        // Latency first, so the stall/blackhole decision below is made at the
        // moment of forwarding.
        let delay = rx.borrow().delay;
        if !delay.is_zero() {
            tokio::select! {
                _ = closed(&mut rx, birth) => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }

        // Hold the chunk (or the EOF) while stalled; find out if we went silent.
        let silent = match rx
            .wait_for(|f| birth.is_cut(f) || birth.is_silenced(f) || !f.stall)
            .await
        {
            Ok(f) if birth.is_cut(&f) => break,
            Ok(f) => birth.is_silenced(&f),
            Err(_) => break, // proxy dropped
        };

        if n == 0 {
            if silent {
                // A lost network does not deliver FINs either: keep both
                // sockets open until cut() or the proxy is dropped.
                closed(&mut rx, birth).await;
            }
            break; // otherwise pass the half-close on
        }
        if silent {
            continue; // drop the bytes
        }
        tokio::select! {
            _ = closed(&mut rx, birth) => break,
            r = to.write_all(&buf[..n]) => if r.is_err() { break },
        }
    }
    // Send FIN to the other side; the sockets close once both direction
    // tasks have dropped their halves.
    let _ = to.shutdown().await;
}
