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
        Ok(Member { keys, id, w, sock: wr, rx })
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
