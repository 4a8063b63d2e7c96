"""Webhook targets: a URL and secret a job, batch or tenant may name, and the guard against
server-side request forgery. A host must resolve only to global unicast addresses (not
private, loopback, link-local, multicast, reserved or unspecified ones) unless the
deployment allows private targets; it is checked at submission and again before every
attempt, since DNS can change in between."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from core.errors import InvalidInput, shown
from core.webhooks.signing import secret_key

MAX_URL_CHARS = 2048
Resolver = Callable[[str, int], Iterable[str]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook: where to POST and the secret that signs."""

    url: str
    secret: str


@dataclass(frozen=True)
class Endpoint:
    """The parts of a target URL a connection needs."""

    scheme: str
    host: str
    port: int


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host resolves to (an address literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _bad_url(message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_webhook_url", param="webhook.url")


def parse_endpoint(url: str) -> Endpoint:
    """Scheme, host and port of an http(s) URL with a host and no credentials."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise _bad_url(f"webhook.url must be an http or https URL of 1 to {MAX_URL_CHARS} chars")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise _bad_url("webhook.url contains whitespace or control characters")
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_url("webhook.url is not valid Unicode") from None
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _bad_url(f"webhook.url does not parse: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad_url("webhook.url must be an http or https URL with a host")
    if parts.username is not None or parts.password is not None:
        # They would show in job views and logs; a secret belongs in webhook.secret.
        raise _bad_url("webhook.url must not carry credentials")
    default = 443 if parts.scheme == "https" else 80
    return Endpoint(scheme=parts.scheme, host=parts.hostname, port=port or default)


def refusal(address: IpAddress) -> str | None:
    """Why an address may not be a webhook's target, or None for a global unicast one."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return refusal(mapped)
    checks = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("not global", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def public_addresses(endpoint: Endpoint, *, resolve: Resolver = resolve_host) -> list[str]:
    """The host's addresses, when every one is global; InvalidInput when the host does not
    resolve (webhook_host_unresolvable) or any address is refused (webhook_target_forbidden):
    one refused address is enough, since a client may connect to any of them."""
    try:
        found = list(dict.fromkeys(resolve(endpoint.host, endpoint.port)))
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(
            f"webhook host {shown(endpoint.host)} does not resolve: {exc}",
            code="webhook_host_unresolvable",
            param="webhook.url",
        ) from None
    if not found:
        raise InvalidInput(
            f"webhook host {shown(endpoint.host)} does not resolve",
            code="webhook_host_unresolvable",
            param="webhook.url",
        )
    for text in found:
        reason = refusal(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason is not None:
            raise InvalidInput(
                f"webhook host {shown(endpoint.host)} resolves to {reason} address {text}; "
                "webhooks go to public addresses only",
                code="webhook_target_forbidden",
                param="webhook.url",
            )
    return found


def check_webhook(
    url: str, secret: str, *, allow_private: bool, resolve: Resolver = resolve_host
) -> WebhookTarget:
    """A webhook a request names, checked: its URL, its secret, and (unless private
    targets are allowed) that its host resolves to public addresses only."""
    endpoint = parse_endpoint(url)
    if not isinstance(secret, str):
        raise InvalidInput("webhook.secret must be a string", code="invalid_webhook_secret")
    secret_key(secret)
    if not allow_private:
        public_addresses(endpoint, resolve=resolve)
    return WebhookTarget(url=url, secret=secret)
