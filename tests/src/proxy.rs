//! A TCP proxy between vigil and etcd that misbehaves on purpose: it flips a
//! byte, cuts the connection, throttles, or stalls, counting server→client
//! bytes from the start of each connection.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub enum Fault {
    None,
    /// XOR 0x01 into the server→client byte at this offset.
    Flip(u64),
    /// Close both sides after this many server→client bytes.
    Cut(u64),
    /// At most this many server→client bytes per second.
    Throttle(u64),
    /// Forward this many bytes, then go silent while keeping the socket open.
    Stall(u64),
}

#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream_port: u16, fault: Fault) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((down, _)) => {
                        down.set_nonblocking(false).unwrap();
                        let Ok(up) = TcpStream::connect(("127.0.0.1", upstream_port)) else {
                            continue;
                        };
                        let s2 = s.clone();
                        std::thread::spawn(move || pipe(down, up, fault, s2));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Proxy { port, stop }
    }

    pub fn endpoint(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn pipe(down: TcpStream, up: TcpStream, fault: Fault, stop: Arc<AtomicBool>) {
    let (mut d2, mut u2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
    // client → server: untouched.
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match d2.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if u2.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = u2.shutdown(Shutdown::Write);
    });
    let (mut up, mut down) = (up, down);
    let mut buf = [0u8; 16384];
    let mut seen = 0u64;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let n = match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        match fault {
            Fault::Flip(at) if seen <= at && at < seen + n as u64 => {
                chunk[(at - seen) as usize] ^= 0x01
            }
            Fault::Cut(at) if seen + n as u64 > at => {
                let keep = (at - seen.min(at)) as usize;
                let _ = down.write_all(&chunk[..keep]);
                break;
            }
            Fault::Stall(at) if seen + n as u64 > at => {
                let keep = (at - seen.min(at)) as usize;
                let _ = down.write_all(&chunk[..keep]);
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                break;
            }
            Fault::Throttle(bps) => {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / bps as f64))
            }
            _ => {}
        }
        seen += n as u64;
        if down.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = down.shutdown(Shutdown::Both);
    let _ = up.shutdown(Shutdown::Both);
}
