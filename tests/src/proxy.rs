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
    /// Speak enough HTTP/2 to end the longest gRPC response stream cleanly
    /// (trailers with `grpc-status: 0`) after this many messages: the client
    /// sees a well-formed but short snapshot, which only the hash can catch.
    EndStreamAfter(usize),
    /// Drop the gRPC message with this index (0-based) from the longest
    /// response stream, keeping HTTP/2 and gRPC framing valid: a chunk goes
    /// missing in the middle, the size rule still holds, only the hash can tell.
    DropMessage(usize),
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
    if matches!(fault, Fault::EndStreamAfter(_) | Fault::DropMessage(_)) {
        h2_rewrite(&mut up, &mut down, fault);
        let _ = down.shutdown(Shutdown::Both);
        let _ = up.shutdown(Shutdown::Both);
        return;
    }
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

/// Per HTTP/2 stream: where we are in its gRPC message framing.
#[derive(Default)]
struct GrpcState {
    /// Bytes of the 5-byte message prefix seen so far.
    prefix: Vec<u8>,
    /// Body bytes left in the current message.
    left: usize,
    messages: usize,
    ended: bool,
}

fn read_exact_or_eof(r: &mut TcpStream, buf: &mut [u8]) -> bool {
    r.read_exact(buf).is_ok()
}

/// Forwards server→client HTTP/2 frames, rewriting gRPC response data per
/// `fault` (`EndStreamAfter` or `DropMessage`) while frame and message
/// boundaries stay valid. Only streams with more than one message (the
/// snapshot stream) are touched.
fn h2_rewrite(up: &mut TcpStream, down: &mut TcpStream, fault: Fault) {
    let mut states: std::collections::HashMap<u32, GrpcState> = std::collections::HashMap::new();
    loop {
        let mut hdr = [0u8; 9];
        if !read_exact_or_eof(up, &mut hdr) {
            return;
        }
        let len = ((hdr[0] as usize) << 16) | ((hdr[1] as usize) << 8) | hdr[2] as usize;
        let (ty, flags) = (hdr[3], hdr[4]);
        let sid = u32::from_be_bytes([hdr[5] & 0x7f, hdr[6], hdr[7], hdr[8]]);
        let mut payload = vec![0u8; len];
        if !read_exact_or_eof(up, &mut payload) {
            return;
        }
        let st = states.entry(sid).or_default();
        if st.ended {
            continue; // the client already saw this stream end
        }
        if ty != 0 || sid == 0 {
            if down
                .write_all(&hdr)
                .and_then(|_| down.write_all(&payload))
                .is_err()
            {
                return;
            }
            continue;
        }
        let mut data: &[u8] = &payload;
        if flags & 0x08 != 0 && !data.is_empty() {
            let pad = data[0] as usize;
            data = &data[1..data.len().saturating_sub(pad)];
        }
        let mut kept = Vec::with_capacity(data.len());
        let mut end_now = false;
        let mut i = 0usize;
        while i < data.len() {
            // The message this byte belongs to, and how many bytes of it follow here.
            let idx = st.messages;
            let n = if st.left == 0 && st.prefix.len() < 5 {
                st.prefix.push(data[i]);
                if st.prefix.len() == 5 {
                    st.left = u32::from_be_bytes([
                        st.prefix[1],
                        st.prefix[2],
                        st.prefix[3],
                        st.prefix[4],
                    ]) as usize;
                }
                1
            } else {
                let n = st.left.min(data.len() - i);
                st.left -= n;
                n
            };
            let drop = matches!(fault, Fault::DropMessage(k) if k == idx && idx > 0)
                || matches!(fault, Fault::EndStreamAfter(k) if idx >= k && k > 0);
            if !drop {
                kept.extend_from_slice(&data[i..i + n]);
            }
            i += n;
            if st.left == 0 && st.prefix.len() == 5 {
                st.prefix.clear();
                st.messages += 1;
                if matches!(fault, Fault::EndStreamAfter(k) if st.messages >= k && k > 1) {
                    end_now = true;
                    break;
                }
            }
        }
        let mut out = Vec::new();
        let end_stream = flags & 0x01 != 0 && !end_now;
        if !kept.is_empty() || end_stream {
            out.extend_from_slice(&(kept.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&[0, if end_stream { 0x01 } else { 0 }]);
            out.extend_from_slice(&sid.to_be_bytes());
            out.extend_from_slice(&kept);
        }
        if end_now {
            // HPACK "literal header field without indexing, new name": grpc-status: 0.
            let mut block = vec![0x00, 11];
            block.extend_from_slice(b"grpc-status");
            block.extend_from_slice(&[1, b'0']);
            out.extend_from_slice(&(block.len() as u32).to_be_bytes()[1..]);
            out.extend_from_slice(&[0x01, 0x04 | 0x01]); // HEADERS, END_HEADERS | END_STREAM
            out.extend_from_slice(&sid.to_be_bytes());
            out.extend_from_slice(&block);
            st.ended = true;
        }
        if down.write_all(&out).is_err() {
            return;
        }
    }
}
