"""`guardphone lab up` / `lab down`: the local lab the demo, the tests and the benchmarks use.

`up` generates a fresh test PKI, starts a real Kamailio as the hosted SBC, enrolls each lab
user's device key, certificate and SIP password into the keychain of the calling session,
and writes one agent config per user. The device keys are never written to disk; only the
SBC's own key sits in the lab directory (mode 0600), as it would on a real SBC.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from agent import keystore
from lab import net, pki, relay, sbc
from lab.cli import DEFAULT_PORT, KEYCHAIN_SERVICE
from tunnel.sbc import spki_pin

DOMAIN = "lab.guardphone.test"
SBC_NAME = "sbc.lab.guardphone.test"
USERS = ("alice", "bob", "carol")
ENROLLEE = "dave"  # provisioned at the SBC, enrolls with a token
REVOKED = "eve"  # enrolled, but her certificate is on the CRL


@dataclass(frozen=True)
class LabUser:
    name: str
    uri: str
    config: str
    netns: str | None = None  # run the agent inside this network namespace
    where: str | None = None  # with the network: laptop, home, hotel or office (lab/net.py)


@dataclass(frozen=True)
class LabState:
    directory: str
    port: int
    domain: str
    kamailio_pid: int
    kamailio_cfg: str
    ca_file: str
    rogue_ca_file: str
    users: list[LabUser]
    # With the network (`lab up --net`): Kamailio and its media relay in the office
    # namespace, and agent configs that run on the laptop on public Wi-Fi (alice, carol), at
    # home behind NAT (alice), in the hotel that blocks the tunnel (carol), or at the office
    # desk (bob).
    net_prefix: str | None = None
    office_kamailio_pid: int | None = None
    office_kamailio_cfg: str | None = None
    net_users: list[LabUser] | None = None
    office_relay_pid: int | None = None
    relay_pid: int | None = None  # the loopback SBC's media relay
    keychain_service: str = KEYCHAIN_SERVICE
    enroll_pid: int | None = None
    enroll_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def state_path(directory: Path) -> Path:
    return directory / "lab.json"


def read_state(directory: Path) -> LabState | None:
    try:
        raw = json.loads(state_path(directory).read_text())
    except (OSError, ValueError):
        return None
    raw["users"] = [LabUser(**u) for u in raw["users"]]
    if raw.get("net_users"):
        raw["net_users"] = [LabUser(**u) for u in raw["net_users"]]
    return LabState(**raw)


def up(
    directory: Path,
    store: keystore.SecretStore,
    port: int = DEFAULT_PORT,
    with_net: bool = False,
    prefix: str = "gp",
    keychain_service: str = KEYCHAIN_SERVICE,
) -> LabState:
    """Start the lab (idempotent: a running lab in `directory` is returned as it is).

    `with_net` also builds the namespaces and the WireGuard tunnel (lab/net.py, root only)
    and a second Kamailio in the office namespace, listening on the tunnel address and on
    the office's "internet" address.
    """
    existing = read_state(directory)
    if existing and sbc._is_ours(existing.kamailio_pid, Path(existing.kamailio_cfg)):
        return existing
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    (directory / "agents").mkdir(exist_ok=True)

    ca = pki.make_ca("guardphone Lab CA")
    rogue = pki.make_ca("Rogue CA", org="not the company")
    now = dt.datetime.now(dt.UTC)
    good = pki.issue(
        ca,
        SBC_NAME,
        server=True,
        ips=(sbc.GOOD, net.TUNNEL["office"], net.HOSTS["office"], net.OFFICE_LAN["office"]),
        dns=(SBC_NAME,),
    )
    expired = pki.issue(
        ca,
        SBC_NAME,
        server=True,
        ips=(sbc.EXPIRED,),
        not_before=now - 30 * pki.DAY,
        not_after=now - pki.DAY,
    )
    rogue_srv = pki.issue(rogue, SBC_NAME, server=True, ips=(sbc.ROGUE,), dns=(SBC_NAME,))

    files = sbc.SbcFiles(
        device_ca=_write(directory / "ca.pem", ca.cert_pem),
        good_cert=_write(directory / "sbc.pem", good.cert_pem),
        good_key=_write(directory / "sbc.key", good.key_pem, secret=True),
        expired_cert=_write(directory / "sbc-expired.pem", expired.cert_pem),
        expired_key=_write(directory / "sbc-expired.key", expired.key_pem, secret=True),
        rogue_cert=_write(directory / "sbc-rogue.pem", rogue_srv.cert_pem),
        rogue_key=_write(directory / "sbc-rogue.key", rogue_srv.key_pem, secret=True),
    )
    rogue_ca_file = _write(directory / "rogue-ca.pem", rogue.cert_pem)
    # The lab CA key stays with the lab (like the company CA), so tests can issue devices.
    _write(directory / "ca.key", ca.key_pem, secret=True)

    users, ha1s, revoked = [], {}, []
    for name in (*USERS, REVOKED):
        password = secrets.token_urlsafe(18)
        device = pki.issue(ca, name, server=False)
        if name == REVOKED:
            revoked.append(device.cert)
        account = f"{name}@{DOMAIN}"
        keystore.save_credentials(
            store,
            keychain_service,
            account,
            keystore.Credentials(device.key_pem, device.cert_pem, password),
        )
        ha1s[name] = sbc.ha1(name, DOMAIN, password)
        config = directory / "agents" / f"{name}.json"
        pins = (spki_pin(good.cert),)
        config.write_text(
            json.dumps(
                agent_config(name, port, files.device_ca, pins=pins, service=keychain_service),
                indent=2,
            )
            + "\n"
        )
        if name != REVOKED:
            users.append(LabUser(name, f"sip:{account}", str(config)))
    # eve's certificate is revoked: the SBC checks the CRL and refuses her.
    files = replace(files, crl=_write(directory / "crl.pem", pki.crl(ca, revoked)))

    enroll_port, enroll_secrets = _provision_enrollee(
        directory, ca, spki_pin(good.cert), files.device_ca, port, keychain_service, ha1s
    )
    tls_cfg = _write(directory / "tls.cfg", sbc.render_tls_cfg(files, port))
    pid, kam_cfg, relay_pid = _start_loopback_sbc(directory, port, tls_cfg, ha1s)
    try:
        enroll_pid = _start_enrollment(directory, enroll_port, enroll_secrets)
    except Exception:
        sbc.stop(pid, kam_cfg)
        relay.stop(relay_pid)
        raise
    state = LabState(
        str(directory),
        port,
        DOMAIN,
        pid,
        str(kam_cfg),
        str(files.device_ca),
        str(rogue_ca_file),
        users,
        keychain_service=keychain_service,
        enroll_pid=enroll_pid,
        enroll_url=f"https://{sbc.GOOD}:{enroll_port}",
        relay_pid=relay_pid,
    )
    if with_net:
        try:
            office_tls = _write(
                directory / "tls-office.cfg", sbc.render_tls_cfg(files, port, impostors=False)
            )
            state = _up_net(state, directory, prefix, office_tls, ha1s, (spki_pin(good.cert),))
        except Exception:
            sbc.stop(pid, kam_cfg)
            relay.stop(relay_pid)
            raise
    state_path(directory).write_text(json.dumps(state.to_json(), indent=2) + "\n")
    return state


def _start_loopback_sbc(
    directory: Path, port: int, tls_cfg: Path, ha1s: dict[str, str]
) -> tuple[int, Path, int]:
    """Kamailio on loopback and its media relay: (Kamailio's PID, its config, the relay's PID).

    The loopback SBC anchors media too, as the company's does: what the agent says about
    where its audio goes ("the SBC's media relay") is then true in this lab as well.
    """
    ng_port = relay.free_ng_port()
    kam_cfg = _write(
        directory / "kamailio.cfg",
        sbc.render_kamailio_cfg(
            DOMAIN, port, tls_cfg, ha1s, relay=relay.for_sbc(relay.LOOPBACK, ng_port)
        ),
        secret=True,
    )
    relay_pid = relay.start(None, directory / "rtpengine.log", relay.LOOPBACK, ng_port)
    try:
        pid = sbc.start(kam_cfg, directory / "kamailio.pid", directory / "kamailio.log", port)
    except Exception:
        relay.stop(relay_pid)
        raise
    return pid, kam_cfg, relay_pid


def down(directory: Path, store: keystore.SecretStore | None) -> bool:
    """Stop the lab's Kamailio and forget the lab users' credentials. True if it was up."""
    state = read_state(directory)
    if state is None:
        return False
    was_up = sbc.stop(state.kamailio_pid, Path(state.kamailio_cfg))
    if state.office_kamailio_pid and state.office_kamailio_cfg:
        sbc.stop(state.office_kamailio_pid, Path(state.office_kamailio_cfg))
    for relay_pid in (state.relay_pid, state.office_relay_pid):
        if relay_pid:
            relay.stop(relay_pid)
    if state.net_prefix:
        net.down(directory, state.net_prefix)
    if state.enroll_pid:
        _stop_enrollment(state.enroll_pid)
    if store is not None:
        for user in [*state.users, LabUser(ENROLLEE, "", ""), LabUser(REVOKED, "", "")]:
            keystore.delete_credentials(
                store, state.keychain_service, f"{user.name}@{state.domain}"
            )
    state_path(directory).unlink(missing_ok=True)
    for key in directory.glob("*.key"):
        key.unlink()
    return was_up


def _up_net(
    state: LabState,
    directory: Path,
    prefix: str,
    tls_cfg: Path,
    ha1s: dict[str, str],
    pins: tuple[str, ...],
) -> LabState:
    names = net.Names(prefix)
    net.up(directory, prefix)
    office_ns = names.ns("office")
    cfg = _write(
        directory / "kamailio-office.cfg",
        sbc.render_kamailio_cfg(
            DOMAIN,
            state.port,
            tls_cfg,
            ha1s,
            addresses=(net.TUNNEL["office"], net.HOSTS["office"], net.OFFICE_LAN["office"]),
            relay=relay.for_sbc(),
        ),
        secret=True,
    )
    try:
        relay_pid = relay.start(office_ns, directory / "rtpengine-office.log")
        try:
            pid = sbc.start(
                cfg,
                directory / "kamailio-office.pid",
                directory / "kamailio-office.log",
                state.port,
                netns=office_ns,
                probe_host=net.TUNNEL["office"],
            )
        except Exception:
            relay.stop(relay_pid)
            raise
    except Exception:
        net.down(directory, prefix)
        raise
    ca = Path(state.ca_file)

    def laptop_user(
        name: str, where: str, host: str, paths: tuple[str, ...] = ("wireguard", "sbc_mtls")
    ) -> LabUser:
        """`name` on a laptop in `host`'s namespace, with a WireGuard profile for the office
        and the paths the organisation allows there."""
        data = agent_config(
            name, state.port, ca, host=net.HOSTS["office"], pins=pins,
            service=state.keychain_service,
        )  # fmt: skip
        data["paths"] = list(paths)
        data["wireguard"] = {
            "interface": names.wg(host),
            "registrar": net.TUNNEL["office"],
            "port": state.port,
            "handshake_max_age_s": 180,
            "silence_max_s": 3,  # keepalive is 1 s in the lab
        }
        suffix = "laptop" if where == "laptop" else where
        path = directory / "agents" / f"{name}-{suffix}.json"
        path.write_text(json.dumps(data, indent=2) + "\n")
        return LabUser(name, f"sip:{name}@{DOMAIN}", str(path), names.ns(host), where)

    users = [
        laptop_user("alice", "laptop", "laptop"),
        laptop_user("carol", "laptop", "laptop"),
        # At home, the company's hosted SBC serves her (the home tunnel is there for tests).
        laptop_user("alice", "home", "home", paths=("sbc_mtls",)),
        laptop_user("carol", "hotel", "guest"),
    ]
    # bob sits at his desk on the office LAN and reaches the SBC's LAN leg.
    office = agent_config(
        "bob",
        state.port,
        ca,
        host=net.OFFICE_LAN["office"],
        pins=pins,
        service=state.keychain_service,
    )
    path = directory / "agents" / "bob-office.json"
    path.write_text(json.dumps(office, indent=2) + "\n")
    users.append(LabUser("bob", f"sip:bob@{DOMAIN}", str(path), names.ns("desk"), "office"))
    return replace(
        state,
        net_prefix=prefix,
        office_kamailio_pid=pid,
        office_kamailio_cfg=str(cfg),
        net_users=users,
        office_relay_pid=relay_pid,
    )


def _provision_enrollee(
    directory: Path,
    ca: pki.Issued,
    sbc_pin: str,
    ca_file: Path,
    port: int,
    keychain_service: str,
    ha1s: dict[str, str],
) -> tuple[int, dict[str, Any]]:
    """dave is known to the SBC but not enrolled: his device gets its identity from the
    lab's portal with a one-time token (docs/enrollment.md)."""
    portal = pki.issue(ca, "portal.lab.guardphone.test", server=True, ips=(sbc.GOOD,))
    _write(directory / "portal.pem", portal.cert_pem)
    _write(directory / "portal.key", portal.key_pem, secret=True)
    # Several one-time tokens for the same person: each works once (tests spend one each).
    password = secrets.token_urlsafe(18)
    tokens = [secrets.token_urlsafe(24) for _ in range(4)]
    ha1s[ENROLLEE] = sbc.ha1(ENROLLEE, DOMAIN, password)
    enroll_port = _free_port()
    dave = agent_config(ENROLLEE, port, ca_file, pins=(sbc_pin,), service=keychain_service)
    dave["portal"] = {
        "url": f"https://{sbc.GOOD}:{enroll_port}",
        "ca_file": str(ca_file),
        "spki_pins": [spki_pin(portal.cert)],
    }
    (directory / "agents" / f"{ENROLLEE}.json").write_text(json.dumps(dave, indent=2) + "\n")
    _write(directory / "enroll-tokens.json", json.dumps({ENROLLEE: tokens}), secret=True)
    # For a real portal in front of the lab (tests): who dave is at the SBC.
    _write(
        directory / "enrollee.json",
        json.dumps({"user": ENROLLEE, "password": password}),
        secret=True,
    )
    return enroll_port, {
        "domain": DOMAIN,
        "tokens": {token: {"user": ENROLLEE, "password": password} for token in tokens},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((sbc.GOOD, 0))
        return int(s.getsockname()[1])


def _start_enrollment(directory: Path, port: int, secrets_doc: dict[str, Any]) -> int:
    """The real portal (portal/) as the lab's enrollment endpoint, in its own process: it
    signs devices with the lab CA (the SBC trusts it) and knows dave's one-time tokens.
    Every request it gets is logged to portal.log."""
    from portal import db, staff
    from portal.keys import init_state

    state = directory / "portal-state"
    init_state(state, (directory / "ca.pem").read_bytes(), (directory / "ca.key").read_bytes())
    db_url = f"sqlite:///{directory / 'portal.db'}"
    db.migrate(db_url)
    engine = db.engine_for(db_url)
    with db.sessions(engine)() as session:
        for token, who in secrets_doc["tokens"].items():
            staff.add_token(session, who["user"], who["password"], hours=24 * 365, token=token)
    engine.dispose()
    with (directory / "portal.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "portal", "serve", "--db", db_url, "--state", str(state),
             "--domain", secrets_doc["domain"], "--tls-cert", str(directory / "portal.pem"),
             "--tls-key", str(directory / "portal.key"), "--host", sbc.GOOD,
             "--port", str(port), "--workers", "1", "--log-level", "info"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection((sbc.GOOD, port), timeout=0.2).close()
            return proc.pid
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise sbc.LabError("the lab's portal did not start (see portal.log)") from None
            time.sleep(0.1)


def _stop_enrollment(pid: int) -> None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"portal" in argv:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def agent_config(
    user: str,
    port: int,
    ca_file: Path,
    host: str = sbc.GOOD,
    pins: tuple[str, ...] = (),
    service: str = KEYCHAIN_SERVICE,
) -> dict[str, Any]:
    """An agent config for a lab user (documented in schemas/agent-config.schema.json)."""
    return {
        "version": 1,
        "account": {"user": user, "domain": DOMAIN, "display_name": user.capitalize()},
        "paths": ["sbc_mtls"],
        "sbc": {"host": host, "port": port, "ca_file": str(ca_file), "spki_pins": list(pins)},
        "media": {"qos": True, "audio": "auto"},
        "keychain_service": service,
        # Each lab user's security log lives in the lab directory (gone with the lab).
        "event_log": str(Path(ca_file).parent / "events" / f"{user}.db"),
        "fraud": {"state_file": str(Path(ca_file).parent / "fraud" / f"{user}.db")},
    }


def _write(path: Path, text: str, secret: bool = False) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
