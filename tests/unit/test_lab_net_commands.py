from __future__ import annotations

from lab import net


def test_names_fit_linux_interface_limit_and_are_prefixed() -> None:
    names = net.Names("gt")
    for host in net.HOSTS:
        assert len(names.veth(host)) <= 15 and len(names.port(host)) <= 15
    for host in net.TUNNEL:
        assert len(names.wg(host)) <= 15
    assert names.namespaces() == ("gt-inet", "gt-office", "gt-laptop", "gt-hotel")


def test_topology_commands_exact() -> None:
    cmds = net.topology_commands(net.Names("gt"))
    assert cmds[:4] == [["ip", "netns", "add", ns] for ns in net.Names("gt").namespaces()]
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


def test_wireguard_commands_take_the_key_on_stdin() -> None:
    cmds = net.wireguard_commands(net.Names("gt"), "laptop", "office", "PUB=")
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
