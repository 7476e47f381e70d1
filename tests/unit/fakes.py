"""Fakes for unit tests only: an in-memory keychain and a scripted SIP engine."""

from __future__ import annotations

import time
from collections.abc import Sequence

from agent.gate import Observations, SbcSeen
from agent.sip import AudioDevice, CallQuality, EngineSettings, SipEvent, TlsMaterial
from tunnel.netwatch import NetEvents


class MemoryKeychain:
    backend_name = "memory (tests only)"

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], str] = {}

    def get(self, service: str, name: str) -> str | None:
        return self.items.get((service, name))

    def get_many(self, service: str, names: Sequence[str]) -> dict[str, str | None]:
        return {name: self.get(service, name) for name in names}

    def set(self, service: str, name: str, value: str) -> None:
        self.items[(service, name)] = value

    def delete(self, service: str, name: str) -> None:
        self.items.pop((service, name), None)


class ScriptedEngine:
    """Replays event batches, one per poll, and records every call made to it."""

    def __init__(self, *batches: list[SipEvent]) -> None:
        self.batches = list(batches)
        self.calls: list[tuple[str, object]] = []
        self.settings: EngineSettings | None = None
        self.next_call_id = 0
        self.counters: dict[int, CallQuality] = {}  # what quality() answers, set by the test

    def start(self, settings: EngineSettings, material: TlsMaterial) -> None:
        self.settings = settings
        self.calls.append(("start", None))

    def register(self) -> None:
        self.calls.append(("register", None))

    def unregister(self) -> None:
        self.calls.append(("unregister", None))

    def reconnect(self) -> None:
        self.calls.append(("reconnect", None))

    def call(self, uri: str) -> int:
        self.calls.append(("call", uri))
        return self.next_call_id

    def answer(self, call_id: int) -> None:
        self.calls.append(("answer", call_id))

    def hangup(self, call_id: int) -> None:
        self.calls.append(("hangup", call_id))

    def set_mute(self, call_id: int, muted: bool) -> None:
        self.calls.append(("mute", (call_id, muted)))

    def microphone_live(self, call_id: int) -> bool:
        mutes = [arg[1] for name, arg in self.calls if name == "mute" and arg[0] == call_id]
        return not (mutes and mutes[-1])

    def set_hold(self, call_id: int, held: bool) -> bool:
        self.calls.append(("hold", (call_id, held)))
        return True

    def on_hold(self, call_id: int) -> bool:
        return ("hold", (call_id, True)) in self.calls

    def send_dtmf(self, call_id: int, digits: str) -> bool:
        self.calls.append(("dtmf", (call_id, digits)))
        return True

    def poll(self, timeout_s: float) -> list[SipEvent]:
        return self.batches.pop(0) if self.batches else []

    def quality(self, call_id: int) -> CallQuality | None:
        return self.counters.get(call_id)

    def versions(self) -> dict[str, str]:
        return {}

    def audio_devices(self) -> list[AudioDevice]:
        return []

    def shutdown(self, send: bool = True) -> None:
        self.calls.append(("shutdown", send))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class FixedObserver:
    """Reports whatever the test set in `sbc` (default: a proven SBC path on loopback)."""

    def __init__(self) -> None:
        self.sbc: SbcSeen | None = SbcSeen(None, True, "ok", "fine", time.time(), "127.0.0.1", "lo")
        self.probes = 0

    def observe(
        self, material: TlsMaterial, probe_sbc: bool, include_sbc: bool = True
    ) -> Observations:
        self.probes += probe_sbc
        now = time.time()
        sbc = None if self.sbc is None else SbcSeen(**{**self.sbc.__dict__, "checked_at": now})
        return Observations(now, None, sbc)

    def forget_sbc(self) -> None:
        pass


class QuietNetWatch:
    def __init__(self) -> None:
        self.next = NetEvents()

    def wait(self, timeout_s: float) -> NetEvents:
        return self.drain()

    def drain(self) -> NetEvents:
        seen, self.next = self.next, NetEvents()
        return seen

    def close(self) -> None:
        pass

    def fileno(self) -> int | None:
        return None
