"""What can be done to a live pjsua2 Call (mute, hold, DTMF), for agent.phone. pjsip's
refusals (a re-INVITE still pending, a call that is ending) come back as False, never as an
exception into the caller (a Qt slot, the supervisor).

`call.getInfo()` returns a CallInfo that owns its media vector: keep the CallInfo in a name
for as long as its parts are read. `call.getInfo().media` read from a temporary points into
freed memory (seen: garbage media types and statuses, so hold never appeared to take)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def hang_up(pj: Any, call: Any) -> None:
    """End the call: declined (603) if it never connected, a normal BYE otherwise."""
    prm = pj.CallOpParam()
    with contextlib.suppress(Exception):  # already ending
        info = call.getInfo()  # owns connectDuration: see the module's docstring
        prm.statusCode = 603 if not info.connectDuration.sec else 200
        call.hangup(prm)


def set_mute(pj: Any, ep: Any, call: Any, muted: bool) -> None:
    """Stop (or resume) sending the microphone to the call; the call itself goes on."""
    capture = ep.audDevManager().getCaptureDevMedia()
    for aud in _audio(pj, call):
        try:
            (capture.stopTransmit if muted else capture.startTransmit)(aud)
        except pj.Error as exc:
            log.warning("mute=%s refused: %s", muted, exc.info())


def microphone_live(pj: Any, ep: Any, call: Any) -> bool:
    """Whether the capture device feeds the call in the conference bridge (not muted)."""
    with contextlib.suppress(Exception):
        port = ep.audDevManager().getCaptureDevMedia().getPortInfo()  # owns .listeners
        listeners = set(port.listeners)
        return any(aud.getPortId() in listeners for aud in _audio(pj, call))
    return False


def _audio(pj: Any, call: Any) -> list[Any]:
    """The call's active audio media (none before the media is up)."""
    info = call.getInfo()  # owns info.media: see the module's docstring
    found = []
    for i in range(len(info.media)):
        if info.media[i].type != pj.PJMEDIA_TYPE_AUDIO:
            continue
        with contextlib.suppress(Exception):  # no active media yet
            found.append(call.getAudioMedia(i))
    return found


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
        info = call.getInfo()  # owns info.media: see the module's docstring
        statuses = [m.status for m in info.media if m.type == pj.PJMEDIA_TYPE_AUDIO]
        return bool(statuses) and statuses[0] == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD
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
