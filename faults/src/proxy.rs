//! A TCP proxy between the indexer and the ES stand-in, for the faults the
//! stand-in cannot script itself because they happen on the wire:
//!
//! * **hold bulk requests**: a `_bulk` request is not forwarded (the SQLite
//!   commit has happened, the ES write has not) until released;
//! * **hold bulk responses**: the stand-in has applied the bulk request (the
//!   documents are in ES) but the indexer does not hear back: the window
//!   "written to ES, not yet acknowledged in Redis";
//! * **reset mid-response**: half of a `_bulk` response is sent, then the
//!   connection is reset (SO_LINGER 0), after ES applied the request.
//!
//! HTTP/1.1 without pipelining (what the indexer's client does): each
//! connection carries one request at a time, so the request line seen last
//! on a connection tells what the bytes coming back answer.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Control {
    hold_requests: AtomicBool,
    hold_responses: AtomicBool,
    /// Bulk responses still to cut short with a reset.
    resets: AtomicU32,
    /// Bulk requests that reached the stand-in.
    bulk_forwarded: AtomicU64,
    /// Bulk requests / responses held right now.
    requests_held: AtomicU64,
    responses_held: AtomicU64,
    resets_done: AtomicU64,
    stop: AtomicBool,
}

pub struct EsProxy {
    addr: SocketAddr,
    ctl: Arc<Control>,
}

fn is_request_start(chunk: &[u8]) -> bool {
    ["GET ", "POST ", "PUT ", "HEAD ", "DELETE "]
        .iter()
        .any(|m| chunk.starts_with(m.as_bytes()))
}

impl EsProxy {
    pub fn start(upstream: SocketAddr) -> EsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let ctl = Arc::new(Control::default());
        let c = ctl.clone();
        std::thread::Builder::new()
            .name("es-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if c.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(upstream) else {
                        continue;
                    };
                    let c = c.clone();
                    std::thread::spawn(move || pipe(client, server, c));
                }
            })
            .expect("proxy thread");
        EsProxy { addr, ctl }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hold_bulk_requests(&self, on: bool) {
        self.ctl.hold_requests.store(on, Ordering::SeqCst);
    }
    pub fn hold_bulk_responses(&self, on: bool) {
        self.ctl.hold_responses.store(on, Ordering::SeqCst);
    }
    /// The next `n` bulk responses are cut in half and reset.
    pub fn reset_bulk_responses(&self, n: u32) {
        self.ctl.resets.store(n, Ordering::SeqCst);
    }
    pub fn bulk_forwarded(&self) -> u64 {
        self.ctl.bulk_forwarded.load(Ordering::SeqCst)
    }
    pub fn requests_held(&self) -> u64 {
        self.ctl.requests_held.load(Ordering::SeqCst)
    }
    pub fn responses_held(&self) -> u64 {
        self.ctl.responses_held.load(Ordering::SeqCst)
    }
    pub fn resets_done(&self) -> u64 {
        self.ctl.resets_done.load(Ordering::SeqCst)
    }
}

impl Drop for EsProxy {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.ctl.hold_requests.store(false, Ordering::SeqCst);
        self.ctl.hold_responses.store(false, Ordering::SeqCst);
        // wake the accept loop so it sees `stop`
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Copies both ways; the client→server thread notes the request line.
fn pipe(client: TcpStream, server: TcpStream, ctl: Arc<Control>) {
    let last_is_bulk = Arc::new(Mutex::new(false));
    let (mut c_read, mut s_write) = match (client.try_clone(), server.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return,
    };
    let up = {
        let ctl = ctl.clone();
        let last = last_is_bulk.clone();
        let client_for_close = client.try_clone().ok();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match c_read.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                if is_request_start(chunk) {
                    let line_end = chunk.iter().position(|b| *b == b'\r').unwrap_or(n);
                    let bulk = String::from_utf8_lossy(&chunk[..line_end]).contains("/_bulk");
                    *last.lock().unwrap_or_else(|p| p.into_inner()) = bulk;
                    if bulk {
                        if ctl.hold_requests.load(Ordering::SeqCst) {
                            ctl.requests_held.fetch_add(1, Ordering::SeqCst);
                            while ctl.hold_requests.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            ctl.requests_held.fetch_sub(1, Ordering::SeqCst);
                        }
                        ctl.bulk_forwarded.fetch_add(1, Ordering::SeqCst);
                    }
                }
                if s_write.write_all(chunk).is_err() {
                    break;
                }
            }
            let _ = s_write.shutdown(Shutdown::Write);
            drop(client_for_close);
        })
    };
    let mut s_read = server;
    let mut c_write = client;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match s_read.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let bulk = *last_is_bulk.lock().unwrap_or_else(|p| p.into_inner());
        if bulk && ctl.hold_responses.load(Ordering::SeqCst) {
            ctl.responses_held.fetch_add(1, Ordering::SeqCst);
            while ctl.hold_responses.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            ctl.responses_held.fetch_sub(1, Ordering::SeqCst);
        }
        if bulk
            && ctl
                .resets
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
                .is_ok()
        {
            let _ = c_write.write_all(&buf[..n / 2]);
            let _ = c_write.flush();
            // SO_LINGER 0: the close of the last descriptor sends RST
            // instead of FIN. SHUT_RD first wakes the other thread's read,
            // so that its clones are gone when this one is dropped.
            let _ = socket2::SockRef::from(&c_write).set_linger(Some(Duration::ZERO));
            let _ = c_write.shutdown(Shutdown::Read);
            let _ = s_read.shutdown(Shutdown::Both);
            let _ = up.join();
            drop(c_write);
            ctl.resets_done.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if c_write.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = up.join();
}
