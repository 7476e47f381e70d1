"""Reading pjsua2's structures into guardphone's plain facts, and building its socket options.

Only agent/phone.py calls these; they exist apart so the engine module stays about driving
pjsua2, not about decoding it.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from agent.sip import AudioDevice, CallQuality, MediaFacts, TlsFacts

SOL_SOCKET, SO_BINDTOIFINDEX = 1, 62  # Linux >= 5.0
PJ_MAX_SOCKOPT_PARAMS = 4  # pj/config.h: pj_sockopt_params holds no more


SUITE = re.compile(r"Crypto-suite:\s*(\S+)")
TLS_PROTOCOLS = {1: "SSLv2", 2: "SSLv3", 4: "TLSv1", 8: "TLSv1.1", 16: "TLSv1.2", 32: "TLSv1.3"}


def sock_opts(
    pj: Any, extra: Sequence[tuple[int, int, int]], ifindex: int | None
) -> tuple[Any, list[Any]]:
    """Socket options as pjsua2 wants them, and the objects that hold their values.

    SO_BINDTOIFINDEX pins sockets to the path: binding to the path's address only chooses
    the source address; binding to its interface index makes the kernel refuse to send by
    any other interface (ENODEV once the interface is gone), which pjsip cannot do itself
    (it has no SO_BINDTODEVICE).

    Every copy of a pjsua2 SockOpt (the vector's, the transport config's, pjsip's own
    setting, applied again at each new connection) points at the value inside the object
    `setOptValInt` was called on. The caller keeps the returned objects alive for as long
    as the transport lives: once Python frees them, each option reads whatever reuses the
    memory (seen: every option took the last one's value, a 3 s keepalive instead of 20 s).
    """
    opts = pj.SockOptVector()
    wanted = list(extra)
    if ifindex is not None:
        wanted.append((SOL_SOCKET, SO_BINDTOIFINDEX, ifindex))
    if len(wanted) > PJ_MAX_SOCKOPT_PARAMS:
        # pjsua2 would drop the rest without a word, the path's binding first (it is last).
        raise ValueError(f"{len(wanted)} socket options; pjsip applies {PJ_MAX_SOCKOPT_PARAMS}")
    holders = []
    for level, name, value in wanted:
        opt = pj.SockOpt()
        opt.level, opt.optName = level, name
        opt.setOptValInt(value)
        opts.append(opt)
        holders.append(opt)
    return opts, holders


def set_dscp(pj: Any, qos: Any, dscp: int) -> None:
    qos.flags = pj.PJ_QOS_PARAM_HAS_DSCP
    qos.dscp_val = dscp


def has_sound_device(adm: Any) -> bool:
    try:
        return bool(adm.getDevCount()) and adm.getCaptureDev() >= 0 and adm.getPlaybackDev() >= 0
    except Exception:
        return False


def audio_devices(adm: Any) -> list[AudioDevice]:
    try:
        infos = adm.enumDev2()
    except Exception:
        return []
    return [AudioDevice(str(i.name), int(i.inputCount), int(i.outputCount)) for i in infos]


def choose_devices(adm: Any, input_name: str | None, output_name: str | None) -> None:
    """Use the devices named in the settings; a device that is gone leaves the default."""
    for index, device in enumerate(audio_devices(adm)):
        if input_name and device.name == input_name and device.inputs:
            adm.setCaptureDev(index)
        if output_name and device.name == output_name and device.outputs:
            adm.setPlaybackDev(index)


def status_text(pj: Any, status: int) -> str:
    if not status:
        return ""
    try:
        return str(pj.Endpoint.instance().utilStrError(status))
    except Exception:
        return f"status {status}"


def tls_facts(info: Any) -> TlsFacts:
    cert = info.remoteCertInfo
    return TlsFacts(
        version=TLS_PROTOCOLS.get(int(info.protocol), f"unknown({info.protocol})"),
        cipher=str(info.cipherName),
        verified=int(info.verifyStatus) == 0,
        verify_status=int(info.verifyStatus) & 0xFFFFFFFF,
        verify_messages=tuple(str(m) for m in info.verifyMsgs),
        server_cn="" if cert.isEmpty() else str(cert.subjectCn),
        local=str(info.localAddr),
        remote=str(info.remoteAddr),
    )


def media_facts(pj: Any, c: Any, idx: int) -> MediaFacts:
    si = c.getStreamInfo(idx)
    proto = int(si.proto)
    srtp = proto in (pj.PJMEDIA_TP_PROTO_RTP_SAVP, pj.PJMEDIA_TP_PROTO_RTP_SAVPF)
    dtls = proto in (pj.PJMEDIA_TP_PROTO_DTLS_SRTP, pj.PJMEDIA_TP_PROTO_DTLS_SRTPF)
    # pjsua2 exposes the negotiated crypto suite only in the call dump of the live session.
    match = SUITE.search(str(c.dump(True, "")))
    tp = c.getMedTransportInfo(idx)
    return MediaFacts(
        srtp=srtp or dtls,
        transport="UDP/TLS/RTP/SAVP" if dtls else ("RTP/SAVP" if srtp else "RTP/AVP"),
        crypto_suite=match.group(1) if match else None,
        keying="DTLS" if dtls else ("SDES" if srtp else None),
        codec=str(si.codecName),
        local_rtp=str(tp.localRtpName),
        remote_rtp=str(si.remoteRtpAddress),
    )


def quality(rtcp: Any) -> CallQuality:
    def ms(stat: Any) -> float | None:
        return round(stat.mean / 1000.0, 2) if stat.n else None

    return CallQuality(
        rx_packets=int(rtcp.rxStat.pkt),
        tx_packets=int(rtcp.txStat.pkt),
        rx_lost=int(rtcp.rxStat.loss),
        jitter_ms=ms(rtcp.rxStat.jitterUsec),
        rtt_ms=ms(rtcp.rttUsec),
    )


def header(message: str, name: str) -> str | None:
    """The first value of header `name` in a raw SIP message (its head only), or None."""
    head = message.split("\r\n\r\n", 1)[0]
    wanted = name.lower()
    for line in head.split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == wanted:
            return value.strip()
    return None


@contextlib.contextmanager
def stdout_silenced() -> Iterator[None]:
    """libCreate prints a banner to fd 1 before log settings apply; keep stdout for JSON."""
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
