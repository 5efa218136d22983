"""The signatures on thinking blocks the gateway writes, and how they are checked when sent back.

Anthropic signs each thinking block so that a client cannot hand the model
reasoning it did not write; clients send the blocks back unchanged in later
turns. A thinking block the gateway writes from an upstream's reasoning text is
signed the same way, with an HMAC of its text: sent back with a signature that
checks, the text goes to the upstream as the assistant turn's reasoning; with
one that does not (tampered with, or made by someone else, Anthropic
included), it is left out and named as dropped.

The key comes from the master key's digest, so every replica of one deployment
signs alike and a restart keeps old signatures good; without a master key (the
demo setup, one process) it is random per process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PREFIX = "gw1."  # the scheme, should the signature ever change


class Signer:
    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, text: str) -> str:
        digest = hmac.new(self._key, text.encode(errors="surrogatepass"), hashlib.sha256).digest()
        return PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verify(self, text: str, signature: object) -> bool:
        """Whether `signature` is this text's; any other string (compare_digest takes ASCII
        only: a garbled one would raise) or value is not."""
        return (type(signature) is str and signature.isascii()
                and hmac.compare_digest(signature, self.sign(text)))


SIGNER = Signer(os.urandom(32))


def use_master_key(master_digest: str | None) -> None:
    """Sign with a key derived from the master key's digest (at start and on reload)."""
    global SIGNER
    if master_digest:
        SIGNER = Signer(hashlib.sha256(b"gateway thinking signatures\0"
                                       + master_digest.encode()).digest())
