//! A bare SIP client over UDP and TCP: bytes out, responses back.
//!
//! SIPp only sends well-formed SIP; the robustness tests need to send
//! garbage, truncated and oversized messages and look at exactly what comes
//! back, so this client writes whatever bytes it is given and parses only
//! the responses (status line, headers, Content-Length framing on TCP).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A fresh token for branches, tags and Call-IDs.
pub fn unique_token() -> String {
    format!(
        "{}x{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// One SIP response as received.
#[derive(Clone, Debug)]
pub struct SipResponse {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The reason phrase, e.g. "OK".
    pub reason: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (after the blank line).
    pub body: String,
    /// The whole message as text, for failure messages.
    pub raw: String,
}

impl SipResponse {
    /// Parses one response; `None` if the text is not a SIP/2.0 response.
    pub fn parse(text: &str) -> Option<SipResponse> {
        let (head, body) = match text.find("\r\n\r\n") {
            Some(i) => (&text[..i], &text[i + 4..]),
            None => (text, ""),
        };
        let mut lines = head.split("\r\n");
        let status_line = lines.next()?;
        let rest = status_line.strip_prefix("SIP/2.0 ")?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status = code.parse().ok()?;
        let headers = header_fields(lines);
        Some(SipResponse {
            status,
            reason: reason.to_string(),
            headers,
            body: body.to_string(),
            raw: text.to_string(),
        })
    }

    /// The first value of a header, by full or compact name (RFC 3261
    /// 7.3.3), case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    /// Every value of a header, by full or compact name.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        values_named(&self.headers, name)
    }

    /// The tag parameter of the To header, which names the dialog's UAS side.
    pub fn to_tag(&self) -> Option<String> {
        let to = self.header("To")?;
        to.split(';')
            .skip(1)
            .filter_map(|p| p.trim().strip_prefix("tag="))
            .map(|t| t.trim_end_matches('>').to_string())
            .next()
    }

    /// Whether a comma-separated header (Allow, Supported, Accept) lists
    /// `token`, over all its occurrences.
    pub fn lists(&self, header: &str, token: &str) -> bool {
        self.headers_named(header)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

/// One SIP request as received: what vmesh sends to a caller (its BYE).
#[derive(Clone, Debug)]
pub struct SipRequest {
    /// The method, e.g. "BYE".
    pub method: String,
    /// The Request-URI.
    pub uri: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (after the blank line).
    pub body: String,
    /// The whole message as text, for failure messages.
    pub raw: String,
}

impl SipRequest {
    /// Parses one request; `None` if the text is not a SIP/2.0 request.
    pub fn parse(text: &str) -> Option<SipRequest> {
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
        let mut lines = head.split("\r\n");
        let mut start = lines.next()?.split(' ');
        let (method, uri, version) = (start.next()?, start.next()?, start.next()?);
        if version != "SIP/2.0" || method.is_empty() {
            return None;
        }
        let headers = header_fields(lines);
        Some(SipRequest {
            method: method.to_string(),
            uri: uri.to_string(),
            headers,
            body: body.to_string(),
            raw: text.to_string(),
        })
    }

    /// Every value of a header, by full or compact name, case-insensitively.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        values_named(&self.headers, name)
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers_named(name).into_iter().next()
    }

    /// A bodiless response to this request, with Via, From, To, Call-ID
    /// and CSeq copied as RFC 3261 8.2.6.2 asks (the To already carries
    /// the peer's tag for an in-dialog request).
    pub fn response(&self, status: u16, reason: &str) -> String {
        let mut text = format!("SIP/2.0 {status} {reason}\r\n");
        for via in self.headers_named("Via") {
            text.push_str(&format!("Via: {via}\r\n"));
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(value) = self.header(name) {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        text.push_str("Content-Length: 0\r\n\r\n");
        text
    }
}

/// The `name: value` fields of a message head, in order, trimmed.
fn header_fields<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_string(), value.trim().to_string()))
        .collect()
}

/// Every value of header `name` among `headers`, by full or compact name
/// (RFC 3261 7.3.3), case-insensitively.
fn values_named<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let compact = compact_form(name);
    headers
        .iter()
        .filter(|(n, _)| {
            n.eq_ignore_ascii_case(name) || compact.is_some_and(|c| n.eq_ignore_ascii_case(c))
        })
        .map(|(_, v)| v.as_str())
        .collect()
}

fn compact_form(name: &str) -> Option<&'static str> {
    const FORMS: [(&str, &str); 10] = [
        ("Via", "v"),
        ("From", "f"),
        ("To", "t"),
        ("Call-ID", "i"),
        ("Contact", "m"),
        ("Content-Length", "l"),
        ("Content-Type", "c"),
        ("Supported", "k"),
        ("Subject", "s"),
        ("Content-Encoding", "e"),
    ];
    FORMS
        .iter()
        .find(|(full, _)| full.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

/// A well-formed out-of-dialog request from `local` over `transport`
/// ("UDP" or "TCP"), with the given extra header lines and body; the
/// robustness tests break copies of it on purpose.
pub fn request(
    method: &str,
    request_uri: &str,
    local: SocketAddr,
    transport: &str,
    extra_headers: &[&str],
    body: &str,
) -> String {
    let token = unique_token();
    let mut text = format!(
        "{method} {request_uri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {local};branch=z9hG4bK{token};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:5551234@{ip}>;tag=t{token}\r\n\
         To: <{request_uri}>\r\n\
         Call-ID: {token}@{ip}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:5551234@{local};transport={lower}>\r\n",
        ip = local.ip(),
        lower = transport.to_ascii_lowercase(),
    );
    for header in extra_headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    text
}

/// A SIP client on a UDP socket of its own.
pub struct SipUdp {
    socket: UdpSocket,
    server: SocketAddr,
}

impl SipUdp {
    /// Binds an ephemeral port on `local_ip` and aims at `server`.
    pub fn bind(local_ip: Ipv4Addr, server: SocketAddr) -> SipUdp {
        let socket = UdpSocket::bind((local_ip, 0)).expect("bind a UDP socket for the SIP client");
        SipUdp { socket, server }
    }

    /// The address responses come back to (for Via and Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("local address")
    }

    /// Sends one datagram (up to 64 KB; larger ones are cut by the kernel
    /// with an error, which the caller sees as a panic).
    pub fn send(&self, bytes: &[u8]) {
        self.socket
            .send_to(bytes, self.server)
            .expect("send a UDP datagram to the server");
    }

    /// The next SIP response within `timeout`, skipping datagrams that are
    /// not responses; `None` when none came.
    pub fn recv(&self, timeout: Duration) -> Option<SipResponse> {
        self.recv_parsed(timeout, SipResponse::parse)
    }

    /// The next datagram within `timeout` that `parse` accepts.
    fn recv_parsed<T>(&self, timeout: Duration, parse: fn(&str) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            match self.socket.recv_from(&mut buf) {
                Ok((n, _)) => {
                    if let Some(parsed) = parse(&String::from_utf8_lossy(&buf[..n])) {
                        return Some(parsed);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None
                }
                Err(e) => panic!("receive on the SIP client socket: {e}"),
            }
        }
    }

    /// The next final response to `method` within `timeout`, skipping
    /// provisional responses and responses to other methods.
    pub fn final_response_to(&self, method: &str, timeout: Duration) -> Option<SipResponse> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let response = self.recv(left)?;
            let cseq = response
                .header("CSeq")
                .and_then(|c| c.split_whitespace().nth(1));
            if response.status >= 200 && cseq == Some(method) {
                return Some(response);
            }
        }
    }

    /// Sends a request and returns its final response (skipping 1xx).
    pub fn transact(&self, request: &str, timeout: Duration) -> Option<SipResponse> {
        self.send(request.as_bytes());
        final_response(|left| self.recv(left), timeout)
    }

    /// Sends `request` and returns its final response (`None` if none came
    /// within `timeout`) with the requests the server sent before it (its
    /// own BYE, say), in order. A server's datagrams arrive over loopback
    /// in the order it sent them, so the response marks that nothing it
    /// sent earlier is still on its way.
    pub fn transact_noting_requests(
        &self,
        request: &str,
        timeout: Duration,
    ) -> (Vec<SipRequest>, Option<SipResponse>) {
        let method = request.split(' ').next().unwrap_or_default().to_string();
        self.send(request.as_bytes());
        let deadline = Instant::now() + timeout;
        let mut requests = Vec::new();
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return (requests, None);
            };
            let received = self.recv_parsed(left, |text| {
                SipRequest::parse(text)
                    .map(Ok)
                    .or_else(|| SipResponse::parse(text).map(Err))
            });
            match received {
                None => return (requests, None),
                Some(Ok(request)) => requests.push(request),
                Some(Err(response)) => {
                    let cseq = response
                        .header("CSeq")
                        .and_then(|c| c.split_whitespace().nth(1));
                    if response.status >= 200 && cseq == Some(method.as_str()) {
                        return (requests, Some(response));
                    }
                }
            }
        }
    }

    /// The next SIP request within `timeout` (a request vmesh sends in a
    /// dialog, such as its BYE), skipping datagrams that are not requests.
    pub fn recv_request(&self, timeout: Duration) -> Option<SipRequest> {
        self.recv_parsed(timeout, SipRequest::parse)
    }
}

/// SIP messages read off a stream (TCP or TLS), framed by Content-Length
/// (RFC 3261 18.3).
#[derive(Default)]
pub struct StreamFramer {
    pending: Vec<u8>,
}

impl StreamFramer {
    /// Keeps bytes read off the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete message, if one has arrived whole.
    pub fn take_message(&mut self) -> Option<String> {
        // Keep-alive CRLFs (RFC 5626 3.5.1) between messages are skipped.
        while self.pending.starts_with(b"\r\n") {
            self.pending.drain(..2);
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        let head_end = text.find("\r\n\r\n")? + 4;
        let length = text[..head_end]
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| {
                let n = n.trim();
                n.eq_ignore_ascii_case("Content-Length") || n.eq_ignore_ascii_case("l")
            })
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if self.pending.len() < head_end + length {
            return None;
        }
        let message: Vec<u8> = self.pending.drain(..head_end + length).collect();
        Some(String::from_utf8_lossy(&message).into_owned())
    }

    /// The next complete response within `timeout`, reading more with
    /// `read(time left, buffer)` as needed (requests are skipped); `None`
    /// on timeout, when the peer closed, or on a read error.
    pub fn recv_response(
        &mut self,
        timeout: Duration,
        mut read: impl FnMut(Duration, &mut [u8]) -> std::io::Result<usize>,
    ) -> Option<SipResponse> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.take_message() {
                if let Some(response) = SipResponse::parse(&message) {
                    return Some(response);
                }
                continue;
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let mut buf = [0u8; 16384];
            match read(left.max(Duration::from_millis(1)), &mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.push(&buf[..n]),
            }
        }
    }
}

/// A SIP client on one TCP connection.
pub struct SipTcp {
    stream: TcpStream,
    framer: StreamFramer,
}

impl SipTcp {
    /// Connects to the server; panics if it does not accept within 2 s.
    pub fn connect(server: SocketAddr) -> SipTcp {
        let stream = TcpStream::connect_timeout(&server, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("TCP connect to {server}: {e}"));
        stream.set_nodelay(true).ok();
        SipTcp {
            stream,
            framer: StreamFramer::default(),
        }
    }

    /// Connects to the server from `local_ip` (any free port), as a mesh
    /// peer does: the server recognises peers by the source address.
    pub fn connect_from(local_ip: Ipv4Addr, server: SocketAddr) -> SipTcp {
        let stream = tcp_connect_from(local_ip, server)
            .unwrap_or_else(|e| panic!("TCP connect from {local_ip} to {server}: {e}"));
        stream.set_nodelay(true).ok();
        SipTcp {
            stream,
            framer: StreamFramer::default(),
        }
    }

    /// The local end of the connection (for Via and Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local address")
    }

    /// Sends a request given as bytes (a body need not be text) and returns
    /// its final response (skipping 1xx).
    pub fn transact_bytes(&mut self, request: &[u8], timeout: Duration) -> Option<SipResponse> {
        if !self.send(request) {
            return None;
        }
        final_response(|left| self.recv(left), timeout)
    }

    /// Writes bytes; `false` if the server has closed the connection.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).is_ok()
    }

    /// The next complete response (framed by Content-Length, RFC 3261
    /// 18.3) within `timeout`; `None` on timeout or when the server closed.
    pub fn recv(&mut self, timeout: Duration) -> Option<SipResponse> {
        let stream = &mut self.stream;
        self.framer.recv_response(timeout, |left, buf| {
            stream.set_read_timeout(Some(left))?;
            stream.read(buf)
        })
    }

    /// Sends a request and returns its final response (skipping 1xx).
    pub fn transact(&mut self, request: &str, timeout: Duration) -> Option<SipResponse> {
        if !self.send(request.as_bytes()) {
            return None;
        }
        final_response(|left| self.recv(left), timeout)
    }

    /// Waits up to `timeout` for the server to close the connection (a read
    /// returns 0 or the connection is reset); bytes that arrive meanwhile
    /// are kept for `recv`. `false` if it is still open at the deadline.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            if self
                .stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_err()
            {
                return true;
            }
            let mut buf = [0u8; 16384];
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => self.framer.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

/// A blocking TCP connection to `remote` from `local_ip` (any free port),
/// within 2 s. The standard library cannot bind before connecting, so the
/// socket is made with tokio's `TcpSocket` on a throwaway runtime.
pub fn tcp_connect_from(local_ip: Ipv4Addr, remote: SocketAddr) -> std::io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((local_ip, 0)))?;
        let stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(remote))
            .await
            .map_err(|_| std::io::Error::new(ErrorKind::TimedOut, "connect timed out"))??;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// The first final response `recv` gives within `timeout` (1xx skipped).
pub fn final_response(
    mut recv: impl FnMut(Duration) -> Option<SipResponse>,
    timeout: Duration,
) -> Option<SipResponse> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let response = recv(left)?;
        if response.status >= 200 {
            return Some(response);
        }
    }
}

/// Sends OPTIONS over UDP from `local_ip` and returns the final response.
pub fn options_udp(
    local_ip: Ipv4Addr,
    server: SocketAddr,
    timeout: Duration,
) -> Option<SipResponse> {
    let client = SipUdp::bind(local_ip, server);
    let text = request(
        "OPTIONS",
        &format!("sip:{server}"),
        client.local_addr(),
        "UDP",
        &["Accept: application/sdp"],
        "",
    );
    client.transact(&text, timeout)
}
