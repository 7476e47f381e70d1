"""Where a call's audio comes from and goes to besides the speaker: the microphone, or for
an audio check (`--play` / `--record`) a looped WAV player and a WAV recorder."""

from __future__ import annotations

from typing import Any

from agent.sip import AudioCheck


class AudioEnds:
    """Made once per engine start; the player and the recorder only when a call needs them."""

    def __init__(self, pj: Any, check: AudioCheck) -> None:
        self._pj = pj
        self._check = check
        self._player: Any = None
        self._recorder: Any = None

    def connect(self, call_audio: Any, adm: Any) -> None:
        """Wire one call's audio: it plays on the speaker and hears our source; the
        recorder, if any, hears it too."""
        call_audio.startTransmit(adm.getPlaybackDevMedia())
        self._source(adm).startTransmit(call_audio)
        if self._check.record is not None:
            call_audio.startTransmit(self._sink())

    def close(self) -> None:
        """Drop the player and recorder. The recorder writes its WAV header when destroyed:
        this must run before libDestroy, or the header is never written."""
        self._player = self._recorder = None

    def _source(self, adm: Any) -> Any:
        if self._check.play is None:
            return adm.getCaptureDevMedia()
        if self._player is None:
            self._player = self._pj.AudioMediaPlayer()
            self._player.createPlayer(str(self._check.play))  # loops
        return self._player

    def _sink(self) -> Any:
        if self._recorder is None:
            self._recorder = self._pj.AudioMediaRecorder()
            self._recorder.createRecorder(str(self._check.record))
        return self._recorder
