from __future__ import annotations

from pathlib import Path

from lab import net, relay, sbc


def test_names_fit_linux_interface_limit_and_are_prefixed() -> None:
    names = net.Names("gt")
    hosts = [*net.HOSTS, *(r.client for r in net.ROUTERS.values()), "desk"]
    for host in hosts:
        for name in (names.veth(host), names.port(host), names.lan(host)):
            assert len(name) <= 15, name
    for host in net.TUNNEL:
        assert len(names.wg(host)) <= 15
    assert names.namespaces() == (
        "gt-inet",
        "gt-office",
        "gt-laptop",
        "gt-hotel",
        "gt-homegw",
        "gt-hotelgw",
        "gt-home",
        "gt-guest",
        "gt-desk",
    )


def test_topology_commands_exact() -> None:
    cmds = net.topology_commands(net.Names("gt"))
    assert cmds[:9] == [["ip", "netns", "add", ns] for ns in net.Names("gt").namespaces()]
    assert [
        "ip",
        "link",
        "add",
        "gt-laptop-e",
        "netns",
        "gt-laptop",
        "type",
        "veth",
        "peer",
        "name",
        "gt-laptop-b",
        "netns",
        "gt-inet",
    ] in cmds
    assert ["ip", "-n", "gt-laptop", "addr", "add", "192.0.2.2/24", "dev", "gt-laptop-e"] in cmds
    # The home laptop's cable goes to its router, not to the internet; its way out is the router.
    assert [
        "ip",
        "link",
        "add",
        "gt-home-e",
        "netns",
        "gt-home",
        "type",
        "veth",
        "peer",
        "name",
        "gt-home-l",
        "netns",
        "gt-homegw",
    ] in cmds
    assert ["ip", "-n", "gt-home", "route", "add", "default", "via", "10.1.0.1"] in cmds
    assert ["ip", "-n", "gt-home", "addr", "add", "10.1.0.2/24", "dev", "gt-home-e"] in cmds
    # The office LAN hangs off the SBC's namespace; nothing on the internet routes to it.
    assert ["ip", "-n", "gt-office", "addr", "add", "10.30.0.1/24", "dev", "gt-desk-l"] in cmds
    assert not any(c[3:5] == ["route", "add"] and c[2] in net.HOSTS for c in cmds)


def test_router_rulesets_masquerade_admit_only_answers_and_the_hotel_blocks_wireguard() -> None:
    names = net.Names("gt")
    home = net.router_ruleset(names, "homegw")
    hotel = net.router_ruleset(names, "hotelgw")
    for rules, lan, wan in (
        (home, "gt-home-l", "gt-homegw-e"),
        (hotel, "gt-guest-l", "gt-hotelgw-e"),
    ):
        assert "policy drop;" in rules
        assert "ct state established,related accept" in rules
        assert f'iifname "{lan}" oifname "{wan}" accept' in rules
        assert f'oifname "{wan}" masquerade' in rules
    assert "udp dport 51820" in hotel and "drop" in hotel.split("udp dport 51820", 1)[1]
    assert "51820" not in home
    # The block comes before the rule that lets the guest network out.
    assert hotel.index("udp dport 51820") < hotel.index('oifname "gt-hotelgw-e" accept')


def test_router_commands_load_the_ruleset_before_conntrack_settings() -> None:
    cmds = net.router_commands(net.Names("gt"), "homegw")
    assert cmds[0] == ["ip", "netns", "exec", "gt-homegw", "nft", "-f", "-"]
    assert ["ip", "netns", "exec", "gt-homegw", "sysctl", "-qw", "net.ipv4.ip_forward=1"] in cmds
    assert [
        "ip",
        "netns",
        "exec",
        "gt-homegw",
        "sysctl",
        "-qw",
        "net.netfilter.nf_conntrack_tcp_timeout_established=30",
    ] in cmds


def test_wireguard_commands_take_the_key_on_stdin() -> None:
    cmds = net.wireguard_commands(net.Names("gt"), "laptop", "PUB=")
    assert cmds[0] == [
        "ip",
        "netns",
        "exec",
        "gt-laptop",
        "wg",
        "set",
        "gt-wg-laptop",
        "private-key",
        "/dev/stdin",
        "listen-port",
        "51820",
        "peer",
        "PUB=",
        "endpoint",
        "192.0.2.1:51820",
        "allowed-ips",
        "198.51.100.1/32",
        "persistent-keepalive",
        "1",
    ]
    assert cmds[1] == [
        "ip",
        "-n",
        "gt-laptop",
        "addr",
        "add",
        "198.51.100.2/24",
        "dev",
        "gt-wg-laptop",
    ]


def test_office_knows_each_laptop_and_only_the_public_ones_endpoint() -> None:
    cmd = net.office_wireguard_commands(
        net.Names("gt"), {"laptop": "L=", "home": "H=", "guest": "G="}
    )[0]
    assert cmd[:11] == [
        "ip", "netns", "exec", "gt-office", "wg", "set", "gt-wg-office",
        "private-key", "/dev/stdin", "listen-port", "51820",
    ]  # fmt: skip
    keepalive = ["persistent-keepalive", "1"]
    assert cmd[11:] == [
        "peer", "L=", "allowed-ips", "198.51.100.2/32", *keepalive, "endpoint", "192.0.2.2:51820",
        "peer", "H=", "allowed-ips", "198.51.100.3/32", *keepalive,
        "peer", "G=", "allowed-ips", "198.51.100.4/32", *keepalive,
    ]  # fmt: skip


def test_relay_command_reads_no_config_file_and_has_one_interface_per_sbc_leg() -> None:
    cmd = relay.command("gt-office")
    assert cmd[:5] == ["ip", "netns", "exec", "gt-office", "rtpengine"]
    assert "--config-file=none" in cmd and "--table=-1" in cmd and "--foreground" in cmd
    assert [a for a in cmd if a.startswith("--interface=")] == [
        "--interface=pub/192.0.2.1",
        "--interface=tun/198.51.100.1",
        "--interface=lan/10.30.0.1",
    ]


def test_kamailio_anchors_media_only_with_a_relay() -> None:
    plain = sbc.render_kamailio_cfg("d", 5061, Path("/tls.cfg"), {"bob": "x"})
    relayed = sbc.render_kamailio_cfg(
        "d", 5061, Path("/tls.cfg"), {"bob": "x"}, relay=relay.for_sbc()
    )
    assert "#!define WITH_RELAY" not in plain and "#!define WITH_RELAY" in relayed
    assert 'modparam("rtpengine", "rtpengine_sock", "udp:127.0.0.1:2223")' in relayed
    assert '$sht(relayif=>10.30.0.1) = "lan";' in relayed
    assert "SDES-no-NULL_HMAC_SHA1_80" in relayed and "SDES-no-F8_128_HMAC_SHA1_80" in relayed
