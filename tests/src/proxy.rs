//! A TCP proxy between vigil and etcd that misbehaves on purpose: it flips a
//! byte, cuts the connection, throttles, or stalls, counting server→client
//! bytes from the start of each connection; or it speaks enough HTTP/2 to
//! rewrite gRPC response streams (end early, drop a message, alter bytes).

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
    /// Replace every `from` by `to` (same length) inside the `blob` of each
    /// message of every multi-message gRPC response stream (the snapshot),
    /// and replace the final 32-byte blob (etcd's sha256 trailer) with the
    /// sha256 of the rewritten db bytes: a well-formed snapshot whose trailer
    /// matches, so only a check of its contents can tell. One-message streams
    /// (unary responses) pass untouched.
    ///
    /// Each message's blob is rewritten on its own, so an occurrence split
    /// across two messages would be missed. For a small etcd value that does
    /// not happen: it lives inside one 4 KiB bbolt page, and etcd cuts the
    /// db file into 32 KiB chunks, a multiple of the page size.
    Rewrite {
        from: &'static [u8],
        to: &'static [u8],
    },
}

#[derive(Debug)]
pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream_port: u16, fault: Fault) -> Proxy {
        if let Fault::Rewrite { from, to } = fault {
            // Equal lengths keep every gRPC message, DATA frame and flow-control
            // window the same size.
            assert_eq!(from.len(), to.len(), "Fault::Rewrite needs equal lengths");
            assert!(!from.is_empty(), "Fault::Rewrite needs a non-empty pattern");
        }
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
    if let Fault::Rewrite { from, to } = fault {
        h2_rewrite_blobs(&mut up, &mut down, from, to);
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

/// The body length in a gRPC message's 5-byte prefix (flag, u32 big-endian).
fn grpc_len(prefix: &[u8]) -> usize {
    u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize
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
                    st.left = grpc_len(&st.prefix);
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

/// The largest DATA payload every HTTP/2 peer accepts (the default
/// SETTINGS_MAX_FRAME_SIZE).
const MAX_DATA: usize = 16384;

/// One HTTP/2 frame: the 9-byte header and its payload.
struct Frame {
    hdr: [u8; 9],
    payload: Vec<u8>,
}

impl Frame {
    fn read(r: &mut TcpStream) -> Option<Frame> {
        let mut hdr = [0u8; 9];
        if !read_exact_or_eof(r, &mut hdr) {
            return None;
        }
        let len = ((hdr[0] as usize) << 16) | ((hdr[1] as usize) << 8) | hdr[2] as usize;
        let mut payload = vec![0u8; len];
        if !read_exact_or_eof(r, &mut payload) {
            return None;
        }
        Some(Frame { hdr, payload })
    }

    fn ty(&self) -> u8 {
        self.hdr[3]
    }

    fn end_stream(&self) -> bool {
        self.hdr[4] & 0x01 != 0
    }

    fn sid(&self) -> u32 {
        u32::from_be_bytes([self.hdr[5] & 0x7f, self.hdr[6], self.hdr[7], self.hdr[8]])
    }

    /// A DATA frame's data, without padding.
    fn data(&self) -> &[u8] {
        let d = &self.payload[..];
        if self.hdr[4] & 0x08 != 0 && !d.is_empty() {
            let pad = d[0] as usize;
            &d[1..d.len().saturating_sub(pad).max(1)]
        } else {
            d
        }
    }
}

/// Appends `data` to `out` as DATA frames of at most [`MAX_DATA`] bytes;
/// END_STREAM goes on the last (an empty frame if there is no data).
fn push_data(out: &mut Vec<u8>, sid: u32, data: &[u8], end_stream: bool) {
    let mut chunks: Vec<&[u8]> = data.chunks(MAX_DATA).collect();
    if chunks.is_empty() && end_stream {
        chunks.push(&[]);
    }
    let last = chunks.len().saturating_sub(1);
    for (i, c) in chunks.into_iter().enumerate() {
        out.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&[0, if end_stream && i == last { 0x01 } else { 0 }]);
        out.extend_from_slice(&sid.to_be_bytes());
        out.extend_from_slice(c);
    }
}

/// A protobuf varint at `*i`, advancing `*i`.
fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Where the `blob` (field 3, bytes) of a `SnapshotResponse` lies in the
/// protobuf `body`; other fields (`header`, `remaining_bytes`, 3.5's
/// `version`) are skipped. `None` if there is none or `body` does not parse.
fn blob_range(body: &[u8]) -> Option<std::ops::Range<usize>> {
    let mut i = 0;
    let mut blob = None;
    while i < body.len() {
        let tag = varint(body, &mut i)?;
        match tag & 7 {
            0 => {
                varint(body, &mut i)?;
            }
            1 => i += 8,
            2 => {
                let len = usize::try_from(varint(body, &mut i)?).ok()?;
                let end = i.checked_add(len).filter(|&e| e <= body.len())?;
                if tag >> 3 == 3 {
                    blob = Some(i..end); // the last one wins, as in protobuf
                }
                i = end;
            }
            5 => i += 4,
            _ => return None,
        }
    }
    (i == body.len()).then_some(blob).flatten()
}

/// Replaces every (non-overlapping) `from` in `buf` by `to`, in place.
fn replace_all(buf: &mut [u8], from: &[u8], to: &[u8]) {
    let mut k = 0;
    while k + from.len() <= buf.len() {
        if &buf[k..k + from.len()] == from {
            buf[k..k + from.len()].copy_from_slice(to);
            k += from.len();
        } else {
            k += 1;
        }
    }
}

/// Per HTTP/2 stream, for [`Fault::Rewrite`].
#[derive(Default)]
struct Reassembly {
    /// The gRPC message being received (5-byte prefix + body), incomplete.
    partial: Vec<u8>,
    /// The last complete message, not sent yet: it may be the trailer.
    held: Option<Vec<u8>>,
    /// Complete messages received.
    messages: usize,
    /// sha256 of the rewritten blobs sent so far (the db bytes).
    db: sha2::Sha256,
}

impl Reassembly {
    /// The body's blob range of a complete uncompressed gRPC message.
    fn blob(msg: &[u8]) -> Option<std::ops::Range<usize>> {
        if msg.first() != Some(&0) {
            return None; // compressed: etcd never does this
        }
        blob_range(&msg[5..]).map(|r| r.start + 5..r.end + 5)
    }

    /// Rewrites `msg` as a db chunk (another message follows it) and adds its
    /// blob to the db digest.
    fn chunk(&mut self, mut msg: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        if let Some(r) = Self::blob(&msg) {
            let blob = &mut msg[r];
            replace_all(blob, from, to);
            self.db.update(&*blob);
        }
        msg
    }

    /// Takes in a DATA frame's bytes and returns those that may go to the
    /// client now. A complete message is held back until the next one begins:
    /// only then is it known not to be the last (the trailer). Holding at
    /// most one message (~32 KiB) plus a partial one stays within the 64 KiB
    /// initial window, so the server never stalls waiting for the client.
    fn take(&mut self, mut data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !data.is_empty() {
            if let Some(h) = self.held.take() {
                out.extend(self.chunk(h, from, to));
            }
            let need = if self.partial.len() < 5 {
                5 - self.partial.len()
            } else {
                5 + grpc_len(&self.partial) - self.partial.len()
            };
            let n = need.min(data.len());
            self.partial.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.partial.len() >= 5
                && n == need
                && self.partial.len() == 5 + grpc_len(&self.partial)
            {
                self.held = Some(std::mem::take(&mut self.partial));
                self.messages += 1;
            }
        }
        out
    }

    /// The stream ended: the bytes still to send. In a multi-message stream
    /// the held message is the trailer, whose 32-byte blob becomes the sha256
    /// of the rewritten db; a one-message stream goes out untouched.
    fn finish(mut self, from: &[u8], to: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        let mut out = Vec::new();
        if let Some(mut h) = self.held.take() {
            if self.messages > 1 {
                match Self::blob(&h) {
                    Some(r) if r.len() == 32 => h[r].copy_from_slice(&self.db.finalize()),
                    _ => h = self.chunk(h, from, to),
                }
            }
            out = h;
        }
        out.extend_from_slice(&self.partial); // malformed tail: pass it on
        out
    }
}

/// Forwards server→client HTTP/2 frames for [`Fault::Rewrite`]: gRPC
/// messages are reassembled across DATA frames, rewritten, and re-sent in
/// DATA frames of at most 16 KiB. Every message keeps its length, so the
/// client's flow-control accounting matches the server's (padding aside,
/// which etcd's Go server does not send).
fn h2_rewrite_blobs(up: &mut TcpStream, down: &mut TcpStream, from: &[u8], to: &[u8]) {
    let mut streams: std::collections::HashMap<u32, Reassembly> = std::collections::HashMap::new();
    while let Some(f) = Frame::read(up) {
        let sid = f.sid();
        let mut out = Vec::new();
        match f.ty() {
            0 if sid != 0 => {
                let st = streams.entry(sid).or_default();
                let mut data = st.take(f.data(), from, to);
                if f.end_stream() {
                    if let Some(st) = streams.remove(&sid) {
                        data.extend(st.finish(from, to));
                    }
                }
                if !data.is_empty() || f.end_stream() {
                    push_data(&mut out, sid, &data, f.end_stream());
                }
            }
            // Trailers (HEADERS with END_STREAM): the held message goes first.
            1 if f.end_stream() => {
                if let Some(st) = streams.remove(&sid) {
                    push_data(&mut out, sid, &st.finish(from, to), false);
                }
                out.extend_from_slice(&f.hdr);
                out.extend_from_slice(&f.payload);
            }
            ty => {
                if ty == 3 {
                    streams.remove(&sid); // RST_STREAM: the client drops it too
                }
                out.extend_from_slice(&f.hdr);
                out.extend_from_slice(&f.payload);
            }
        }
        if down.write_all(&out).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fault, Proxy};
    use crate::etcd::Cluster;
    use sha2::{Digest, Sha256};
    use std::path::Path;
    use std::process::Command;

    const CANARY_A: &[u8] = b"canary-AAAAAAAA";
    const CANARY_B: &[u8] = b"canary-BBBBBBBB";

    fn etcdctl(endpoint: Option<&str>, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3");
        if let Some(e) = endpoint {
            c.args(["--endpoints", e, "--command-timeout", "10s"]);
        }
        c.args(args).output().unwrap()
    }

    fn save(upstream: u16, fault: Fault, file: &Path) -> Vec<u8> {
        let p = Proxy::start(upstream, fault);
        let o = etcdctl(
            Some(&p.endpoint("http")),
            &["snapshot", "save", file.to_str().unwrap()],
        );
        assert!(o.status.success(), "{fault:?}: {}", crate::text(&o));
        std::fs::read(file).unwrap()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    fn restore(file: &Path, data_dir: &Path) -> std::process::Output {
        etcdctl(
            None,
            &[
                "snapshot",
                "restore",
                file.to_str().unwrap(),
                "--data-dir",
                data_dir.to_str().unwrap(),
            ],
        )
    }

    #[test]
    fn rewrite_alters_the_db_and_recomputes_the_sha256_trailer() {
        let t = tempfile::tempdir().unwrap();
        let c = Cluster::start(&t.path().join("etcd"), &["m0"], None);
        // Enough data for a stream of several 32 KiB messages.
        c.put_many("/registry/test/", 200, 1024, true, 7);
        let o = etcdctl(
            Some(&c.endpoint(0)),
            &["put", "/registry/canary", "vigil-proof-canary-AAAAAAAA"],
        );
        assert!(o.status.success(), "{}", crate::text(&o));
        let port = c.members[0].client_port;

        let clean = save(port, Fault::None, &t.path().join("clean.db"));
        assert!(contains(&clean, CANARY_A) && !contains(&clean, CANARY_B));

        let file = t.path().join("rewritten.db");
        let fault = Fault::Rewrite {
            from: CANARY_A,
            to: CANARY_B,
        };
        let bytes = save(port, fault, &file);
        assert!(bytes.len() > 4 * 32 * 1024, "{} bytes", bytes.len());
        assert!(contains(&bytes, CANARY_B), "the rewrite did not happen");
        assert!(!contains(&bytes, CANARY_A), "an occurrence was left");
        assert_eq!(bytes.len() % 512, 32, "etcd's size rule");
        let (db, trailer) = bytes.split_at(bytes.len() - 32);
        assert_eq!(&Sha256::digest(db)[..], trailer, "trailer must match");
        let restored = t.path().join("restored");
        let o = restore(&file, &restored);
        assert!(o.status.success(), "{}", crate::text(&o));
        let db = std::fs::read(restored.join("member/snap/db")).unwrap();
        assert!(contains(&db, CANARY_B) && !contains(&db, CANARY_A));

        // The control: the same alteration with the original trailer is what
        // restore's hash check catches, so the recomputed trailer is needed.
        let mut stale = clean.clone();
        let n = stale.len() - 32;
        super::replace_all(&mut stale[..n], CANARY_A, CANARY_B);
        let stale_file = t.path().join("stale.db");
        std::fs::write(&stale_file, &stale).unwrap();
        let o = restore(&stale_file, &t.path().join("stale-restored"));
        assert!(!o.status.success(), "a stale trailer must fail restore");
        assert!(
            crate::text(&o).contains("expected sha256"),
            "{}",
            crate::text(&o)
        );
    }
}
