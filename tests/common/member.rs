//! A raw member of a room: a Noise client written against the crate's own `protocol`,
//! `codec` and `transport::noise` types, that joins a running peer's room as any member would
//! (the handshake, its hello) and then sends whatever frames a test gives it, hostile ones
//! included, while a task collects every frame the peer sends it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanpeer::PeerId;
use lanpeer::codec::{self, Received};
use lanpeer::crypto::{SessionKeys, StaticKeys};
use lanpeer::protocol::{Frame, Hello};
use lanpeer::transport::noise::{self, NoiseReader, NoiseWriter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};

/// A member speaking the protocol by hand.
pub struct Member {
    /// Its keys (its identity: it signs what it sends as itself).
    pub keys: StaticKeys,
    /// Its id.
    pub id: PeerId,
    w: NoiseWriter,
    sock: OwnedWriteHalf,
    /// Every frame the peer sent it, in order (its hello first).
    pub rx: mpsc::UnboundedReceiver<Received>,
}

impl Member {
    /// Join the room `room` of the peer listening at `addr`, as `name` (with `props`, e.g. a
    /// role), with a fresh identity.
    pub async fn join(addr: std::net::SocketAddr, room: &str, name: &str, props: &[(&str, &str)]) -> Member {
        Member::join_as(StaticKeys::generate(), addr, room, name, props).await
    }

    /// The same, with the identity `keys`.
    pub async fn join_as(
        keys: StaticKeys,
        addr: std::net::SocketAddr,
        room: &str,
        name: &str,
        props: &[(&str, &str)],
    ) -> Member {
        let session = SessionKeys { statics: keys.clone(), psk: None };
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let ts = noise::handshake(&mut s, true, &session).await.expect("noise handshake");
        let mut w = NoiseWriter::new(ts.clone(), 1 << 20);
        let mut r = NoiseReader::new(ts, 1 << 20);
        let hello = Hello {
            id: keys.peer_id(),
            identity: keys.identity,
            incarnation: rand::random(),
            name: name.into(),
            room: room.into(),
            tcp_port: 9,
            props: props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        let mut out = BytesMut::new();
        w.encode(codec::encode(&Frame::Hello(hello)).unwrap(), &mut out).unwrap();
        // As every peer does first: its stream to this peer starts from nothing.
        w.encode(codec::encode(&Frame::Resume { done: 0, last: 0 }).unwrap(), &mut out).unwrap();
        let (mut rd, mut wr) = s.into_split();
        wr.write_all(&out).await.unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            loop {
                loop {
                    match r.decode(&mut buf) {
                        Ok(Some(f)) => match codec::decode_received(&f) {
                            Ok(frame) => {
                                if tx.send(frame).is_err() {
                                    return;
                                }
                            }
                            Err(_) => continue,
                        },
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
                let mut b = [0u8; 16384];
                match rd.read(&mut b).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&b[..n]),
                }
            }
        });
        let id = keys.peer_id();
        Member { keys, id, w, sock: wr, rx }
    }

    /// Send frames, each already encoded, in one write.
    pub async fn send_bytes(&mut self, frames: Vec<Bytes>) {
        let mut out = BytesMut::new();
        for f in frames {
            self.w.encode(f, &mut out).unwrap();
        }
        let _ = self.sock.write_all(&out).await;
    }

    /// Send frames in one write.
    pub async fn send(&mut self, frames: &[Frame]) {
        self.send_bytes(frames.iter().map(|f| codec::encode(f).unwrap()).collect()).await;
    }

    /// The next frame the peer sent that `pred` accepts, within `within` (the others skipped).
    pub async fn next_where(&mut self, within: Duration, mut pred: impl FnMut(&Received) -> bool) -> Received {
        tokio::time::timeout(within, async {
            loop {
                match self.rx.recv().await {
                    Some(f) if pred(&f) => return f,
                    Some(_) => continue,
                    None => panic!("the peer closed the session"),
                }
            }
        })
        .await
        .expect("no such frame in time")
    }

    /// Is the session still open (the peer has not closed it)?
    pub fn is_open(&self) -> bool {
        !self.rx.is_closed()
    }
}
