"""Password and token hashing for 1C exchange logins and API tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt cost from the Python docs' guidance for interactive logins (n=2**14, r=8, p=1):
# about 16 MiB of memory and tens of milliseconds per check.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1


def hash_password(password: str) -> str:
    """Return a self-describing scrypt hash: `scrypt$n$r$p$salt$hash` (base64 parts)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    parts = [base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${parts[0]}${parts[1]}"


def verify_password(password: str, stored: str) -> bool:
    """Check `password` against a hash made by `hash_password`, in constant time."""
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = base64.b64decode(salt_b64)
    expected = base64.b64decode(digest_b64)
    actual = hashlib.scrypt(password.encode(), salt=salt, n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(actual, expected)


def new_token() -> str:
    """Create an API bearer token; it is shown once and stored only as its hash."""
    return "th_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    """SHA-256 of a high-entropy token; a slow hash adds nothing for random secrets."""
    return hashlib.sha256(token.encode()).digest()
