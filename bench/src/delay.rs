//! A userspace TCP delay proxy on loopback: what the `wan` workload puts
//! between a node (or raw rsync) and a database host's rsync daemon, since
//! the machine has no netem.
//!
//! It listens on `127.0.0.1:0` and forwards every connection to one target.
//! Each direction is a timestamped queue: a reader task reads a chunk,
//! stamps it with the time it was read and queues it; a writer task sends
//! each chunk once `now >= stamp + one_way`. Chunks never wait for each
//! other (a chunk read 1 ms after another leaves 1 ms after it), so the pipe
//! keeps its throughput and its order while every byte, and the FIN after
//! them, arrives `one_way` late: a round trip through the proxy costs
//! `2 × one_way` more than without it.
//!
//! Memory is bounded: at most `cap` bytes are queued per direction; when
//! the queue is full the reader stops reading, and TCP's own flow control
//! pushes back on the sender. The cap is therefore the link's
//! bandwidth-delay product: one direction carries at most `cap / one_way`
//! bytes per second (8 MiB over 25 ms: ~335 MB/s).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes queued per direction by default.
pub const DEFAULT_CAP: usize = 8 << 20;

/// The most one read takes from a socket.
const CHUNK: usize = 64 << 10;

/// A running proxy; stopped (every connection dropped) when dropped.
pub struct DelayProxy {
    pub port: u16,
    stats: Arc<Stats>,
    rt: Option<tokio::runtime::Runtime>,
}

#[derive(Default)]
struct Stats {
    /// Bytes queued right now, over every direction of every connection.
    queued: AtomicUsize,
    /// The most bytes one direction ever held.
    peak_direction: AtomicUsize,
    connections: AtomicUsize,
}

impl DelayProxy {
    /// A proxy to `target` adding `rtt` of round trip (`rtt / 2` each
    /// way), with [`DEFAULT_CAP`] bytes of queue per direction.
    pub fn start(target: SocketAddr, rtt: Duration) -> Result<DelayProxy> {
        Self::with_cap(target, rtt / 2, DEFAULT_CAP)
    }

    /// A proxy delaying each direction by `one_way`, at most `cap` bytes
    /// queued per direction.
    pub fn with_cap(target: SocketAddr, one_way: Duration, cap: usize) -> Result<DelayProxy> {
        let cap = cap.max(CHUNK);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("delay-proxy")
            .enable_all()
            .build()?;
        let listener = rt.block_on(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))))?;
        let port = listener.local_addr()?.port();
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        rt.spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                st.connections.fetch_add(1, Ordering::Relaxed);
                let st = st.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        let up = pipe(cr, sw, one_way, cap, st.clone());
                        let down = pipe(sr, cw, one_way, cap, st);
                        tokio::join!(up, down);
                    }
                });
            }
        });
        Ok(DelayProxy {
            port,
            stats,
            rt: Some(rt),
        })
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::Relaxed)
    }

    /// Bytes queued right now (every direction).
    pub fn queued(&self) -> usize {
        self.stats.queued.load(Ordering::Relaxed)
    }

    /// The most bytes any one direction held at once.
    pub fn peak_direction(&self) -> usize {
        self.stats.peak_direction.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// A chunk (empty: the sender's FIN) and when it may leave.
struct Stamped {
    due: Instant,
    data: Vec<u8>,
    _permit: Option<OwnedSemaphorePermit>,
}

/// One direction: reads from `from`, queues with stamps, writes each chunk
/// to `to` `one_way` after it was read; ends after forwarding EOF or on
/// the first error.
async fn pipe(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    one_way: Duration,
    cap: usize,
    stats: Arc<Stats>,
) {
    let room = Arc::new(Semaphore::new(cap));
    let (tx, mut rx) = mpsc::unbounded_channel::<Stamped>();
    let in_dir = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stats, in_dir) = (stats.clone(), in_dir.clone());
        async move {
            loop {
                // wait for room for a whole chunk before reading: the
                // queue never holds more than `cap`
                let Ok(permit) = room.clone().acquire_many_owned(CHUNK as u32).await else {
                    return;
                };
                let mut buf = vec![0u8; CHUNK];
                // an error ends the direction as EOF does
                let n: usize = from.read(&mut buf).await.unwrap_or_default();
                let due = Instant::now() + one_way;
                if n == 0 {
                    let _ = tx.send(Stamped {
                        due,
                        data: Vec::new(),
                        _permit: None,
                    });
                    return;
                }
                buf.truncate(n);
                // keep only the permits for the bytes actually read
                let mut permit = permit;
                drop(permit.split(CHUNK - n));
                let now = in_dir.fetch_add(n, Ordering::Relaxed) + n;
                stats.queued.fetch_add(n, Ordering::Relaxed);
                stats.peak_direction.fetch_max(now, Ordering::Relaxed);
                if tx
                    .send(Stamped {
                        due,
                        data: buf,
                        _permit: Some(permit),
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    };
    let (left, total) = (in_dir.clone(), stats.clone());
    let writer = async move {
        while let Some(c) = rx.recv().await {
            tokio::time::sleep_until(c.due).await;
            if c.data.is_empty() {
                let _ = to.shutdown().await;
                return;
            }
            let n = c.data.len();
            let ok = to.write_all(&c.data).await.is_ok();
            in_dir.fetch_sub(n, Ordering::Relaxed);
            stats.queued.fetch_sub(n, Ordering::Relaxed);
            if !ok {
                return;
            }
        }
    };
    // the writer ending (EOF forwarded, or the peer gone) ends the reader
    // too: dropping it drops the read half
    tokio::select! {
        _ = async { tokio::join!(reader, std::future::pending::<()>()) } => {}
        _ = writer => {}
    }
    // chunks never written (the peer went away) leave the gauge
    total
        .queued
        .fetch_sub(left.swap(0, Ordering::Relaxed), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener as StdListener;
    use std::time::Instant as StdInstant;

    /// An echo server on loopback: every connection gets its bytes back.
    fn echo() -> SocketAddr {
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut r = s.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut s);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        addr
    }

    #[test]
    fn a_round_trip_takes_at_least_the_delay() {
        let rtt = Duration::from_millis(40);
        let p = DelayProxy::start(echo(), rtt).unwrap();
        let mut s = std::net::TcpStream::connect(p.addr()).unwrap();
        s.set_nodelay(true).unwrap();
        for _ in 0..3 {
            let t = StdInstant::now();
            s.write_all(b"ping").unwrap();
            let mut got = [0u8; 4];
            s.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"ping");
            assert!(t.elapsed() >= rtt, "round trip {:?} < {rtt:?}", t.elapsed());
        }
        assert_eq!(p.connections(), 1);
    }

    #[test]
    fn bytes_arrive_intact_and_in_order_and_the_fin_follows() {
        let p = DelayProxy::with_cap(echo(), Duration::from_millis(5), 256 << 10).unwrap();
        let s = std::net::TcpStream::connect(p.addr()).unwrap();
        let data: Vec<u8> = (0..(4u32 << 20)).map(|i| (i * 7 + i / 251) as u8).collect();
        let mut w = s.try_clone().unwrap();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        let mut r = s;
        // read_to_end returns only once the echo's FIN came back through
        r.read_to_end(&mut back).unwrap();
        t.join().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "bytes changed or reordered");
        assert!(p.peak_direction() <= 256 << 10, "{}", p.peak_direction());
    }

    #[test]
    fn a_stalled_receiver_holds_the_queue_at_the_cap() {
        // a target that accepts and never reads
        let l = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let cap = 512 << 10;
        let p = DelayProxy::with_cap(addr, Duration::from_millis(1), cap).unwrap();
        let mut s = std::net::TcpStream::connect(p.addr()).unwrap();
        let (held, _) = l.accept().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![1u8; 1 << 20];
            // blocks once the kernel buffers and the proxy's queue are full
            while s.write_all(&chunk).is_ok() {}
        });
        // the queue fills to the cap (the kernel buffers on both sides
        // fill first), then stays there
        let end = StdInstant::now() + Duration::from_secs(30);
        while p.peak_direction() < cap / 2 {
            assert!(
                StdInstant::now() < end,
                "queue never filled: {}",
                p.queued()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(p.peak_direction() <= cap, "{} > {cap}", p.peak_direction());
        drop(held);
    }
}
