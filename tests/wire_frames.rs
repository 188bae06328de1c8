//! Malformed frames get a protocol violation (FATAL 08P01) and a closed
//! connection, never a panic; the server carries on for everyone else. The
//! harness fails any test whose server log shows "panicked at".

mod common;

use common::wire::{Backend, RawConnection, assert_fatal, cstring, query, sync, typed};
use common::{Server, TempDir, table, text_rows};

/// A `Parse` body with `count` declared types and `types` actually sent.
fn parse_claiming(count: i16, types: &[i32]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend(cstring("SELECT 1"));
    body.extend_from_slice(&count.to_be_bytes());
    for t in types {
        body.extend_from_slice(&t.to_be_bytes());
    }
    typed(b'P', &body)
}

/// A `Bind` body: `formats` parameter format codes, `count` declared values
/// of which `values` are sent, then `results` result format codes.
fn bind_claiming(
    formats: &[i16],
    count: i16,
    values: &[Option<&[u8]>],
    results: &[i16],
) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(formats.len() as i16).to_be_bytes());
    for f in formats {
        body.extend_from_slice(&f.to_be_bytes());
    }
    body.extend_from_slice(&count.to_be_bytes());
    for v in values {
        match v {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(bytes) => {
                body.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                body.extend_from_slice(bytes);
            }
        }
    }
    body.extend_from_slice(&(results.len() as i16).to_be_bytes());
    for r in results {
        body.extend_from_slice(&r.to_be_bytes());
    }
    typed(b'B', &body)
}

async fn violation_closes(port: u16, bytes: Vec<u8>) {
    let mut conn = RawConnection::ready(port, "vivace").await;
    conn.send(&bytes).await;
    conn.send(&query("SELECT 1")).await;
    assert_fatal(&conn.until_closed().await, "08P01");
}

#[tokio::test]
async fn malformed_frames_are_protocol_violations() {
    let dir = TempDir::new("frames");
    let server = Server::start(&dir).await;
    let port = server.port;

    // Parse claiming 65,535 (or a negative number of) parameter types, none sent.
    violation_closes(port, parse_claiming(-1, &[])).await;
    violation_closes(port, parse_claiming(3, &[23])).await;
    // Bind claiming 65,535 values, a negative count, a value of length 2^31-1.
    violation_closes(port, bind_claiming(&[], -1, &[], &[])).await;
    violation_closes(port, bind_claiming(&[], -2, &[], &[])).await;
    let mut huge = bind_claiming(&[], 1, &[], &[]);
    huge.truncate(huge.len() - 2);
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    huge.extend_from_slice(&0i16.to_be_bytes());
    let len = (huge.len() - 1) as i32;
    huge[1..5].copy_from_slice(&len.to_be_bytes());
    violation_closes(port, huge).await;
    // Parameter formats that match neither one nor every value; a bad format code.
    violation_closes(port, bind_claiming(&[0, 1], 3, &[None, None, None], &[])).await;
    violation_closes(port, bind_claiming(&[7], 0, &[], &[])).await;
    // Lengths below the minimum, beyond the 64 MiB limit (refused at the
    // header, before any body is sent), trailing bytes, unknown types.
    violation_closes(port, vec![b'Q', 0, 0, 0, 2]).await;
    violation_closes(port, vec![b'Q', 0x10, 0, 0, 0]).await;
    violation_closes(port, vec![b'Q', 0x7f, 0xff, 0xff, 0xff]).await;
    violation_closes(port, typed(b'S', b"extra")).await;
    violation_closes(port, typed(b'F', &[0, 0])).await;
    violation_closes(port, typed(b'D', b"X\0")).await;

    // Result formats that do not match the columns: an error, not a panic; the
    // session goes on after Sync.
    let mut conn = RawConnection::ready(port, "vivace").await;
    let mut bytes = typed(
        b'P',
        &[&[0u8][..], &cstring("SELECT 1, 2"), &[0, 0]].concat(),
    );
    bytes.extend(bind_claiming(&[], 0, &[], &[0, 1, 0]));
    bytes.extend(typed(b'E', &[0, 0, 0, 0, 0]));
    bytes.extend(sync());
    conn.send(&bytes).await;
    let answered = conn.until_ready().await;
    let error = answered.iter().find_map(Backend::error);
    assert_eq!(
        error,
        Some(("ERROR".into(), "08P01".into())),
        "{answered:?}"
    );
    conn.send(&query("SELECT 40 + 2")).await;
    let answered = conn.until_ready().await;
    assert!(answered.iter().any(|m| m.kind == b'D'), "{answered:?}");

    let client = server.client().await;
    assert_eq!(text_rows(&client, "SELECT 1").await, table(&[&["1"]]));
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A frame built from a real message by mutation: counts and lengths inside
/// the body replaced by extreme values, bits flipped, the body cut or extended.
fn mutated_frame(rng: &mut Rng) -> Vec<u8> {
    let seeds: Vec<Vec<u8>> = vec![
        parse_claiming(1, &[23]),
        bind_claiming(&[0], 1, &[Some(b"42")], &[1]),
        typed(b'E', &[0, 0, 0, 0, 5]),
        typed(b'D', b"S\0"),
        typed(b'C', b"P\0"),
        query("SELECT 1"),
        typed(b'p', b"SCRAM-SHA-256\0\0\0\0\x01x"),
        typed(b'd', b"1\t2\n"),
        typed(b'f', b"oops\0"),
        sync(),
    ];
    let mut frame = seeds[rng.below(seeds.len() as u64) as usize].clone();
    let extremes: [&[u8]; 6] = [
        &[0xff, 0xff],
        &[0x7f, 0xff],
        &[0x80, 0x00],
        &[0x7f, 0xff, 0xff, 0xff],
        &[0xff, 0xff, 0xff, 0xfe],
        &[0x00, 0x00, 0x00, 0x00],
    ];
    for _ in 0..=rng.below(3) {
        match rng.below(4) {
            0 if frame.len() > 5 => {
                let at = 5 + rng.below((frame.len() - 5) as u64) as usize;
                let with = extremes[rng.below(extremes.len() as u64) as usize];
                for (i, b) in with.iter().enumerate() {
                    if let Some(slot) = frame.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            1 => {
                // The type byte or the body; the length is set below.
                let at = match rng.below(frame.len() as u64 - 4) as usize {
                    0 => 0,
                    n => 4 + n,
                };
                frame[at] ^= 1 << rng.below(8);
            }
            2 if frame.len() > 5 => {
                let keep = 5 + rng.below((frame.len() - 4) as u64) as usize;
                frame.truncate(keep);
            }
            _ => {
                for _ in 0..rng.below(8) {
                    frame.push(rng.below(256) as u8);
                }
            }
        }
    }
    // The length stays honest: a frame claiming more than is sent makes any
    // server wait for the rest (lengths themselves are tested above).
    let len = (frame.len() - 1) as i32;
    frame[1..5].copy_from_slice(&len.to_be_bytes());
    frame
}

#[tokio::test]
async fn two_thousand_mutated_frames_never_panic_the_server() {
    let dir = TempDir::new("fuzz-frames");
    let server = Server::start(&dir).await;
    let mut rng = Rng(0x005e_ed0f_7a11_c0de);
    let mut closed = 0;
    for _ in 0..2_000 {
        let mut conn = RawConnection::ready(server.port, "vivace").await;
        let mut bytes = mutated_frame(&mut rng);
        bytes.extend(sync());
        bytes.extend(query("SELECT 1"));
        conn.send(&bytes).await;
        // Either the session answers the SELECT that follows, or it ends with
        // a protocol violation; never a dropped connection without a word.
        let mut answered = Vec::new();
        let mut selected = false;
        while let Some(message) = conn.next().await {
            selected |= message.kind == b'D';
            answered.push(message);
            if selected && answered.last().is_some_and(|m| m.kind == b'Z') {
                break;
            }
        }
        if !selected {
            closed += 1;
            let fatal = answered.iter().rev().find_map(Backend::error);
            if let Some((severity, code)) = fatal
                && severity == "FATAL"
            {
                assert_eq!(code, "08P01", "{answered:?}");
            }
        }
    }
    assert!(
        closed > 100,
        "the mutations should break many frames ({closed})"
    );
    let client = server.client().await;
    assert_eq!(text_rows(&client, "SELECT 1").await, table(&[&["1"]]));
}
