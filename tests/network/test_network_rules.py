"""The rules of a step's network, as tables: modes, /etc/resolv.conf, /etc/hosts, proxies.

Each rule that follows Buildah (or departs from it) says so in its case name.
"""

from __future__ import annotations

import pytest

from builder.errors import NetworkError, UsageError
from builder.executor.network import (
    ACCEPTED_MODES,
    Network,
    NetworkMode,
    check_settings,
    hosts_file,
    parse_mode,
    proxy_build_args,
    resolv_conf,
    step_mode,
)
from builder.plan.args import unconsumed
from builder.runsettings import PROXY_VARIABLES, RunSettings

SLIRP = Network(NetworkMode("private"), "slirp4netns", "/usr/bin/slirp4netns",
                address="10.0.2.100", gateway="10.0.2.2", dns="10.0.2.3", host="192.0.2.2")
PASTA = Network(NetworkMode("pasta"), "pasta", "/usr/bin/pasta", address="192.0.2.2",
                gateway="192.0.2.1", dns="169.254.1.1")
NONE = Network(NetworkMode("none"))
HOST = Network(NetworkMode("host"), host="192.0.2.2")

MODES = [
    ("", NetworkMode("private")),
    ("private", NetworkMode("private")),
    ("none", NetworkMode("none")),
    ("host", NetworkMode("host")),
    ("ns:/run/netns/x", NetworkMode("ns", path="/run/netns/x")),
    ("slirp4netns", NetworkMode("slirp4netns")),
    ("slirp4netns:mtu=1500,allow_host_loopback=true",
     NetworkMode("slirp4netns", options=("mtu=1500", "allow_host_loopback=true"))),
    ("pasta:--map-gw,-4", NetworkMode("pasta", options=("--map-gw", "-4"))),
]


@pytest.mark.parametrize(("text", "mode"), MODES)
def test_modes_parse(text: str, mode: NetworkMode) -> None:
    assert parse_mode(text) == mode
    assert parse_mode(str(mode)) == mode


@pytest.mark.parametrize("text", ["bridge", "slirp", "private:x", "ns:relative", "ns",
                                  "host:1"])
def test_unknown_mode_error_lists_the_accepted_ones(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_mode(text)
    message = str(info.value)
    assert message.startswith(f"parsing --network {text!r}")
    if "ns:" not in text:
        assert all(mode in message for mode in ACCEPTED_MODES)


@pytest.mark.parametrize(("text", "word"), [
    ("slirp4netns:port_handler=slirp4netns", "accepted: allow_host_loopback"),
    ("slirp4netns:mtu=12", "mtu"),
    ("slirp4netns:cidr=fd00::/64", "cidr"),
    ("slirp4netns:enable_ipv6=yes", "true or false"),
])
def test_slirp4netns_options_are_podmans(text: str, word: str) -> None:
    with pytest.raises(UsageError, match=word):
        parse_mode(text)


@pytest.mark.parametrize(("run_flag", "build", "expected"), [
    (None, "", "private"),
    ("default", "none", "none"),  # RUN --network=default: the build's mode
    ("default", "pasta", "pasta"),
    ("none", "private", "none"),
    ("host", "none", "host"),
])
def test_run_network_flag_over_the_build(run_flag: str | None, build: str,
                                         expected: str) -> None:
    assert str(step_mode(run_flag, RunSettings(network=build))) == expected


@pytest.mark.parametrize(("settings", "word"), [
    (RunSettings(add_hosts=("noaddress",)), "expected HOST:IP"),
    (RunSettings(add_hosts=("db:not-an-ip",)), "not an IP address"),
    (RunSettings(add_hosts=(":192.0.2.1",)), "expected HOST:IP"),
    (RunSettings(dns=("1.1.1.1", "none")), "none cannot be combined"),
    (RunSettings(dns=("dns.example",)), "not an IP address"),
])
def test_bad_settings_are_usage_errors(settings: RunSettings, word: str) -> None:
    with pytest.raises(UsageError, match=word):
        check_settings(settings)


def test_good_settings_pass() -> None:
    settings = RunSettings(dns=("192.0.2.53", "2001:db8::53"),
                           add_hosts=("db:192.0.2.10", "gw:host-gateway", "v6:2001:db8::1"))
    assert check_settings(settings) is settings


# /etc/resolv.conf

RESOLV = [
    # Buildah's rule: the stack's forwarder first, then the host's non-loopback nameservers
    ("forwarder first, host servers kept", SLIRP, RunSettings(),
     "search corp.example\nnameserver 192.0.2.53\noptions ndots:2\n",
     "search corp.example\nnameserver 10.0.2.3\nnameserver 192.0.2.53\noptions ndots:2\n"),
    ("systemd-resolved's stub is replaced by the forwarder", SLIRP, RunSettings(),
     "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
     "search lan\nnameserver 10.0.2.3\noptions edns0 trust-ad\n"),
    ("any loopback resolver is replaced", SLIRP, RunSettings(),
     "nameserver 127.0.1.1\nnameserver ::1\n", "nameserver 10.0.2.3\n"),
    ("no nameserver line means localhost: the forwarder", SLIRP, RunSettings(), "",
     "nameserver 10.0.2.3\n"),
    ("IPv6 servers dropped: slirp4netns carries IPv4 unless enable_ipv6", SLIRP, RunSettings(),
     "nameserver 2001:db8::53\nnameserver 192.0.2.53\n",
     "nameserver 10.0.2.3\nnameserver 192.0.2.53\n"),
    ("pasta's forwarder", PASTA, RunSettings(), "nameserver 127.0.0.53\n",
     "nameserver 169.254.1.1\n"),
    ("none: loopback servers dropped, no forwarder", NONE, RunSettings(),
     "nameserver 127.0.0.53\nnameserver 192.0.2.53\n", "nameserver 192.0.2.53\n"),
    ("host: the host's file as it is", HOST, RunSettings(),
     "# generated\nnameserver 127.0.0.53\n", "# generated\nnameserver 127.0.0.53\n"),
    ("--dns replaces the nameservers (no forwarder)", SLIRP,
     RunSettings(dns=("192.0.2.1", "192.0.2.2")), "search a\nnameserver 127.0.0.53\n",
     "search a\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"),
    ("--dns-search and --dns-option replace the host's", SLIRP,
     RunSettings(dns_search=("b.example",), dns_options=("ndots:5",)),
     "search a\nnameserver 192.0.2.53\noptions rotate\n",
     "search b.example\nnameserver 10.0.2.3\nnameserver 192.0.2.53\noptions ndots:5\n"),
    ("--dns-search=. drops the search list", SLIRP, RunSettings(dns_search=(".",)),
     "search a\nnameserver 192.0.2.53\n", "nameserver 10.0.2.3\nnameserver 192.0.2.53\n"),
    ("host with --dns-option is rebuilt", HOST, RunSettings(dns_options=("ndots:1",)),
     "nameserver 192.0.2.53\n", "nameserver 192.0.2.53\noptions ndots:1\n"),
]


@pytest.mark.parametrize(("case", "network", "settings", "host", "expected"), RESOLV,
                         ids=[case[0] for case in RESOLV])
def test_resolv_conf(case: str, network: Network, settings: RunSettings, host: str,
                     expected: str) -> None:
    assert resolv_conf(network, settings, host) == expected.encode()


def test_dns_none_leaves_the_images_resolv_conf() -> None:
    """Buildah: --dns=none "prevents the automatic creation of /etc/resolv.conf"."""
    assert resolv_conf(SLIRP, RunSettings(dns=("none",)), "nameserver 192.0.2.53\n") is None


# /etc/hosts

HOSTS = [
    ("localhost, host.containers.internal and the step's name at its address", SLIRP,
     RunSettings(), "",
     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
     "192.0.2.2\thost.containers.internal\n10.0.2.100\tpybuild\n"),
    # Buildah's order: --add-host entries, then the base file, then what is not named yet
    ("--add-host first, then the image's file; names already there are not repeated", SLIRP,
     RunSettings(add_hosts=("db:192.0.2.10", "pybuild:192.0.2.99")),
     "127.0.0.1 localhost # image\n",
     "192.0.2.10\tdb\n192.0.2.99\tpybuild\n127.0.0.1 localhost # image\n"
     "192.0.2.2\thost.containers.internal\n"),
    ("host-gateway is where the step reaches the host", SLIRP,
     RunSettings(add_hosts=("gw:host-gateway",)), "127.0.0.1 localhost\n",
     "192.0.2.2\tgw\n127.0.0.1 localhost\n192.0.2.2\thost.containers.internal\n"
     "10.0.2.100\tpybuild\n"),
    ("none: no interface, the name on 127.0.1.1 as Debian does", NONE, RunSettings(),
     "127.0.0.1 localhost\n", "127.0.0.1 localhost\n127.0.1.1\tpybuild\n"),
    ("pasta: the step has the host's address", PASTA, RunSettings(), "127.0.0.1 localhost\n",
     "127.0.0.1 localhost\n192.0.2.2\tpybuild\n"),
]


@pytest.mark.parametrize(("case", "network", "settings", "image", "expected"), HOSTS,
                         ids=[case[0] for case in HOSTS])
def test_hosts_file(case: str, network: Network, settings: RunSettings, image: str,
                    expected: str) -> None:
    assert hosts_file(network, settings, image, "pybuild") == expected.encode()


def test_no_hosts_leaves_the_images_file() -> None:
    assert hosts_file(SLIRP, RunSettings(no_hosts=True), "", "pybuild") is None


def test_host_gateway_with_pasta_needs_map_gw() -> None:
    with pytest.raises(NetworkError, match="--map-gw"):
        hosts_file(PASTA, RunSettings(add_hosts=("gw:host-gateway",)), "", "pybuild")


# proxies and the settings themselves


def test_proxy_variables_are_buildkits_ten() -> None:
    """BuildKit's predefined proxy args, both cases; Buildah 1.28 leaves out ALL_PROXY."""
    assert sorted(PROXY_VARIABLES) == sorted(
        [f"{n}_PROXY" for n in ("HTTP", "HTTPS", "FTP", "NO", "ALL")]
        + [f"{n}_proxy" for n in ("http", "https", "ftp", "no", "all")])


def test_proxy_build_args_need_no_arg_line_and_are_never_unconsumed() -> None:
    build_args = {"http_proxy": "http://p:3128", "ALL_PROXY": "socks5://p:1080", "OTHER": "1"}
    assert proxy_build_args(build_args) == {"http_proxy": "http://p:3128",
                                            "ALL_PROXY": "socks5://p:1080"}
    assert unconsumed(build_args, consumed=()) == ["OTHER"]


def test_run_settings_merge_over_a_containers_and_round_trip() -> None:
    made = RunSettings(network="none", dns=("192.0.2.53",), add_hosts=("a:192.0.2.1",),
                       http_proxy=False)
    later = RunSettings(network="private", add_hosts=("b:192.0.2.2",))
    assert later.merged_over(made) == RunSettings(
        network="private", dns=("192.0.2.53",), add_hosts=("a:192.0.2.1", "b:192.0.2.2"),
        http_proxy=False)
    assert RunSettings().merged_over(made) == made
    assert RunSettings.from_json(made.to_json()) == made
    assert RunSettings().to_json() == {}
    assert RunSettings.from_json({"network": "host", "unknown": 1}) == RunSettings("host")
