"""The Traefik route in front of llmux (INT-004) and verify.sh's probe of it (TST-006) come from
the same installer parameters: the entry point's name, whether it is HTTPS (the router then
terminates TLS), the host and the port.

deploy/install.sh runs for real into a temporary HOME (fake id and systemctl); the route it
writes is read as Traefik's file provider reads it (YAML), and verify.sh runs against fake
podman/curl/systemctl to see the URL it probes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, FakeBin

INSTALL = REPO / "deploy/install.sh"
VERIFY = REPO / "deploy/verify.sh"
CHECKED_IN = REPO / "deploy/traefik/llmux.yml"
BACKEND = "http://10.0.2.2:8081"

ID = r"""
if argv == ["-u"]: print("1000")
elif argv == ["-un"]: print("llm")
else: print("uid=1000(llm) gid=1000(llm)")
"""
CURL = r"""
print('{"status": "ok", "data": []}')
"""

# Traefik's dynamic configuration: the keys a router and its tls section may have.
ROUTER_KEYS = {"rule", "ruleSyntax", "entryPoints", "service", "middlewares", "priority", "tls",
               "observability"}
ROUTER_TLS_KEYS = {"options", "certResolver", "domains"}


@pytest.fixture
def host(tmp_path: Path, fakebin: FakeBin):
    """install(args, env) and verify(args, env) as the user llm in a temporary HOME."""
    fakebin.add("id", ID)
    fakebin.add("systemctl", 'print("enabled")\n')
    fakebin.add("loginctl", 'print("Linger=yes")\n')
    fakebin.add("getent", 'print("10.0.0.1 host")\n')
    fakebin.add("podman", "sys.exit(1)\n")
    fakebin.add("curl", CURL)
    home = tmp_path / "home"
    home.mkdir()

    def run(script: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(script), *args], check=False, capture_output=True,
                              text=True, env=fakebin.env(HOME=str(home), **env))

    def install(args=(), **env: str) -> subprocess.CompletedProcess:
        return run(INSTALL, list(args), env)

    def verify(args=(), **env: str) -> subprocess.CompletedProcess:
        fakebin.reset()
        return run(VERIFY, ["--no-lifecycle", *args], env)

    return install, verify, home / ".local/share/llmux_pod/traefik"


def traefik_router(text: str) -> tuple[dict, dict]:
    """The llmux router and its service, checked the way Traefik's file provider takes them."""
    config = yaml.safe_load(text)
    assert set(config) == {"http"}
    routers, services = config["http"]["routers"], config["http"]["services"]
    assert list(routers) == ["llmux"]
    router = routers["llmux"]
    assert set(router) <= ROUTER_KEYS, set(router) - ROUTER_KEYS
    assert isinstance(router["entryPoints"], list) and router["entryPoints"]
    assert "middlewares" not in router  # AUTH-003: llmux authenticates every request
    if "tls" in router:
        assert isinstance(router["tls"], dict), "tls must be a mapping ({} or certResolver)"
        assert set(router["tls"]) <= ROUTER_TLS_KEYS
    service = services[router["service"]]
    assert [s["url"] for s in service["loadBalancer"]["servers"]] == [BACKEND]
    assert service["loadBalancer"]["passHostHeader"] is True
    return router, service


def probed_url(fakebin: FakeBin) -> tuple[str, list[str]]:
    """The Traefik URL verify.sh gave curl (the one call not to the loopback), and its argv."""
    calls = [c for c in fakebin.calls("curl") if not any("127.0.0.1" in a for a in c)]
    assert len(calls) == 1, fakebin.calls("curl")
    return calls[0][-1], calls[0]


def read_env(path: Path) -> dict[str, str]:
    rows = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in rows)


# (install arguments, install environment, entry point, tls, rule host, URL the route serves)
CASES = [
    pytest.param([], {}, "wireguard", {}, "kidirekt.kischdle.com",
                 "https://kidirekt.kischdle.com", id="default-https"),
    pytest.param(["--entrypoint", "websecure", "--cert-resolver", "letsencrypt"], {},
                 "websecure", {"certResolver": "letsencrypt"}, "kidirekt.kischdle.com",
                 "https://kidirekt.kischdle.com", id="https-cert-resolver"),
    pytest.param([], {"LLMUX_TRAEFIK_ENTRYPOINT": "wg-https", "LLMUX_TRAEFIK_PORT": "8443"},
                 "wg-https", {}, "kidirekt.kischdle.com", "https://kidirekt.kischdle.com:8443",
                 id="https-port-env"),
    pytest.param([], {"LLMUX_TRAEFIK_ENTRYPOINT": "web", "LLMUX_TRAEFIK_TLS": "0"},
                 "web", None, "kidirekt.kischdle.com", "http://kidirekt.kischdle.com",
                 id="http-env"),
    pytest.param(["--no-tls", "--entrypoint", "wg_plain", "--host", "llm.example.org",
                  "--port", "8080"], {"LLMUX_TRAEFIK_TLS": "1"},
                 "wg_plain", None, "llm.example.org", "http://llm.example.org:8080",
                 id="http-options-win-over-env"),
]


@pytest.mark.parametrize("args, env, entrypoint, tls, rule_host, url", CASES)
def test_route_and_probe_agree(host, fakebin, args, env, entrypoint, tls, rule_host, url):
    install, verify, traefik = host
    result = install(args, **env)
    assert result.returncode == 0, result.stderr
    text = (traefik / "llmux.yml").read_text()
    router, _ = traefik_router(text)
    assert router["rule"] == f"Host(`{rule_host}`)"
    assert router["entryPoints"] == [entrypoint]
    if tls is None:
        assert "tls" not in router  # a plain HTTP entry point: no TLS on the router
    else:
        assert router["tls"] == tls
    assert (traefik / "llmux.yml").stat().st_mode & 0o777 == 0o644
    # the dry run prints the same route and installs nothing more
    dry = install(["--print-route", *args], **env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout == text
    # route.env carries the same parameters, and verify.sh probes the URL the route serves
    params = read_env(traefik / "route.env")
    assert params["LLMUX_TRAEFIK_URL"] == url
    assert params["LLMUX_TRAEFIK_ENTRYPOINT"] == entrypoint
    assert params["LLMUX_TRAEFIK_TLS"] == ("0" if tls is None else "1")
    assert url in result.stdout
    verify()
    probe, _ = probed_url(fakebin)
    assert probe == f"{url}/health"
    assert probe.startswith("https://") == (tls is not None)
    assert probe.split("://", 1)[1].split(":")[0].split("/")[0] == rule_host


def test_the_resolve_option_uses_the_route_port(host, fakebin):
    install, verify, _ = host
    assert install(["--entrypoint", "wg", "--port", "8443"]).returncode == 0
    verify(["--resolve", "10.8.0.1"])
    probe, argv = probed_url(fakebin)
    assert probe == "https://kidirekt.kischdle.com:8443/health"
    assert argv[argv.index("--resolve") + 1] == "kidirekt.kischdle.com:8443:10.8.0.1"
    assert argv.count("--resolve") == 1
    assert install(["--no-tls"]).returncode == 0
    verify(["--resolve", "10.8.0.1"])
    probe, argv = probed_url(fakebin)
    assert probe == "http://kidirekt.kischdle.com/health"
    assert argv[argv.index("--resolve") + 1] == "kidirekt.kischdle.com:80:10.8.0.1"


def test_an_explicit_url_wins_over_the_route(host, fakebin):
    install, verify, _ = host
    assert install(["--no-tls"]).returncode == 0
    verify(["--traefik-url", "https://other.example.org"])
    assert probed_url(fakebin)[0] == "https://other.example.org/health"
    verify(LLMUX_TRAEFIK_URL="https://env.example.org")
    assert probed_url(fakebin)[0] == "https://env.example.org/health"


@pytest.mark.parametrize("env", [
    {},
    {"LLMUX_TRAEFIK_TLS": "0"},
    {"LLMUX_TRAEFIK_TLS": "no", "LLMUX_TRAEFIK_PORT": "8080", "LLMUX_TRAEFIK_HOST": "a.example"},
    {"LLMUX_TRAEFIK_PORT": "8443"},
], ids=["default", "http", "http-port-host", "https-port"])
def test_without_an_install_verify_derives_the_url_as_the_installer(host, fakebin, env):
    install, verify, traefik = host
    verify(**env)  # nothing installed yet: no route.env
    assert not traefik.exists()
    without = probed_url(fakebin)[0]
    assert install(**env).returncode == 0
    verify()
    assert without == probed_url(fakebin)[0] == read_env(traefik / "route.env")[
        "LLMUX_TRAEFIK_URL"] + "/health"


@pytest.mark.parametrize("args, env, message", [
    (["--no-tls", "--cert-resolver", "le"], {}, "needs an HTTPS entry point"),
    ([], {"LLMUX_TRAEFIK_TLS": "maybe"}, "LLMUX_TRAEFIK_TLS must be 1 or 0"),
    (["--entrypoint", "wire guard"], {}, "bad entry point name"),
    (["--entrypoint", "wg\n  tls: {}"], {}, "bad entry point name"),
    (["--host", "kidirekt`)||Host(`x"], {}, "bad host name"),
    (["--port", "0"], {}, "bad port"),
    (["--port", "70000"], {}, "bad port"),
    (["--cert-resolver", "a:b"], {}, "bad certificate resolver name"),
])
def test_bad_route_parameters_stop_before_installing(host, tmp_path, args, env, message):
    install, _, traefik = host
    for mode in ([], ["--print-route"]):
        result = install([*mode, *args], **env)
        assert result.returncode == 2
        assert message in result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "home/bin").exists()
    assert not traefik.exists()


def test_the_checked_in_route_is_the_default_rendering(fakebin):
    """deploy/traefik/llmux.yml is what install.sh writes with its defaults (HTTPS, tls: {})."""
    result = subprocess.run(["bash", str(INSTALL), "--print-route"], check=False,
                            capture_output=True, text=True, env=fakebin.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == CHECKED_IN.read_text()
    router, _ = traefik_router(CHECKED_IN.read_text())
    assert router["entryPoints"] == ["wireguard"]
    assert router["tls"] == {}


def test_the_help_documents_the_route_parameters():
    result = subprocess.run(["bash", str(INSTALL), "--help"], check=True, capture_output=True,
                            text=True)
    for word in ("--entrypoint", "LLMUX_TRAEFIK_ENTRYPOINT", "default wireguard", "--no-tls",
                 "LLMUX_TRAEFIK_TLS", "--cert-resolver", "--print-route", "--port", "--host"):
        assert word in result.stdout
    assert "set -euo" not in result.stdout
