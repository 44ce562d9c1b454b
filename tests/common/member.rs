//! A raw member of a room: a Noise client written against the crate's own `protocol`,
//! `codec` and `transport::noise` types, that joins a running peer's room as any member would
//! (the handshake, its hello) and then sends whatever frames a test gives it, hostile ones
//! included, while a task collects every frame the peer sends it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use lanpeer::PeerId;
use lanpeer::codec::{self, Received};
use lanpeer::crypto::{SessionKeys, StaticKeys};
use lanpeer::protocol::{Body, Envelope, Frame, Hello};
use lanpeer::transport::noise::{self, NoiseReader, NoiseWriter};
use lanpeer::{MsgId, authorship, merkle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder};

/// How a [`Member`] joins.
#[derive(Clone, Copy)]
pub struct Join<'a> {
    /// The room.
    pub room: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its props (e.g. a role).
    pub props: &'a [(&'a str, &'a str)],
    /// The source address to connect from (None: the system's choice).
    pub from: Option<std::net::IpAddr>,
    /// Name itself in Noise message 1, as a peer dialing a peer it knows of does (false: names
    /// nobody, as a seed dial).
    pub claim: bool,
}

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
    /// The room it joined.
    pub room: String,
    /// Its name.
    pub name: String,
    next_seq: u64,
    next_lseq: u64,
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
        let how = Join { room, name, props, from: None, claim: false };
        Member::try_join(keys, addr, how).await.expect("joins the room")
    }

    /// Join as `how` says; Err when the peer refuses (closes the connection) before its hello.
    pub async fn try_join(keys: StaticKeys, addr: std::net::SocketAddr, how: Join<'_>) -> std::io::Result<Member> {
        let session = SessionKeys { statics: keys.clone(), psk: None };
        let mut s = match how.from {
            Some(ip) => {
                let sock = if ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
                sock.bind(std::net::SocketAddr::new(ip, 0))?;
                sock.connect(addr).await?
            }
            None => TcpStream::connect(addr).await?,
        };
        let claim = how.claim.then(|| keys.peer_id());
        let opened = noise::open(&mut s, noise::Intro::Dialer(claim), &session).await.map_err(std::io::Error::other)?;
        let ts = opened.ts;
        let mut w = NoiseWriter::new(ts.clone(), 1 << 20);
        let mut r = NoiseReader::new(ts, 1 << 20);
        let hello = Hello {
            id: keys.peer_id(),
            identity: keys.identity,
            incarnation: rand::random(),
            name: how.name.into(),
            room: how.room.into(),
            tcp_port: 9,
            props: how.props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        // Message 3 of the handshake, then the hello and the first frames, in one write.
        let mut out = BytesMut::from(&opened.unsent[..]);
        w.encode(codec::encode(&Frame::Hello(hello)).unwrap(), &mut out).unwrap();
        // As every peer does first: its stream to this peer starts from nothing.
        w.encode(codec::encode(&Frame::Resume { done: 0, last: 0 }).unwrap(), &mut out).unwrap();
        let (mut rd, mut wr) = s.into_split();
        wr.write_all(&out).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let mut buf = opened.rest;
        tokio::spawn(async move {
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
        Ok(Member {
            keys,
            id,
            w,
            sock: wr,
            rx,
            room: how.room.into(),
            name: how.name.into(),
            next_seq: 1,
            next_lseq: 1,
        })
    }

    /// Its next message (its own next number), to everyone.
    pub fn envelope(&mut self, body: Body) -> Envelope {
        let seq = self.next_seq;
        self.next_seq += 1;
        Envelope {
            id: MsgId { author: self.id, seq },
            author_name: self.name.clone(),
            sent_ms: 1_700_000_000_000 + seq,
            to: None,
            body,
            files: vec![],
        }
    }

    /// The seals that prove `envs` (its own, numbered one after another), as frames.
    pub fn seals(&self, envs: &[Envelope]) -> Vec<Bytes> {
        let mut out = Vec::new();
        for chunk in envs.chunks(lanpeer::protocol::MAX_SEALED as usize) {
            let leaves: Vec<merkle::Hash> = chunk.iter().map(|e| merkle::leaf(&codec::encode(e).unwrap())).collect();
            let first = chunk[0].id.seq;
            let batch = authorship::sign_batch(&self.keys, &self.room, first, &leaves);
            let all: Vec<u32> = (0..leaves.len() as u32).collect();
            let seal = batch.seal(&all, |i| leaves.get(i as usize).copied()).unwrap();
            out.push(codec::encode(&Frame::Seal(seal)).unwrap());
        }
        out
    }

    /// Send `envs` on its stream to the peer (the next stream numbers), with their seals, in
    /// one write.
    pub async fn stream(&mut self, envs: &[Envelope]) {
        let mut frames = Vec::with_capacity(envs.len() + 1);
        for e in envs {
            let lseq = self.next_lseq;
            self.next_lseq += 1;
            frames.push(codec::message_frame(lseq, codec::encode(e).unwrap()).unwrap().to_bytes());
        }
        frames.extend(self.seals(envs));
        self.send_bytes(frames).await;
    }

    /// Skip `n` numbers of its stream (a gap the peer waits for).
    pub fn skip_stream(&mut self, n: u64) {
        self.next_lseq += n;
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
