"""The data fingerprint: an order-free digest of every listed image's id, class and content.

Each image contributes `entry_hash(id, class name, sha256 of its bytes)`; contributions are added
modulo 2**256 (`combine_hashes`), so shards and workers can each sum their own images and the
driver adds up their sums: the fingerprint does not depend on how images were spread. The embed
job's cache key includes it, and jobs that read a folder in one process compute the same value.
"""
import hashlib
import json

__all__ = ["entry_hash", "combine_hashes"]

_HASH_MODULUS = 2**256


def entry_hash(example_id, label_name, digest):
    """One listed image's contribution to the data fingerprint (an integer < 2**256)."""
    key = json.dumps([example_id, label_name, digest]).encode()
    return int.from_bytes(hashlib.sha256(key).digest(), "big")


def combine_hashes(hashes):
    """The order-free sum of entry hashes (mod 2**256) as 64 hex digits.

    Shards add up their own entries and the driver adds up the shards, so the fingerprint of the
    data does not depend on how the images were spread over shards or workers.
    """
    return f"{sum(hashes) % _HASH_MODULUS:064x}"
