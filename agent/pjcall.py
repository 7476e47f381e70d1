"""What can be done to a live pjsua2 Call (mute, hold, DTMF), for agent.phone. pjsip's
refusals (a re-INVITE still pending, a call that is ending) come back as False, never as an
exception into the caller (a Qt slot, the supervisor)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def set_mute(pj: Any, ep: Any, call: Any, muted: bool) -> None:
    """Stop (or resume) sending the microphone to the call; the call itself goes on."""
    capture = ep.audDevManager().getCaptureDevMedia()
    for i, media in enumerate(call.getInfo().media):
        if media.type != pj.PJMEDIA_TYPE_AUDIO:
            continue
        with contextlib.suppress(Exception):  # no active media yet
            aud = call.getAudioMedia(i)
            (capture.stopTransmit if muted else capture.startTransmit)(aud)


def set_hold(pj: Any, call: Any, held: bool) -> bool:
    """Put on hold or resume (a re-INVITE)."""
    prm = pj.CallOpParam(True)
    try:
        if held:
            call.setHold(prm)
        else:
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            call.reinvite(prm)
    except pj.Error as exc:
        log.warning("hold=%s refused: %s", held, exc.info())
        return False
    return True


def on_hold(pj: Any, call: Any) -> bool:
    """Whether the call's audio is on hold from this side (the re-INVITE completed)."""
    with contextlib.suppress(Exception):
        media = [m for m in call.getInfo().media if m.type == pj.PJMEDIA_TYPE_AUDIO]
        return bool(media) and media[0].status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD
    return False


def send_dtmf(pj: Any, call: Any, digits: str) -> bool:
    try:
        call.dialDtmf(digits)  # RFC 4733 events inside the SRTP stream
    except pj.Error as exc:
        log.warning("DTMF refused: %s", exc.info())
        return False
    return True


def null_clock(adm: Any, wanted: bool) -> None:
    """The conference bridge's clock without a sound device: the null device (a 20 ms clock
    thread) while calls have media, no device at all otherwise."""
    if wanted:
        adm.setNullDev()
    else:
        adm.setNoDev()
