"""A step's network: the mode, the user-mode stack that connects it, and its name files.

Modes (``--network`` on bud, run and from; ``RUN --network=default|none|host``):

* ``private`` (the default): a new network namespace with ``lo`` and ``eth0``,
  connected to the outside through a user-mode network stack that pybuild starts
  for the step and stops after it: slirp4netns where it is installed, else pasta.
  The host's loopback is not reachable from the step (slirp4netns
  ``--disable-host-loopback``; pasta ``--no-map-gw``).
* ``slirp4netns[:OPTIONS]`` and ``pasta[:OPTIONS]``: ``private`` through that tool.
  slirp4netns takes Podman's options (``allow_host_loopback=true``,
  ``cidr=10.0.3.0/24``, ``enable_ipv6=true``, ``mtu=1500``, ``outbound_addr=IP``,
  ``outbound_addr6=IP``); pasta's are its own command-line options, comma-separated
  (``pasta:--map-gw,-4``).
* ``none``: a new network namespace with only ``lo``.
* ``host``: the host's network.
* ``ns:PATH``: join the network namespace at PATH.

Both tools join the step's namespace by the PID of the sandbox process that made
it, entering its user namespace too when that differs from ours (rootless), so
nothing here needs real root. slirp4netns exits when the pipe pybuild holds
(``--exit-fd``) closes, pasta when its parent dies (``setpriv --pdeathsig``), so a
killed build leaves neither behind.

slirp4netns starts in about 8 ms and pasta in about 45 ms on a 2-core machine
(``bench/network_cost.py``), and slirp4netns alone has an exit pipe: it is the
default stack; pasta is used where slirp4netns is missing.

``/etc/resolv.conf`` has the host's search domains and options and, in a namespace
of its own, the stack's DNS forwarder first and then the host's nameservers without
loopback ones (127.0.0.0/8, ::1, systemd-resolved's 127.0.0.53), which the step could
not reach, as Buildah writes it; ``--dns``, ``--dns-search`` and ``--dns-option``
replace those parts, and ``--dns=none`` leaves the image's file. ``/etc/hosts`` is ``--add-host`` entries, then the image's own file, then
whatever of ``localhost``, ``host.containers.internal`` and the step's host name it
does not name yet (Buildah's order); ``--no-hosts`` leaves the image's file. The
sandbox binds both over the image's files, so neither reaches a layer.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from builder.errors import NetworkError, UsageError
from builder.runsettings import PROXY_VARIABLES, RunSettings

__all__ = [
    "ACCEPTED_MODES", "Network", "NetworkMode", "RunningStack", "check_settings", "debug",
    "debugging",
    "hosts_file", "parse_mode", "plan_network", "proxy_build_args", "resolv_conf", "start_stack",
    "step_mode", "step_settings", "tool_summary",
]

ACCEPTED_MODES = ("private", "none", "host", "ns:PATH", "slirp4netns[:OPTIONS]",
                  "pasta[:OPTIONS]")
TOOLS = {"slirp4netns": "slirp4netns", "pasta": "passt"}  # tool -> Debian package
INTERFACE = "eth0"
HOST_GATEWAY = "host-gateway"
HOST_ALIAS = "host.containers.internal"
_SLIRP_OPTIONS = ("allow_host_loopback", "cidr", "enable_ipv6", "mtu", "outbound_addr",
                  "outbound_addr6")
_PASTA_DNS = "169.254.1.1"  # a link-local address pasta answers DNS on (as Podman uses)
_READY_TIMEOUT = 15.0


@dataclass(frozen=True)
class NetworkMode:
    """A parsed ``--network`` value."""

    kind: str  # private, none, host, ns, slirp4netns or pasta
    path: str = ""  # ns:PATH
    options: tuple[str, ...] = ()  # slirp4netns:/pasta: options

    @property
    def own_namespace(self) -> bool:
        """Whether the step gets a new network namespace."""
        return self.kind not in ("host", "ns")

    @property
    def user_mode(self) -> bool:
        """Whether a user-mode stack connects the step."""
        return self.kind in ("private", "slirp4netns", "pasta")

    def __str__(self) -> str:
        if self.kind == "ns":
            return f"ns:{self.path}"
        return f"{self.kind}:{','.join(self.options)}" if self.options else self.kind


def parse_mode(text: str) -> NetworkMode:
    """A ``--network`` value; an unknown one is an error that lists the accepted modes."""
    name, sep, rest = (text or "private").partition(":")
    if name in ("private", "none", "host") and not sep:
        return NetworkMode(name)
    if name == "ns" and sep:
        if not rest.startswith("/"):
            raise UsageError(f"parsing --network {text!r}: ns: needs an absolute path")
        return NetworkMode("ns", path=rest)
    if name in TOOLS:
        options = tuple(o for o in rest.split(",") if o) if sep else ()
        if name == "slirp4netns":
            _slirp_settings(options, text)
        return NetworkMode(name, options=options)
    raise UsageError(f"parsing --network {text!r}: unknown network mode "
                     f"(accepted: {', '.join(ACCEPTED_MODES)})")


def step_mode(run_flag: str | None, settings: RunSettings) -> NetworkMode:
    """The mode of one RUN step: its ``--network`` flag over the build's setting."""
    if run_flag in ("none", "host"):
        return NetworkMode(run_flag)
    return parse_mode(settings.network)


def step_settings(run_flag: str | None, settings: RunSettings) -> RunSettings:
    """The build's settings with one RUN step's network mode."""
    from dataclasses import replace

    return replace(settings, network=str(step_mode(run_flag, settings)))


def proxy_build_args(build_args: dict[str, str]) -> dict[str, str]:
    """The predefined proxy build args given (``--build-arg http_proxy=...``): they reach
    RUN's environment without an ARG line, and stay out of cache keys and history."""
    return {k: v for k, v in build_args.items() if k in PROXY_VARIABLES}


def check_settings(settings: RunSettings) -> RunSettings:
    """Reject malformed network settings before anything runs; returns them."""
    parse_mode(settings.network)
    if "none" in (d.lower() for d in settings.dns) and len(settings.dns) > 1:
        raise UsageError("parsing --dns: none cannot be combined with nameservers")
    for server in settings.dns:
        if server.lower() != "none":
            _ip(server, f"parsing --dns {server!r}")
    for entry in settings.add_hosts:
        name, sep, address = entry.partition(":")
        if not sep or not name or not address or any(c.isspace() for c in name):
            raise UsageError(f"parsing --add-host {entry!r}: expected HOST:IP")
        if address != HOST_GATEWAY:
            _ip(address, f"parsing --add-host {entry!r}")
    return settings


def _ip(text: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{what}: not an IP address") from None


# -- what a step's network looks like


@dataclass(frozen=True)
class Network:
    """A step's network as planned: the mode and, for user-mode ones, the stack's
    tool and addresses as the step sees them."""

    mode: NetworkMode
    tool: str = ""  # slirp4netns or pasta; "" without a stack
    binary: str = ""
    address: str = ""  # the step's IPv4 address (pasta: the host's, copied)
    prefix: int = 24
    gateway: str = ""
    dns: str = ""  # the stack's DNS forwarder
    host: str = ""  # where the step reaches the host (host-gateway), "" when it cannot
    ipv6: bool = False

    def describe(self) -> str:
        if not self.tool:
            return str(self.mode)
        where = f"{INTERFACE} {self.address}/{self.prefix}" if self.address else INTERFACE
        version = tool_version(self.tool)
        tool = self.tool if version == "unknown" else f"{self.tool} {version}"
        return (f"{self.mode}: {tool}, {where}, gateway {self.gateway or '?'}, "
                f"DNS forwarder {self.dns}")


def plan_network(mode: NetworkMode) -> Network:
    """Choose the stack for ``mode``; a missing tool is a NetworkError naming the package."""
    if not mode.user_mode:
        return Network(mode, host=_host_address() if mode.kind == "host" else "")
    tool = mode.kind
    if tool == "private":
        tool = next((t for t in TOOLS if shutil.which(t)), "")
        if not tool:
            raise NetworkError(
                "setting up the RUN network: neither slirp4netns nor pasta is installed; "
                "install the Debian package slirp4netns (or passt), or use --network host "
                "or --network none, which need neither")
    binary = shutil.which(tool)
    if binary is None:
        raise NetworkError(
            f"setting up the RUN network: {tool} is not installed; install the Debian "
            f"package {TOOLS[tool]}, or use --network host or --network none, which need "
            "neither")
    if tool == "slirp4netns":
        settings = _slirp_settings(mode.options, str(mode))
        net = ipaddress.ip_network(settings["cidr"])
        host = str(net[2]) if settings["allow_host_loopback"] == "true" else _host_address()
        return Network(mode, tool, binary, address=str(net[100]), prefix=net.prefixlen,
                       gateway=str(net[2]), dns=str(net[3]), host=host,
                       ipv6=settings["enable_ipv6"] == "true")
    copied = _host_address()  # pasta copies the host's address and routes
    maps_gateway = "--map-gw" in mode.options
    return Network(mode, tool, binary, address=copied, prefix=_host_prefix(copied),
                   gateway=_host_gateway(), dns=_PASTA_DNS,
                   host=_host_gateway() if maps_gateway else "")


def _slirp_settings(options: tuple[str, ...], text: str) -> dict[str, str]:
    settings = {"allow_host_loopback": "false", "cidr": "10.0.2.0/24", "enable_ipv6": "false",
                "mtu": "65520", "outbound_addr": "", "outbound_addr6": ""}
    for option in options:
        key, sep, value = option.partition("=")
        if key not in _SLIRP_OPTIONS or not sep:
            raise UsageError(f"parsing --network {text!r}: unknown slirp4netns option "
                             f"{option!r} (accepted: {', '.join(_SLIRP_OPTIONS)}, as KEY=VALUE)")
        settings[key] = value
    for key in ("allow_host_loopback", "enable_ipv6"):
        if settings[key] not in ("true", "false"):
            raise UsageError(f"parsing --network {text!r}: {key} must be true or false")
    try:
        net = ipaddress.ip_network(settings["cidr"])
        if net.version != 4 or net.num_addresses < 128:
            raise ValueError
    except ValueError:
        raise UsageError(f"parsing --network {text!r}: cidr must be an IPv4 network of "
                         "/25 or larger") from None
    if not settings["mtu"].isdigit() or not 68 <= int(settings["mtu"]) <= 65521:
        raise UsageError(f"parsing --network {text!r}: mtu must be 68 to 65521")
    return settings


def _host_address() -> str:
    """The host's IPv4 address on its default route ("" without one)."""
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))  # routing only: nothing is sent
            return str(probe.getsockname()[0])
    except OSError:
        return ""


def _host_routes() -> list[list[str]]:
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return []
    return [line.split() for line in lines if len(line.split()) >= 8]


def _host_gateway() -> str:
    import socket
    import struct

    for fields in _host_routes():
        if fields[1] == "00000000" and fields[2] != "00000000":
            return socket.inet_ntoa(struct.pack("<I", int(fields[2], 16)))
    return ""


def _host_prefix(address: str) -> int:
    import socket
    import struct

    if not address:
        return 24
    ip = struct.unpack("<I", socket.inet_aton(address))[0]
    for fields in _host_routes():
        dest, mask = int(fields[1], 16), int(fields[7], 16)
        if mask and ip & mask == dest:
            return bin(mask).count("1")
    return 24


# -- the name files


def resolv_conf(network: Network, settings: RunSettings, host_text: str) -> bytes | None:
    """``/etc/resolv.conf`` for the step; None when ``--dns=none`` leaves the image's."""
    if [d.lower() for d in settings.dns] == ["none"]:
        return None
    servers, searches, options, others = _parse_resolv(host_text)
    if settings.dns:
        servers = list(settings.dns)
    elif network.mode.kind != "host":
        # Buildah's rule: the stack's forwarder first, then the host's nameservers that
        # the step can reach: not loopback ones (no nameserver line means localhost)
        kept = [network.dns] if network.dns else []
        for server in servers:
            if _is_loopback(server) or (":" in server and network.tool and not network.ipv6):
                continue  # loopback is the step's own; the stack carries no IPv6
            if server not in kept:
                kept.append(server)
        servers = kept
    elif not (settings.dns_search or settings.dns_options):
        return host_text.encode()  # the host's network: the host's file as it is
    if settings.dns_search:
        searches = [] if list(settings.dns_search) == ["."] else list(settings.dns_search)
    if settings.dns_options:
        options = list(settings.dns_options)
    lines = [*others]
    if searches:
        lines.append("search " + " ".join(searches))
    lines += [f"nameserver {server}" for server in servers]
    if options:
        lines.append("options " + " ".join(options))
    return "".join(line + "\n" for line in lines).encode()


def _parse_resolv(text: str) -> tuple[list[str], list[str], list[str], list[str]]:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    others: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        words = line.split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            servers.append(words[1])
        elif words[0] in ("search", "domain"):
            searches = words[1:]  # the last one counts, as for the resolver
        elif words[0] == "options":
            options += words[1:]
        else:
            others.append(line)
    return servers, searches, options, others


def _is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def hosts_file(network: Network, settings: RunSettings, image_text: str,
               hostname: str) -> bytes | None:
    """``/etc/hosts`` for the step; None when ``--no-hosts`` leaves the image's."""
    if settings.no_hosts:
        return None
    lines: list[str] = []
    named: set[str] = set()
    for entry in settings.add_hosts:
        name, _, address = entry.partition(":")
        if address == HOST_GATEWAY:
            address = host_gateway(network, entry)
        lines.append(f"{address}\t{name}")
        named.add(name)
    for raw in image_text.splitlines():
        lines.append(raw)
        named.update(raw.split("#", 1)[0].split()[1:])
    if "localhost" not in named:
        lines += ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    if HOST_ALIAS not in named and network.host and network.mode.kind != "none":
        lines.append(f"{network.host}\t{HOST_ALIAS}")
    if hostname not in named:
        own = network.address if network.tool and network.address else "127.0.1.1"
        lines.append(f"{own}\t{hostname}")
    return "".join(line + "\n" for line in lines).encode()


def host_gateway(network: Network, entry: str = HOST_GATEWAY) -> str:
    """The address ``host-gateway`` stands for: where the step reaches the host."""
    if network.host:
        return network.host
    if network.tool == "pasta":
        raise NetworkError(
            f"resolving {entry!r}: pasta's network reaches the host only with its "
            "--map-gw option (--network pasta:--map-gw); slirp4netns's always does")
    address = _host_address()
    if not address:
        raise NetworkError(f"resolving {entry!r}: the host has no IPv4 default route")
    return address


# -- running a stack for one step


class RunningStack:
    """A started slirp4netns or pasta; ``stop`` ends it without waiting for it."""

    def __init__(self, proc: subprocess.Popen[bytes], exit_fd: int | None) -> None:
        self.proc = proc
        self.exit_fd = exit_fd

    def stop(self) -> None:
        if self.exit_fd is not None:
            os.close(self.exit_fd)  # slirp4netns exits when its --exit-fd pipe closes
            self.exit_fd = None
        elif self.proc.poll() is None:
            self.proc.terminate()
        # the tap device's teardown takes ~20 ms; nobody needs to wait for it
        threading.Thread(target=self.proc.wait, daemon=True).start()


def start_stack(network: Network, pid: int) -> RunningStack:
    """Connect the network namespace of process ``pid`` (made by the sandbox) to the
    outside; returns once the step's interface is up."""
    log = tempfile.TemporaryFile()
    try:
        if network.tool == "slirp4netns":
            running = _start_slirp(network, pid, log)
        else:
            running = _start_pasta(network, pid, log)
    except BaseException:
        log.close()
        raise
    log.close()
    return running


def _start_slirp(network: Network, pid: int, log: IO[bytes]) -> RunningStack:
    settings = _slirp_settings(network.mode.options, str(network.mode))
    ready_r, ready_w = os.pipe()
    exit_r, exit_w = os.pipe()
    argv = [network.binary, "--configure", f"--mtu={settings['mtu']}", "--enable-sandbox",
            "--enable-seccomp", f"--ready-fd={ready_w}", f"--exit-fd={exit_r}",
            f"--cidr={settings['cidr']}"]
    if settings["allow_host_loopback"] != "true":
        argv.append("--disable-host-loopback")
    if network.ipv6:
        argv.append("--enable-ipv6")
    for key in ("outbound_addr", "outbound_addr6"):
        if settings[key]:
            argv.append(f"--{key.replace('_', '-')}={settings[key]}")
    argv += [str(pid), INTERFACE]
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=log, pass_fds=(ready_w, exit_r))
    except OSError as exc:
        for fd in (ready_r, ready_w, exit_r, exit_w):
            os.close(fd)
        raise NetworkError(f"starting slirp4netns: {exc.strerror}") from exc
    os.close(ready_w)
    os.close(exit_r)
    running = RunningStack(proc, exit_w)
    try:
        ready, _, _ = select.select([ready_r], [], [], _READY_TIMEOUT)
        if not ready or os.read(ready_r, 1) != b"1":
            running.stop()
            raise _failed("slirp4netns", proc, log)
    finally:
        os.close(ready_r)
    return running


def _start_pasta(network: Network, pid: int, log: IO[bytes]) -> RunningStack:
    user_options = [o for o in network.mode.options if o != "--map-gw"]
    given = set(user_options)
    argv = ["--config-net", *user_options]
    for short, long in (("-t", "--tcp-ports"), ("-u", "--udp-ports"), ("-T", "--tcp-ns"),
                        ("-U", "--udp-ns")):
        if not given & {short, long}:
            argv += [short, "none"]
    if "--map-gw" not in network.mode.options:
        argv.append("--no-map-gw")
    if "--dns-forward" not in given:
        argv += ["--dns-forward", network.dns]
    if not given & {"-I", "--ns-ifname"}:
        argv += ["-I", INTERFACE]
    if not given & {"-d", "--debug", "--trace"}:
        argv.append("--quiet")
    if os.geteuid() == 0:
        argv += ["--runas", "0"]  # as nobody it could not enter our namespaces
    fds: list[int] = []
    try:
        # opened here, where the ptrace check passes; pasta drops capabilities first
        netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
        fds.append(netns)
        if not _same_namespace(pid, "user"):
            userns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
            fds.append(userns)
            argv += ["--userns", f"/proc/self/fd/{userns}"]
        argv += ["--netns", f"/proc/self/fd/{netns}"]
    except OSError as exc:
        for fd in fds:
            os.close(fd)
        raise NetworkError(f"starting pasta: opening the step's namespaces: {exc.strerror}") \
            from exc
    ready_r, ready_w = os.pipe()  # pasta writes its PID there once the namespace is set up
    fds.append(ready_w)
    wrapper = shutil.which("setpriv")
    prefix = [wrapper, "--pdeathsig", "KILL", "--"] if wrapper else []
    try:
        proc = subprocess.Popen(
            [*prefix, network.binary, "--foreground", "--pid", f"/proc/self/fd/{ready_w}",
             *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=tuple(fds))
    except OSError as exc:
        os.close(ready_r)
        raise NetworkError(f"starting pasta: {exc.strerror}") from exc
    finally:
        for fd in fds:
            os.close(fd)
    running = RunningStack(proc, None)
    try:
        ready, _, _ = select.select([ready_r], [], [], _READY_TIMEOUT)
        if not ready or not os.read(ready_r, 32).strip().isdigit():
            running.stop()
            raise _failed("pasta", proc, log)
    finally:
        os.close(ready_r)
    return running


def _same_namespace(pid: int, kind: str) -> bool:
    return os.stat(f"/proc/self/ns/{kind}").st_ino == os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def _failed(tool: str, proc: subprocess.Popen[bytes], log: IO[bytes]) -> NetworkError:
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines()
             if line.strip() and "to syslog" not in line and "tapfd" not in line]
    telling = [line for line in lines  # the cause, rather than the last words
               if "tun" in line or "denied" in line.lower() or "not permitted" in line.lower()]
    detail = (telling[0] if telling else lines[-1] if lines
              else f"exit status {proc.returncode}")
    if any("tun" in line for line in lines):
        detail += (" (/dev/net/tun must be usable by this user: mode 0666, as Debian's udev "
                   "makes it; or use --network host or --network none)")
    return NetworkError(f"starting {tool} for the step's network: {detail}")


# -- reporting


@functools.cache
def tool_version(tool: str) -> str:
    binary = shutil.which(tool)
    if binary is None:
        return "not installed"
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    words = out.splitlines()[0].split() if out.strip() else []
    return words[2] if len(words) > 2 and words[1] == "version" else "unknown"


def tool_summary() -> dict[str, object]:
    """What ``pybuild info`` says about networking."""
    tools = {tool: tool_version(tool) for tool in TOOLS}
    default = next((t for t in TOOLS if tools[t] != "not installed"), "")
    return {"default": "private", "tool": default,
            "tool_version": tools.get(default, ""), "tools": tools,
            "modes": list(ACCEPTED_MODES)}


def debugging() -> bool:
    """Whether ``--debug`` was given (the CLI sets PYBUILD_DEBUG for the whole run)."""
    return bool(os.environ.get("PYBUILD_DEBUG"))


def debug(message: str) -> None:
    """A ``--debug`` line on stderr."""
    if debugging():
        print(f"DEBU {message}", file=sys.stderr, flush=True)
