//! The classroom in a browser: a small web server, started with the CLI's `--web`, that serves
//! one page (HTML, script and styles embedded in the binary) and a WebSocket on the same address
//! that connects the page to its own peer.
//!
//! The page is another face of the same [`Node`]: what it sends goes through the node's API
//! ([`json::Command`]), and every [`Event`] the node reports reaches every open page through
//! [`Web::publish`] (a broadcast channel, one WebSocket task per page). A page that connects or
//! reconnects first gets a `history` object (see [`json`]): the peers and the exercises from the
//! node, and the latest chats from this module's own ring ([`history::History`]).
//!
//! Safety:
//! - it listens on loopback unless another address is given; on any other address every request
//!   and the WebSocket need the page's secret token ([`token`]), which the printed address
//!   carries, and the log warns that whoever has that address can act as this peer;
//! - every request must name this server in its `Host` header (`localhost` or an IP literal with
//!   the right port), so that a web site that re-points its own name at 127.0.0.1 (DNS rebinding)
//!   gets nothing;
//! - the WebSocket accepts only the page's own origin (`Origin` equal to `http://` + `Host`);
//! - the page inserts text from peers with `textContent`, never as HTML, and a strict
//!   Content-Security-Policy allows no inline script at all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::event::Event;
use crate::node::Node;

pub mod history;
pub mod json;
pub mod token;

use history::History;
use json::Command;
use token::{Shown, Token};

/// The page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script.
const APP_JS: &str = include_str!("assets/app.js");
/// Its styles.
const STYLE_CSS: &str = include_str!("assets/style.css");
/// Its icon.
const ICON_SVG: &str = include_str!("assets/icon.svg");

/// Largest message a page may send (a problem or answer is at most 256 KiB of text).
const MAX_WS_MESSAGE: usize = 1 << 20;
/// Events queued for a slow page before it is sent the whole history again instead.
const BROADCAST_CAPACITY: usize = 1024;

/// Where the page listens unless told otherwise: loopback, a free port.
pub fn default_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

/// Read the address of `--web ADDR`: `IP:PORT`, `IP` (a free port), `:PORT` or `PORT` (loopback).
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Ok(a) = t.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = t.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 0));
    }
    if let Ok(port) = t.trim_start_matches(':').parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "`{t}` is not an address for the web page; give an IP address, optionally with a port, e.g. --web 127.0.0.1:8080"
    ))
}

/// Split a `Host` header (`name:port`, `[v6]:port`, or without port) into host and port.
fn split_authority(authority: &str) -> Option<(&str, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, 80)),
            p => Some((host, p.strip_prefix(':')?.parse().ok()?)),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, 80)),
        Some((host, port)) if !port.contains(':') => Some((host, port.parse().ok()?)),
        Some(_) => None,
    }
}

/// Does a request's `Host` header name this server? It must carry this server's port and be
/// `localhost` (when listening on loopback or every address), or an IP literal (the listening
/// address itself, or any when listening on every address). Never a DNS name other than
/// `localhost`: that is how DNS rebinding would reach a loopback server.
pub fn host_allowed(host: &str, bound: IpAddr, port: u16) -> bool {
    let Some((name, p)) = split_authority(host.trim()) else { return false };
    if p != port {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return bound.is_loopback() || bound.is_unspecified();
    }
    match name.parse::<IpAddr>() {
        Ok(ip) => bound.is_unspecified() || ip == bound,
        Err(_) => false,
    }
}

/// Is a WebSocket request's `Origin` the page's own, i.e. `http://` followed by the (already
/// checked) `Host`? A request without `Origin` is refused: browsers always send it.
pub fn origin_allowed(origin: Option<&str>, host: &str) -> bool {
    match origin {
        Some(o) => o.strip_prefix("http://").is_some_and(|rest| rest.eq_ignore_ascii_case(host.trim())),
        None => false,
    }
}

/// What the server tasks share.
struct Shared {
    node: Node,
    bound: IpAddr,
    port: u16,
    /// Asked of every request when the page is served off loopback.
    token: Option<Token>,
    history: Mutex<History>,
    tx: broadcast::Sender<Utf8Bytes>,
    cancel: CancellationToken,
}

impl Shared {
    /// Everything a freshly loaded page shows, as the `history` object. The one place that reads
    /// the history: peers, exercises and the recent chats from the node (its history database,
    /// so they survive a restart of the peer); this module's ring only if the node cannot answer.
    async fn history(&self) -> Value {
        let peers = self.node.peers().await.unwrap_or_default();
        let problems = self.node.problems().await.unwrap_or_default();
        let stored = self.node.history(4 * history::DEFAULT_CHAT_LIMIT).await.ok().map(|all| {
            let chats: Vec<crate::event::Message> =
                all.into_iter().filter(|m| matches!(m.body, crate::protocol::Body::Chat { .. })).collect();
            let skip = chats.len().saturating_sub(history::DEFAULT_CHAT_LIMIT);
            chats.into_iter().skip(skip).collect::<Vec<_>>()
        });
        let h = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let chats = stored.unwrap_or_else(|| h.chat());
        json::history(h.me(), &peers, &problems, &chats)
    }
}

/// A running web server of one peer.
pub struct Web {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    server: JoinHandle<()>,
}

impl Web {
    /// Serve the page of `node` on `addr` (see [`default_addr`]). Off loopback, every request
    /// needs the page's token, which [`Web::url`] carries, and a warning is logged: whoever has
    /// that address acts as this peer.
    pub async fn start(node: Node, addr: SocketAddr) -> Result<Web, Error> {
        Web::serve(node, addr, !addr.ip().is_loopback()).await
    }

    /// [`Web::start`], asking for a token (`with_token`) or not, whatever the address.
    async fn serve(node: Node, addr: SocketAddr, with_token: bool) -> Result<Web, Error> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::AddrInUse {
                Error::PortInUse { what: "web page", port: addr.port(), flag: "--web" }
            } else {
                Error::Socket { what: "web page", source }
            }
        })?;
        let local = listener.local_addr().map_err(|source| Error::Socket { what: "web page", source })?;
        let token = with_token.then(Token::new);
        let shown_ip = if local.ip().is_unspecified() { IpAddr::V4(Ipv4Addr::LOCALHOST) } else { local.ip() };
        let mut url = format!("http://{}/", SocketAddr::new(shown_ip, local.port()));
        if let Some(t) = &token {
            url.push_str("?token=");
            url.push_str(t.as_str());
        }
        if !local.ip().is_loopback() {
            tracing::warn!(
                address = %local,
                "the web page listens on {local}, not only on this computer: it asks for its token, and \
                 whoever has its address with the token can read and write as this peer"
            );
        }
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let cancel = CancellationToken::new();
        let shared = Arc::new(Shared {
            node,
            bound: local.ip(),
            port: local.port(),
            token,
            history: Mutex::new(History::new(history::DEFAULT_CHAT_LIMIT)),
            tx,
            cancel: cancel.clone(),
        });
        let app = router(shared.clone());
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(cancel.cancelled_owned());
            if let Err(e) = serve.await {
                tracing::warn!(error = %e, "the web page server stopped");
            }
        });
        // The address is not logged: off loopback it carries the token.
        tracing::info!(address = %local, "web page up");
        Ok(Web { shared, addr: local, url, server })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address to open in a browser, e.g. `http://127.0.0.1:40123/`; off loopback with the
    /// page's token, e.g. `http://10.0.0.5:8080/?token=3f9c…`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Give one event of the node to every open page (and to the history of reloaded ones).
    /// Call it with every event, in order, `Ready` first.
    pub fn publish(&self, e: &Event) {
        let mut buf = Vec::with_capacity(256);
        json::write_event(&mut buf, e);
        // `write_event` writes JSON text, which is UTF-8.
        let text = String::from_utf8(buf).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        let text = Utf8Bytes::from(text);
        let mut h = self.shared.history.lock().unwrap_or_else(PoisonError::into_inner);
        h.record(e);
        // Sent while holding the history lock, so a page that connects sees each event either in
        // its history or on its channel (or both; the page ignores repeats by id).
        let _ = self.shared.tx.send(text);
    }

    /// Close every page's connection and stop the server (bounded: at most about 2 s).
    pub async fn shutdown(self) {
        self.shared.cancel.cancel();
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(2), &mut server).await.is_err() {
            server.abort();
        }
    }
}

/// Open `url` in the desktop's browser with the platform's opener (`xdg-open`, `open`, `start`).
pub fn open_in_browser(url: &str) -> std::io::Result<()> {
    use std::process::{Command as Process, Stdio};
    let mut cmd = if cfg!(target_os = "windows") {
        let mut c = Process::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else if cfg!(target_os = "macos") {
        Process::new("open")
    } else {
        Process::new("xdg-open")
    };
    let mut child = cmd.arg(url).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
    // Reap it without waiting here.
    std::thread::spawn(move || child.wait());
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }))
        .route("/icon.svg", get(|| async { asset("image/svg+xml", ICON_SVG) }))
        .route("/ws", get(websocket))
        .layer(middleware::from_fn_with_state(shared.clone(), check_token))
        .layer(middleware::from_fn_with_state(shared.clone(), check_host))
        .with_state(shared)
}

/// Refuse any request whose `Host` is not this server (see [`host_allowed`]).
async fn check_host(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !host_allowed(host, s.bound, s.port) {
        tracing::warn!(host, "web page: refused a request for another host");
        return (StatusCode::FORBIDDEN, "This server answers only to its own address.\n").into_response();
    }
    next.run(req).await
}

/// Off loopback, refuse any request without the page's token (see [`token`]). The first visit
/// of the page with the token in its address gets the cookie and is sent on to `/`.
async fn check_token(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let Some(token) = &s.token else { return next.run(req).await };
    let cookie = token::cookie_name(s.port);
    match token.shown(req.uri().query(), req.headers(), &cookie) {
        Shown::InQuery if req.method() == axum::http::Method::GET && req.uri().path() == "/" => {
            let mut resp = (StatusCode::SEE_OTHER, "Opening the page.\n").into_response();
            let h = resp.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            if let Ok(v) = HeaderValue::from_str(&token.set_cookie(s.port)) {
                h.insert(header::SET_COOKIE, v);
            }
            resp
        }
        Shown::InQuery | Shown::InCookie => next.run(req).await,
        Shown::Wrong => {
            tracing::debug!(path = req.uri().path(), "web page: refused a request with a wrong token");
            refuse(
                StatusCode::FORBIDDEN,
                "This is not this page's token (the peer makes a new one each time it starts): open the \
                 address it printed last.\n",
            )
        }
        Shown::Missing => {
            tracing::debug!(path = req.uri().path(), "web page: refused a request without the token");
            refuse(
                StatusCode::UNAUTHORIZED,
                "This page needs its token: open the address that the peer printed, the one ending in \
                 ?token=...\n",
            )
        }
    }
}

/// A refusal: one plain sentence.
fn refuse(status: StatusCode, sentence: &'static str) -> Response {
    (status, common_headers("text/plain; charset=utf-8"), sentence).into_response()
}

fn common_headers(content_type: &'static str) -> [(header::HeaderName, HeaderValue); 4] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    ]
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (common_headers(content_type), body).into_response()
}

async fn index(headers: HeaderMap) -> Response {
    // The Host was checked by `check_host`: `localhost` or an IP literal, and a port.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self' ws://{host}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut resp = asset("text/html; charset=utf-8", INDEX_HTML);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

async fn websocket(State(s): State<Arc<Shared>>, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    if !origin_allowed(origin, host) {
        tracing::warn!(origin = origin.unwrap_or("(none)"), "web page: refused a WebSocket from another origin");
        return (StatusCode::FORBIDDEN, "This WebSocket is for the page of this peer only.\n").into_response();
    }
    ws.max_message_size(MAX_WS_MESSAGE).on_upgrade(move |socket| page(s, socket))
}

/// One open page: its history first, then every event, while carrying out its commands.
async fn page(s: Arc<Shared>, mut socket: WebSocket) {
    let mut rx = s.tx.subscribe();
    let first = s.history().await.to_string();
    if socket.send(WsMessage::Text(first.into())).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            _ = s.cancel.cancelled() => {
                let _ = socket.send(WsMessage::Close(None)).await;
                break;
            }
            ev = rx.recv() => {
                let text = match ev {
                    Ok(text) => text,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "web page fell behind; sending the history again");
                        s.history().await.to_string().into()
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if socket.send(WsMessage::Text(text)).await.is_err() {
                    break;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    if let Err(e) = command(&s.node, t.as_str()).await {
                        let reply = json::error(&e).to_string();
                        if socket.send(WsMessage::Text(reply.into())).await.is_err() {
                            break;
                        }
                    }
                }
                Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Carry out one command of the page. Err: one sentence for the person at the page.
async fn command(node: &Node, text: &str) -> Result<(), String> {
    let cmd: Command = serde_json::from_str(text).map_err(|e| {
        tracing::debug!(error = %e, "web page: bad command");
        "the page sent a command this peer does not understand; reload the page".to_string()
    })?;
    let result: Result<(), Error> = async {
        match cmd {
            Command::Chat { text, to: None } => drop(node.chat(text).await?),
            Command::Chat { text, to: Some(to) } => {
                let id = node.find_peer(&to).await?;
                node.private_chat(id, text).await?;
            }
            Command::Problem { title, body, private_answers } => {
                node.post_problem(title, body, private_answers).await?;
            }
            Command::Answer { problem_id, text } => {
                let id = node.find_problem(&problem_id).await?;
                node.answer(id, text).await?;
            }
            Command::Feedback { answer_id, text } => {
                let id = node.find_answer(&answer_id).await?;
                node.feedback(id, text).await?;
            }
        }
        Ok(())
    }
    .await;
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use futures_util::{SinkExt, StreamExt};
    use std::net::Ipv6Addr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite;

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

    #[test]
    fn host_check() {
        assert!(host_allowed("127.0.0.1:8080", LO, 8080));
        assert!(host_allowed("localhost:8080", LO, 8080));
        assert!(host_allowed("LocalHost:8080", LO, 8080));
        assert!(!host_allowed("127.0.0.1:8081", LO, 8080), "another port");
        assert!(!host_allowed("127.0.0.1", LO, 8080), "no port means 80");
        assert!(host_allowed("127.0.0.1", LO, 80));
        assert!(!host_allowed("evil.example:8080", LO, 8080), "a DNS name (rebinding)");
        assert!(!host_allowed("localhost.evil.example:8080", LO, 8080));
        assert!(!host_allowed("10.0.0.5:8080", LO, 8080), "another IP than the bound one");
        assert!(!host_allowed("", LO, 8080));
        assert!(!host_allowed("127.0.0.1:80:80", LO, 80));
        let ten: IpAddr = "10.0.0.5".parse().unwrap();
        assert!(host_allowed("10.0.0.5:8080", ten, 8080));
        assert!(!host_allowed("localhost:8080", ten, 8080), "localhost is not that address");
        assert!(host_allowed("10.9.9.9:8080", ANY, 8080), "every address: any IP literal");
        assert!(host_allowed("localhost:8080", ANY, 8080));
        assert!(!host_allowed("school.example:8080", ANY, 8080));
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(host_allowed("[::1]:8080", v6, 8080));
        assert!(!host_allowed("[::1]:8081", v6, 8080));
        assert!(!host_allowed("::1:8080", v6, 8080));
    }

    #[test]
    fn origin_check() {
        assert!(origin_allowed(Some("http://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(origin_allowed(Some("http://localhost:8080"), "localhost:8080"));
        assert!(!origin_allowed(Some("http://localhost:8080"), "127.0.0.1:8080"));
        assert!(!origin_allowed(Some("http://evil.example"), "127.0.0.1:8080"));
        assert!(!origin_allowed(Some("https://127.0.0.1:8080"), "127.0.0.1:8080"));
        assert!(!origin_allowed(Some("http://127.0.0.1:8080.evil.example"), "127.0.0.1:8080"));
        assert!(!origin_allowed(Some("null"), "127.0.0.1:8080"));
        assert!(!origin_allowed(None, "127.0.0.1:8080"), "no Origin at all");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("127.0.0.1:8080").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(parse_addr("0.0.0.0").unwrap(), "0.0.0.0:0".parse().unwrap());
        assert_eq!(parse_addr(":9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(parse_addr("9000").unwrap(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(parse_addr("[::1]:9000").unwrap(), "[::1]:9000".parse().unwrap());
        assert!(parse_addr("school.example").is_err());
        assert_eq!(default_addr().ip(), LO);
        assert_eq!(split_authority("[::1]"), Some(("::1", 80)));
        assert_eq!(split_authority("[::1]x"), None);
    }

    /// A node on loopback only, with a discovery port and room no other test uses.
    async fn node() -> (Node, crate::Events) {
        let cfg = Config {
            name: "Ada".into(),
            room: format!("web-test-{}", rand::random::<u64>()),
            interfaces: vec!["lo".into()],
            discovery_port: 20_000 + rand::random_range(0..40_000u16),
            ..Config::default()
        };
        Node::start(cfg).await.expect("node starts")
    }

    async fn raw_get(addr: SocketAddr, path: &str, host: &str) -> String {
        raw_request(addr, path, host, "").await
    }

    /// A GET of `path` with `extra` header lines (each ending in CRLF); the whole response.
    async fn raw_request(addr: SocketAddr, path: &str, host: &str, extra: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.unwrap().unwrap();
        out
    }

    async fn ws_connect(
        addr: SocketAddr,
        origin: Option<&str>,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
        tungstenite::Error,
    > {
        ws_connect_with(addr, origin, None).await
    }

    async fn ws_connect_with(
        addr: SocketAddr,
        origin: Option<&str>,
        cookie: Option<&str>,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
        tungstenite::Error,
    > {
        use tungstenite::client::IntoClientRequest;
        let mut req = format!("ws://{addr}/ws").into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("origin", o.parse().unwrap());
        }
        if let Some(c) = cookie {
            req.headers_mut().insert("cookie", c.parse().unwrap());
        }
        let (ws, _) = tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(req))
            .await
            .expect("handshake within 5 s")?;
        Ok(ws)
    }

    async fn next_json<S>(ws: &mut S) -> Value
    where
        S: StreamExt<Item = Result<tungstenite::Message, tungstenite::Error>> + Unpin,
    {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
                .await
                .expect("a message within 5 s")
                .expect("open")
                .expect("no error");
            if let tungstenite::Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).expect("JSON");
            }
        }
    }

    /// A page that falls behind by more than the channel holds is sent the whole history again.
    #[tokio::test]
    async fn a_page_that_falls_behind_gets_the_history_again() {
        let (node, mut events) = node().await;
        let web = Web::start(node.clone(), default_addr()).await.unwrap();
        web.publish(&events.recv().await.unwrap());
        let mut ws = ws_connect(web.local_addr(), Some(&format!("http://{}", web.local_addr()))).await.unwrap();
        assert_eq!(next_json(&mut ws).await["event"], "history");
        // Real chats (the history comes from the node's database), then their events published
        // all at once: on this single-threaded runtime the page's task cannot run meanwhile.
        let n = BROADCAST_CAPACITY as u64 + 100;
        for seq in 1..=n {
            node.chat(format!("chat {seq}")).await.unwrap();
        }
        while let Ok(e) = events.try_recv() {
            web.publish(&e);
        }
        let v = next_json(&mut ws).await;
        assert_eq!(v["event"], "history", "after a lag, the history comes first: {v}");
        let chat = v["chat"].as_array().unwrap();
        assert_eq!(chat.len(), history::DEFAULT_CHAT_LIMIT);
        assert_eq!(chat.last().unwrap()["text"], format!("chat {n}"));
        web.shutdown().await;
        node.shutdown().await;
    }

    /// With a token (as off loopback; here on loopback, which the tests may use): nothing without
    /// it, the page and its WebSocket with it, and the first visit turns it into a cookie.
    #[tokio::test]
    async fn a_page_with_a_token_refuses_every_request_without_it() {
        let (node, mut events) = node().await;
        let web = Web::serve(node.clone(), default_addr(), true).await.unwrap();
        web.publish(&events.recv().await.unwrap());
        let addr = web.local_addr();
        let host = addr.to_string();
        let token = web.shared.token.clone().expect("a token");
        assert_eq!(web.url(), format!("http://{addr}/?token={}", token.as_str()));
        let cookie = format!("{}={}", token::cookie_name(addr.port()), token.as_str());
        let status = |r: &str| r.split(' ').nth(1).unwrap_or("").to_string();

        for path in ["/", "/app.js", "/style.css", "/icon.svg", "/ws", "/nothing"] {
            let r = raw_get(addr, path, &host).await;
            assert_eq!(status(&r), "401", "{path} without the token: {r}");
            assert!(r.contains("needs its token"), "one plain sentence: {r}");
            assert!(!r.contains(token.as_str()), "the refusal does not tell the token");
        }
        let stale = format!("Cookie: {}={}\r\n", token::cookie_name(addr.port()), Token::new().as_str());
        assert_eq!(status(&raw_request(addr, "/", &host, &stale).await), "403", "a stale cookie");
        assert_eq!(status(&raw_get(addr, "/?token=0123", &host).await), "403", "a wrong token");
        let evil = format!("evil.example:{}", addr.port());
        let url_path = format!("/?token={}", token.as_str());
        assert_eq!(status(&raw_get(addr, &url_path, &evil).await), "403", "the Host check still comes first");

        // The printed address: the cookie, and on to the address without the token.
        let r = raw_get(addr, &url_path, &host).await;
        assert_eq!(status(&r), "303", "{r}");
        let lower = r.to_ascii_lowercase();
        assert!(lower.contains("\r\nlocation: /\r\n"), "{r}");
        let set = r.lines().find(|l| l.to_ascii_lowercase().starts_with("set-cookie:")).expect("a cookie");
        assert!(set.contains(&cookie) && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
        let with_cookie = format!("Cookie: theme=dark; {cookie}\r\n");
        let page = raw_request(addr, "/", &host, &with_cookie).await;
        assert_eq!(status(&page), "200", "{page}");
        assert!(page.contains("id=\"chat-log\""));
        assert!(raw_request(addr, "/app.js", &host, &with_cookie).await.contains("textContent"));
        let js = raw_get(addr, &format!("/app.js?token={}", token.as_str()), &host).await;
        assert_eq!(status(&js), "200", "a program may give the token in the query");

        // The WebSocket: the cookie, and still only from the page's own origin.
        let own = format!("http://{addr}");
        for (cookie, want) in [(None, 401), (Some(format!("{}=00", token::cookie_name(addr.port()))), 403)] {
            match ws_connect_with(addr, Some(&own), cookie.as_deref()).await {
                Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), want, "cookie {cookie:?}"),
                other => panic!("cookie {cookie:?} should be refused, got {:?}", other.map(|_| ())),
            }
        }
        match ws_connect_with(addr, Some("http://evil.example"), Some(&cookie)).await {
            Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
            other => panic!("another origin should be refused, got {:?}", other.map(|_| ())),
        }
        let mut ws = ws_connect_with(addr, Some(&own), Some(&cookie)).await.expect("the cookie opens it");
        assert_eq!(next_json(&mut ws).await["event"], "history");
        web.shutdown().await;
        node.shutdown().await;
    }

    #[tokio::test]
    async fn serves_the_page_and_only_to_its_own_origin() {
        let (node, mut events) = node().await;
        let web = Web::start(node.clone(), default_addr()).await.unwrap();
        let addr = web.local_addr();
        assert!(addr.ip().is_loopback());
        assert_eq!(web.url(), format!("http://{addr}/"), "on loopback, no token");
        assert!(web.shared.token.is_none());

        let page = raw_get(addr, "/", &addr.to_string()).await;
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("aria-label=\"Message\"") || page.contains(">Message</label>"), "{page}");
        assert!(page.to_ascii_lowercase().contains("content-security-policy: default-src 'none'"), "{page}");
        assert!(raw_get(addr, "/app.js", &addr.to_string()).await.contains("textContent"));
        let rebound = raw_get(addr, "/", &format!("evil.example:{}", addr.port())).await;
        assert!(rebound.starts_with("HTTP/1.1 403"), "another Host is refused: {rebound}");

        for bad in [Some("http://evil.example"), Some(&*format!("http://localhost:{}", addr.port())), None] {
            match ws_connect(addr, bad).await {
                Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403, "origin {bad:?}"),
                other => panic!("origin {bad:?} should be refused, got {:?}", other.map(|_| ())),
            }
        }

        // The page's own origin: history first, then live events; commands reach the node.
        let own = format!("http://{addr}");
        let ready = events.recv().await.unwrap();
        web.publish(&ready);
        let mut ws = ws_connect(addr, Some(&own)).await.expect("own origin accepted");
        let h = next_json(&mut ws).await;
        assert_eq!(h["event"], "history");
        assert_eq!(h["me"]["name"], "Ada");
        assert_eq!(h["chat"], serde_json::json!([]));

        let text = "<script>alert(1)</script> hello\nclass";
        let cmd = serde_json::json!({"cmd": "chat", "text": text}).to_string();
        ws.send(tungstenite::Message::Text(cmd.into())).await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        let Event::Message(m) = &e else { panic!("expected the own chat, got {e:?}") };
        assert!(m.own && matches!(&m.body, crate::Body::Chat { text: t } if t == text));
        web.publish(&e);
        let v = next_json(&mut ws).await;
        assert_eq!(
            (v["event"].as_str(), v["text"].as_str(), v["own"].as_bool()),
            (Some("chat"), Some(text), Some(true))
        );

        // An answer to a problem that does not exist: an error sentence, and the page stays open.
        let cmd = serde_json::json!({"cmd": "answer", "problem_id": "abcd-9", "text": "x"}).to_string();
        ws.send(tungstenite::Message::Text(cmd.into())).await.unwrap();
        let v = next_json(&mut ws).await;
        assert_eq!(v["event"], "error");
        assert!(v["message"].as_str().unwrap().contains("no problem"), "{v}");
        ws.send(tungstenite::Message::Text("{\"cmd\":\"rm\"}".into())).await.unwrap();
        assert!(next_json(&mut ws).await["message"].as_str().unwrap().contains("does not understand"));

        // A quiz posted from the page, then a reloaded page: history has the chat and the quiz.
        let cmd = serde_json::json!({"cmd": "problem", "title": "Q", "body": "b", "private_answers": true});
        ws.send(tungstenite::Message::Text(cmd.to_string().into())).await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv()).await.unwrap().unwrap();
        web.publish(&e);
        let mut again = ws_connect(addr, Some(&own)).await.unwrap();
        let h = next_json(&mut again).await;
        assert_eq!(h["chat"][0]["text"], text);
        assert_eq!(h["problems"][0]["title"], "Q");
        assert_eq!(h["problems"][0]["private_answers"], true);

        web.shutdown().await;
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(m)) = again.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "pages are closed at shutdown");
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "server stopped");
        node.shutdown().await;
    }
}
