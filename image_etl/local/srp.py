"""The server side of Cognito's SRP sign-in (``USER_SRP_AUTH``), for the local user pool.

moto answers ``USER_SRP_AUTH`` with random numbers and accepts any password proof, so on the
emulator a sign-in from the page would succeed with any password. This is the real protocol
(SRP-6a over the 3072-bit group of RFC 5054 with SHA-256, in Cognito's flavour: the pool name and
user id in ``x``, an HKDF-derived key, an HMAC over the secret block and a timestamp), so the local
pool refuses a wrong password exactly as Cognito does. Its only client-side twin is the page's
``site/srp.js``; both are checked against pycognito's independent client in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

N_HEX = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
    "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
    "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200C"
    "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
)
N = int(N_HEX, 16)
G = 2
_INFO = b"Caldera Derived Key\x01"


def pad_hex(value: int) -> str:
    """Return ``value`` as the even-length, sign-safe hex string Cognito hashes (a leading ``00``
    when the top bit is set)."""
    text = f"{value:x}"
    if len(text) % 2:
        text = "0" + text
    elif text[0] in "89abcdef":
        text = "00" + text
    return text


def hex_hash(hex_text: str) -> str:
    """Return the SHA-256 (hex) of the bytes ``hex_text`` spells."""
    return hashlib.sha256(bytes.fromhex(hex_text)).hexdigest()


K = int(hex_hash(pad_hex(N) + pad_hex(G)), 16)


def password_exponent(pool_name: str, user_id: str, password: str, salt: int) -> int:
    """Return ``x``: the hash of the salt and of ``<pool name><user id>:<password>``."""
    inner = hashlib.sha256(f"{pool_name}{user_id}:{password}".encode()).hexdigest()
    return int(hex_hash(pad_hex(salt) + inner), 16)


def scramble(big_a: int, big_b: int) -> int:
    """Return ``u = H(A | B)``."""
    return int(hex_hash(pad_hex(big_a) + pad_hex(big_b)), 16)


def derive_key(shared: int, u: int) -> bytes:
    """Return the 16-byte HKDF key Cognito derives from the shared secret ``S`` and ``u``."""
    prk = hmac.new(bytes.fromhex(pad_hex(u)), bytes.fromhex(pad_hex(shared)), hashlib.sha256).digest()
    return hmac.new(prk, _INFO, hashlib.sha256).digest()[:16]


def claim_signature(key: bytes, *, pool_name: str, user_id: str, secret_block: str, timestamp: str) -> str:
    """Return the base64 HMAC a client sends as ``PASSWORD_CLAIM_SIGNATURE``."""
    message = (
        pool_name.encode() + user_id.encode() + base64.standard_b64decode(secret_block) + timestamp.encode()
    )
    return base64.standard_b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def _random_positive_hex_int(nbytes: int) -> int:
    """Return a random number whose hex form has no leading zero and no high bit (so every client's
    reading of it, as a string or as a number, hashes the same bytes)."""
    first = secrets.choice(range(0x10, 0x80))
    return int.from_bytes(bytes([first]) + secrets.token_bytes(nbytes - 1), "big")


@dataclass(frozen=True)
class Challenge:
    """One pending ``PASSWORD_VERIFIER`` challenge: what the server said and what it must remember."""

    pool_name: str
    user_id: str
    salt: int
    big_a: int
    big_b: int
    small_b: int
    verifier: int
    secret_block: str

    def parameters(self) -> dict[str, str]:
        """Return the challenge parameters the client needs (the salt and B as hex)."""
        return {"SALT": f"{self.salt:x}", "SRP_B": f"{self.big_b:x}", "SECRET_BLOCK": self.secret_block}

    def accepts(self, *, timestamp: str, signature: str) -> bool:
        """Return whether ``signature`` proves knowledge of the password this challenge was made for."""
        u = scramble(self.big_a, self.big_b)
        shared = pow(self.big_a * pow(self.verifier, u, N), self.small_b, N)
        expected = claim_signature(
            derive_key(shared, u),
            pool_name=self.pool_name,
            user_id=self.user_id,
            secret_block=self.secret_block,
            timestamp=timestamp,
        )
        return hmac.compare_digest(expected, signature)


def start_challenge(*, pool_name: str, user_id: str, password: str, srp_a_hex: str) -> Challenge:
    """Return the server's answer to ``USER_SRP_AUTH`` for a user whose password is ``password``.

    :param pool_name: the part of the user pool id after the region and ``_``.
    :raises ValueError: when ``SRP_A`` is not a hex number or is 0 mod N (SRP's safety check).
    """
    big_a = int(srp_a_hex, 16)
    if big_a % N == 0:
        raise ValueError("SRP_A is 0 mod N")
    salt = _random_positive_hex_int(16)
    verifier = pow(G, password_exponent(pool_name, user_id, password, salt), N)
    while True:
        small_b = secrets.randbelow(N - 2) + 2
        big_b = (K * verifier + pow(G, small_b, N)) % N
        if big_b % N and scramble(big_a, big_b):
            break
    secret_block = base64.standard_b64encode(secrets.token_bytes(64)).decode()
    return Challenge(pool_name, user_id, salt, big_a, big_b, small_b, verifier, secret_block)
