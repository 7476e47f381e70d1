"""What a neighbour on the hotel network tries against the laptop (run inside its namespace).

Usage: hotel_scanner.py TARGET_IP TLS_PORT CA.pem ROGUE_CERT ROGUE_KEY COMPANY_CERT COMPANY_KEY
Prints one JSON object: what each attempt got back (never the agent's SIP, we expect).
"""

from __future__ import annotations

import json
import socket
import ssl
import sys

OPTIONS = (
    "OPTIONS sip:alice@{ip} SIP/2.0\r\nVia: SIP/2.0/{t} 192.0.2.3:5099;branch=z9hG4bK-scan\r\n"
    "From: <sip:scanner@hotel>;tag=1\r\nTo: <sip:alice@{ip}>\r\nCall-ID: scan@hotel\r\n"
    "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)
SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\nt=0 0\r\n"
    "m=audio 40000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    "inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n"
)


def invite(ip: str) -> str:
    return (
        f"INVITE sip:alice@{ip} SIP/2.0\r\nVia: SIP/2.0/TLS 192.0.2.3:5099;branch=z9hG4bK-inv\r\n"
        'From: "IT Helpdesk" <sip:helpdesk@lab.guardphone.test>;tag=2\r\n'
        f"To: <sip:alice@{ip}>\r\nCall-ID: vish@hotel\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        "Contact: <sip:helpdesk@192.0.2.3:5099;transport=tls>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n{SDP}"
    )


def udp(ip: str, port: int) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1.0)
        s.sendto(OPTIONS.format(ip=ip, t="UDP").encode(), (ip, port))
        try:
            return s.recv(4096).decode(errors="replace")[:40]
        except TimeoutError:
            return "no answer"
        except ConnectionRefusedError:
            return "refused"


def tcp_plain(ip: str, port: int) -> str:
    try:
        with socket.create_connection((ip, port), timeout=1.0) as s:
            s.sendall(OPTIONS.format(ip=ip, t="TCP").encode())
            data = s.recv(4096)
            return data.decode(errors="replace")[:40] if data else "closed"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, OSError) as exc:
        return f"error: {exc.__class__.__name__}"


def final_status(s: socket.socket) -> str:
    """The first non-1xx status line the peer sends (or how the connection ended)."""
    buffer = ""
    while True:
        data = s.recv(4096)
        if not data:
            return "closed"
        buffer += data.decode(errors="replace")
        for line in buffer.split("\r\n"):
            if line.startswith("SIP/2.0 ") and not line.startswith("SIP/2.0 1"):
                return line


def tls(ip: str, port: int, ca: str, cert: str | None, key: str | None, payload: str) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # a scanner does not care who the laptop is
    if cert and key:
        ctx.load_cert_chain(cert, key)
    try:
        with socket.create_connection((ip, port), timeout=2.0) as raw, ctx.wrap_socket(raw) as s:
            s.sendall(payload.encode())
            return final_status(s)
    except (ssl.SSLError, OSError) as exc:
        return f"error: {exc.__class__.__name__}"


def main() -> None:
    ip, port, ca, rogue_cert, rogue_key, good_cert, good_key = sys.argv[1:8]
    tls_port = int(port)
    results = {
        "udp_5060": udp(ip, 5060),
        "udp_tls_port": udp(ip, tls_port),
        "tcp_5060": tcp_plain(ip, 5060),
        "tcp_plain_on_tls_port": tcp_plain(ip, tls_port),
        "tls_no_cert": tls(ip, tls_port, ca, None, None, OPTIONS.format(ip=ip, t="TLS")),
        "tls_rogue_cert": tls(
            ip, tls_port, ca, rogue_cert, rogue_key, OPTIONS.format(ip=ip, t="TLS")
        ),
        "tls_company_cert_options": tls(
            ip, tls_port, ca, good_cert, good_key, OPTIONS.format(ip=ip, t="TLS")
        ),
        "tls_company_cert_invite": tls(ip, tls_port, ca, good_cert, good_key, invite(ip)),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
