"""RUN's network through the real CLI on the busybox base: the default private network
(slirp4netns), pasta, none, host and ns:PATH; DNS and hosts flags; proxies; clean-up.

Interface name: the step sees ``lo`` and ``eth0``, the name Buildah's default network
gives it as root (Buildah 1.28 rootless, through slirp4netns, calls it ``tap0``;
pybuild says ``eth0`` both ways).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, Pybuild
from tests.network.conftest import Listener, image_parts, layer_names, network_processes

pytestmark = pytest.mark.sandbox
HAVE_PASTA = shutil.which("pasta") is not None
needs_pasta = pytest.mark.skipif(not HAVE_PASTA, reason="pasta (Debian package passt) missing")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
PROXIES = {"HTTP_PROXY": "http://proxy-a.test:3128", "https_proxy": "http://proxy-b.test:3129",
           "NO_PROXY": "localhost,.internal.test", "ALL_PROXY": "socks5://proxy-c.test:1080",
           "ftp_proxy": "http://proxy-d.test:21"}


def build(pybuild: Pybuild, tmp_path: Path, containerfile: str, *flags: str,
          check: bool = True, tag: str = "net:1"):
    context = tmp_path / f"ctx-{uuid.uuid4().hex[:8]}"
    context.mkdir()
    (context / "Containerfile").write_text(containerfile)
    return pybuild("bud", "-t", tag, *flags, context, check=check)


def step_output(result) -> str:
    """The stdout of the build's RUN steps (between the STEP lines and COMMIT)."""
    return result.stdout.split("COMMIT")[0]


@pytest.mark.parametrize("mode", ["", pytest.param("pasta", marks=needs_pasta)])
def test_step_has_eth0_with_an_address_and_a_default_route(
        mode: str, tmp_path: Path, with_busybox: Pybuild) -> None:
    flags = ("--network", mode) if mode else ()
    res = build(with_busybox, tmp_path,
                "FROM localhost/busybox\nRUN echo interfaces: $(ls /sys/class/net); "
                "ip -4 -o addr show eth0; ip route\n", *flags)
    out = step_output(res)
    assert "interfaces: eth0 lo\n" in out  # lo and one interface
    assert " eth0 " in out and "inet " in out  # an IPv4 address
    assert "default via " in out and " dev eth0" in out
    if not mode:
        assert "inet 10.0.2.100/24" in out and "default via 10.0.2.2" in out


@pytest.mark.parametrize(("mode", "reachable"), [
    ("", False), ("none", False), pytest.param("pasta", False, marks=needs_pasta),
    ("host", True)])
def test_host_loopback_reachable_only_with_host(
        mode: str, reachable: bool, listener: Listener, tmp_path: Path,
        with_busybox: Pybuild) -> None:
    """A listener on the host's 127.0.0.1 is out of reach of a step with the default
    network (also through slirp4netns's gateway 10.0.2.2, as --disable-host-loopback
    promises) and with none; with host it is the step's own loopback."""
    flags = ("--network", mode) if mode else ()
    port = listener.port
    build(with_busybox, tmp_path,
          f"FROM localhost/busybox\nRUN echo via-loopback | nc -w 2 127.0.0.1 {port}; "
          f"echo via-gateway | nc -w 2 10.0.2.2 {port}; true\n", *flags)
    assert listener.wait(1 if not reachable else 3) == ([b"via-loopback\n"] if reachable
                                                        else [])


def test_outbound_http_with_default_flags(tmp_path: Path, with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path, "FROM localhost/busybox\n"
                "RUN wget -q -O- http://deb.debian.org/debian/dists/bookworm/Release | head -3\n")
    assert "Origin: Debian" in step_output(res)


def test_run_network_flag_per_instruction(tmp_path: Path, with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path,
                "FROM localhost/busybox\nRUN echo none: $(ls /sys/class/net)\n"
                "RUN --network=none echo flag-none: $(ls /sys/class/net)\n"
                "RUN --network=default echo flag-default: $(ls /sys/class/net)\n"
                "RUN --network=host echo flag-host: $(ls /sys/class/net)\n",
                "--network", "none")
    out = step_output(res)
    host = " ".join(sorted(os.listdir("/sys/class/net")))
    assert "none: lo\n" in out and "flag-none: lo\n" in out
    assert "flag-default: lo\n" in out  # default: the build's --network, none here
    assert f"flag-host: {host}\n" in out


@pytest.mark.parametrize("command", ["bud", "run", "from"])
def test_unknown_mode_lists_the_accepted_ones(command: str, tmp_path: Path,
                                              with_busybox: Pybuild) -> None:
    (tmp_path / "Containerfile").write_text("FROM localhost/busybox\nRUN true\n")
    args = {"bud": [tmp_path], "run": ["localhost/busybox", "true"],
            "from": ["localhost/busybox"]}[command]
    res = with_busybox(command, "--network", "bridge", *args, check=False)
    assert res.returncode == 125
    assert "parsing --network 'bridge': unknown network mode" in res.stderr
    for mode in ("private", "none", "host", "ns:PATH", "slirp4netns[:OPTIONS]",
                 "pasta[:OPTIONS]"):
        assert mode in res.stderr


def test_missing_tool_names_the_package_and_the_modes_that_need_none(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    runner = Pybuild(with_busybox.root, env={"PATH": str(empty)})
    containerfile = "FROM localhost/busybox\nRUN echo ran\n"
    res = build(runner, tmp_path, containerfile, check=False)
    assert res.returncode == 125
    assert "neither slirp4netns nor pasta is installed" in res.stderr
    assert "Debian package slirp4netns (or passt)" in res.stderr
    assert "--network host or --network none" in res.stderr
    res = build(runner, tmp_path, containerfile, "--network", "pasta", check=False)
    assert "pasta is not installed" in res.stderr and "Debian package passt" in res.stderr
    for mode in ("none", "host"):
        assert "ran" in step_output(build(runner, tmp_path, containerfile, "--network", mode))


def test_slirp4netns_options_reach_it_and_its_failure_is_reported(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path,
                "FROM localhost/busybox\nRUN ip -4 -o addr show eth0; cat /etc/resolv.conf\n",
                "--network", "slirp4netns:cidr=10.0.5.0/24,mtu=1500")
    out = step_output(res)
    assert "inet 10.0.5.100/24" in out and "mtu" not in out
    assert "nameserver 10.0.5.3\n" in out  # the forwarder moves with the network
    res = build(with_busybox, tmp_path, "FROM localhost/busybox\nRUN echo ran\n",
                "--network", "slirp4netns:outbound_addr=nosuchif0", check=False)
    assert res.returncode == 125 and "\nran\n" not in res.stdout
    assert "starting slirp4netns for the step's network: outbound-addr has to be" in res.stderr


def test_dns_and_hosts_flags_are_seen_by_the_step_and_never_reach_the_layer(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    res = build(with_busybox, tmp_path,
                "FROM localhost/busybox\nRUN cat /etc/resolv.conf /etc/hosts; "
                "echo 192.0.2.77 written-by-step >> /etc/hosts; "
                "echo nameserver 192.0.2.78 >> /etc/resolv.conf; touch /made\n",
                "--dns", "192.0.2.53", "--dns-search", "corp.test", "--dns-option", "ndots:3",
                "--add-host", "db.test:192.0.2.10", "--add-host", "gw.test:host-gateway")
    out = step_output(res)
    assert "search corp.test\nnameserver 192.0.2.53\noptions ndots:3\n" in out
    assert "192.0.2.10\tdb.test\n" in out
    assert "\tgw.test\n" in out.replace("host-gateway", "")  # resolved to an address
    assert "10.0.2.100\tpybuild\n" in out
    _, layers = image_parts(with_busybox.root, "localhost/net:1")
    names = layer_names(layers[-1])
    assert "made" in names
    assert not {"etc/hosts", "etc/resolv.conf", "etc/hostname"} & set(names)
    for word in (b"db.test", b"192.0.2.53", b"corp.test", b"written-by-step", b"192.0.2.78"):
        assert all(word not in layer for layer in layers)


def test_no_hosts_and_dns_none_leave_the_images_files(tmp_path: Path,
                                                      with_busybox: Pybuild) -> None:
    """Buildah: --no-hosts uses the base image's /etc/hosts, --dns=none creates no
    /etc/resolv.conf."""
    res = build(with_busybox, tmp_path,
                "FROM localhost/busybox\n"
                "RUN echo '192.0.2.5 from-image' > /etc/hosts && "
                "echo 'nameserver 192.0.2.6' > /etc/resolv.conf\n"
                "RUN cat /etc/hosts /etc/resolv.conf\n",
                "--no-hosts", "--dns", "none")
    assert "192.0.2.5 from-image\nnameserver 192.0.2.6\n" in step_output(res)
    res = build(with_busybox, tmp_path,
                "FROM localhost/busybox\nRUN test -e /etc/hosts || echo no-hosts-file\n",
                "--no-hosts")
    assert "no-hosts-file" in step_output(res)


def _proxy_image(pybuild: Pybuild, tag: str) -> tuple[dict, list[bytes], str]:
    config, layers = image_parts(pybuild.root, f"localhost/{tag}")
    return config, layers, json.dumps(config)


def test_proxy_variables_reach_run_but_not_the_image_nor_the_cache_key(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    """--http-proxy (default true): the caller's proxy variables, both cases, reach RUN;
    they are absent from config, history and layers, and a build with other values is a
    cache hit."""
    containerfile = "FROM localhost/busybox\nRUN env | grep -i _proxy | sort; touch /made\n"
    first = Pybuild(with_busybox.root, env=PROXIES)
    res = build(first, tmp_path, containerfile, tag="proxy:1")
    out = step_output(res)
    for name, value in PROXIES.items():
        assert f"{name}={value}\n" in out
    config, layers, text = _proxy_image(first, "proxy:1")
    for value in PROXIES.values():
        assert value not in text and all(value.encode() not in layer for layer in layers)
    other = Pybuild(with_busybox.root, env={k: v.replace("proxy", "other") for k, v in
                                            PROXIES.items()})
    again = build(other, tmp_path, containerfile, tag="proxy:2")
    assert "Using cache" in again.stdout
    assert again.stdout.split()[-1] == res.stdout.split()[-1]  # the same image
    off = build(first, tmp_path, containerfile.replace("touch", "touch /x"),
                "--http-proxy=false", tag="proxy:3")
    assert not any(value in off.stdout for value in PROXIES.values())


def test_predefined_proxy_build_args_reach_run_without_an_arg_line(
        tmp_path: Path, with_busybox: Pybuild) -> None:
    """As in Docker, BuildKit and Buildah: no ARG needed, no "not consumed" warning, not
    in config, history or layers, not in the cache key. ALL_PROXY counts as in BuildKit
    (Buildah 1.28 warns that it was not consumed)."""
    containerfile = "FROM localhost/busybox\nRUN echo \"[$http_proxy] [$ALL_PROXY]\"; touch /m\n"
    res = build(with_busybox, tmp_path, containerfile, "--build-arg",
                "http_proxy=http://arg-proxy.test:8080", "--build-arg",
                "ALL_PROXY=socks5://arg-all.test:1080", tag="pargs:1")
    assert "[http://arg-proxy.test:8080] [socks5://arg-all.test:1080]" in step_output(res)
    assert "not consumed" not in res.output
    config, layers, text = _proxy_image(with_busybox, "pargs:1")
    assert "arg-proxy.test" not in text and "arg-all.test" not in text
    assert all(b"arg-proxy.test" not in layer for layer in layers)
    again = build(with_busybox, tmp_path, containerfile, "--build-arg",
                  "http_proxy=http://another.test:1", tag="pargs:2")
    assert "Using cache" in again.stdout
    assert again.stdout.split()[-1] == res.stdout.split()[-1]


def test_a_declared_proxy_arg_is_an_ordinary_arg(tmp_path: Path,
                                                 with_busybox: Pybuild) -> None:
    """Buildah and BuildKit: with an explicit ``ARG http_proxy`` the value is a normal
    build arg again, so a new value runs the step again."""
    containerfile = "FROM localhost/busybox\nARG http_proxy\nRUN echo \"[$http_proxy]\"\n"
    build(with_busybox, tmp_path, containerfile, "--build-arg", "http_proxy=http://a.test:1")
    res = build(with_busybox, tmp_path, containerfile, "--build-arg",
                "http_proxy=http://b.test:1")
    assert "[http://b.test:1]" in step_output(res) and "Using cache" not in res.stdout


def test_pybuild_run_takes_the_network_flags(with_busybox: Pybuild) -> None:
    res = with_busybox("run", "--add-host", "db.test:192.0.2.10", "--dns", "192.0.2.53",
                       "localhost/busybox", "sh", "-c",
                       "ls /sys/class/net; grep db.test /etc/hosts; cat /etc/resolv.conf")
    assert res.stdout.split("\n")[:2] == ["eth0", "lo"]
    assert "192.0.2.10\tdb.test" in res.stdout and "nameserver 192.0.2.53" in res.stdout
    res = with_busybox("run", "--network", "none", "localhost/busybox", "ls", "/sys/class/net")
    assert res.stdout.split() == ["lo"]
    proxied = Pybuild(with_busybox.root, env={"HTTPS_PROXY": "http://run-proxy.test:1"})
    assert "run-proxy.test" in proxied("run", "localhost/busybox", "env").stdout
    assert "run-proxy.test" not in proxied("run", "--http-proxy=false", "localhost/busybox",
                                           "env").stdout


def test_working_container_keeps_from_flags_and_run_overrides_them(
        with_busybox: Pybuild) -> None:
    """Buildah's ``from`` takes --network, --dns, --add-host and --http-proxy for the
    container's later runs; what ``run`` gives wins."""
    ctr = with_busybox("from", "--network", "none", "--add-host", "db.test:192.0.2.10",
                       "--name", "netctr", "localhost/busybox").stdout.strip()
    res = with_busybox("run", ctr, "--", "sh", "-c", "ls /sys/class/net; grep db.test /etc/hosts")
    assert res.stdout.split("\n")[:2] == ["lo", "192.0.2.10\tdb.test"]
    res = with_busybox("run", "--network", "private", "--add-host", "kv.test:192.0.2.11", ctr,
                       "--", "sh", "-c", "ls /sys/class/net; grep -c test /etc/hosts; touch /w")
    assert res.stdout.split() == ["eth0", "lo", "2"]
    with_busybox("commit", "--rm", ctr, "netctr:1")
    _, layers = image_parts(with_busybox.root, "localhost/netctr:1")
    assert "w" in layer_names(layers[-1]) and "etc/hosts" not in layer_names(layers[-1])


def test_python_api_run_settings(with_busybox: Pybuild, capfd) -> None:
    code = """
import sys
from builder import FromOptions, RunOptions, RunSettings, Session
session = Session(sys.argv[1])
ctr = session.from_image("localhost/busybox:latest",
                         FromOptions(settings=RunSettings(network="none")))
ctr.run(["sh", "-c", "echo api: $(ls /sys/class/net)"])
ctr.run(["sh", "-c", "echo api: $(ls /sys/class/net); grep db.test /etc/hosts"],
        RunOptions(settings=RunSettings(network="private", add_hosts=("db.test:192.0.2.9",))))
ctr.remove()
"""
    out = subprocess.run([sys.executable, "-c", code, str(with_busybox.root)], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:3] == ["api: lo", "api: eth0 lo", "192.0.2.9\tdb.test"]


@needs_root
def test_ns_path_joins_that_namespace(tmp_path: Path, with_busybox: Pybuild) -> None:
    holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "60"])
    try:
        ours = os.stat("/proc/self/ns/net").st_ino
        for _ in range(200):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != ours:
                break
            time.sleep(0.01)
        inode = os.stat(f"/proc/{holder.pid}/ns/net").st_ino
        res = build(with_busybox, tmp_path, "FROM localhost/busybox\n"
                    "RUN readlink /proc/self/ns/net\n",
                    "--network", f"ns:/proc/{holder.pid}/ns/net")
        assert f"net:[{inode}]" in step_output(res)
    finally:
        holder.kill()
        holder.wait()


@needs_root
def test_oci_isolation_gets_the_network_too(tmp_path: Path, with_busybox: Pybuild) -> None:
    if shutil.which("runc") is None:
        pytest.skip("runc missing")
    res = build(with_busybox, tmp_path, "FROM localhost/busybox\n"
                "RUN ls /sys/class/net; ip -4 -o addr show eth0\n", "--isolation", "oci")
    out = step_output(res)
    assert "eth0\nlo\n" in out and "10.0.2.100/24" in out


@pytest.mark.parametrize("mode", ["", pytest.param("pasta", marks=needs_pasta)])
def test_a_killed_build_leaves_no_network_process(mode: str, tmp_path: Path,
                                                  with_busybox: Pybuild) -> None:
    token = uuid.uuid4().hex
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM localhost/busybox\nRUN sleep 60\n")
    flags = ["--network", mode] if mode else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "builder", "bud", *flags, str(context)], cwd=REPO,
        env={**with_busybox.env, "PYBUILD_TEST_TOKEN": token},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not network_processes(token):
            assert proc.poll() is None and time.monotonic() < deadline, "no stack started"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with_busybox("images")  # the next command cleans what the killed build left
    deadline = time.monotonic() + 10  # a slow machine may take a moment to reap them
    while network_processes(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert network_processes(token) == []


def test_info_and_debug_name_the_network_and_its_tool(tmp_path: Path,
                                                      with_busybox: Pybuild) -> None:
    info = with_busybox("info").stdout
    assert "network:         private via slirp4netns" in info
    assert json.loads(with_busybox("info", "--format", "json").stdout)["network"]["tool"] \
        == "slirp4netns"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text("FROM localhost/busybox\nRUN true\n")
    res = with_busybox("--debug", "bud", context)
    assert "DEBU network: private: slirp4netns" in res.stderr
    assert "eth0 10.0.2.100/24, gateway 10.0.2.2, DNS forwarder 10.0.2.3" in res.stderr
