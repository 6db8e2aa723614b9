# Keys and providers (included by agw/_fastjwt.pyx). agw/jwt/keys.py turns JWKs into Key objects (the JWK
# hygiene lives there); here a key verifies, through the family its algorithm has in the table (algorithms.pxi).

@cython.final
cdef class Key:
    """One usable JWK: a ready `cryptography` public key (or HMAC secret) and the algorithms it allows.

    `identity` is a stable fingerprint of the key material, used to notice key-set changes.
    """

    def __init__(self, kid, unsigned int algs, pub, identity, int coord=0, ec_order=None,
                 Py_ssize_t modulus_len=0):
        self.kid = kid
        self.algs = algs
        self.pub = pub
        self.identity = identity
        self.coord = coord
        self.ec_order = ec_order.to_bytes(coord, "big") if ec_order is not None else None
        self.modulus_len = modulus_len

    cdef int verify(self, int alg, bytes signing_input, bytes sig) except -1:
        """1 if the signature is valid, 0 if not; `alg` is an id the key allows."""
        cdef AlgSpec spec = _ALGS[alg]
        try:
            if spec.family == FAM_HMAC:
                return _verify_hmac(self.pub, spec.digest, signing_input, sig)
            if spec.family == FAM_RSA_PKCS1:
                return _verify_rsa_pkcs1(self.pub, self.modulus_len, spec.digest, signing_input, sig)
            if spec.family == FAM_RSA_PSS:
                return _verify_rsa_pss(self.pub, spec.digest, signing_input, sig)
            if spec.family == FAM_ECDSA:
                return _verify_ecdsa(self.pub, self.coord, self.ec_order, spec.digest, signing_input, sig)
            if spec.family == FAM_EDDSA:
                return _verify_eddsa(self.pub, signing_input, sig)
        except _InvalidSignature:
            return 0
        except (ValueError, TypeError):
            return 0
        return 0

    def verify_signature(self, str alg, bytes signing_input, bytes sig) -> bool:
        """Python-visible signature check (tests, tooling); False also when the key does not allow `alg`."""
        cdef int a = _ALG_IDS.get(alg, -1)
        if a < 0 or not (self.algs & (1u << a)):
            return False
        return self.verify(a, signing_input, sig) == 1

    def __repr__(self):
        names = [a for a in ALGORITHMS if self.algs & ALG_BITS[a]]
        return f"Key(kid={self.kid!r}, algs={names})"


@cython.final
cdef class Provider:
    """One configured issuer: its audience and required-claim rules and its current key set."""

    def __init__(self, str issuer, audiences=None, unsigned int required=C_EXP):
        self.issuer = issuer
        self.audiences = frozenset(audiences) if audiences else None
        self.required = required
        self.generation = 0
        self.by_kid = {}
        self.keys = []
        self.fingerprint = None
        self.source = None

    def set_keys(self, list keys) -> bool:
        """Install a new key set; returns True (and bumps the generation, killing cached tokens) on a change."""
        fingerprint = frozenset((<Key>k).identity for k in keys)
        if fingerprint == self.fingerprint:
            return False
        cdef dict by_kid = {}
        for k in keys:
            if (<Key>k).kid is not None:
                by_kid.setdefault((<Key>k).kid, []).append(k)
        self.keys = list(keys)
        self.by_kid = by_kid
        self.fingerprint = fingerprint
        self.generation += 1
        return True

    @property
    def has_keys(self) -> bool:
        return bool(self.keys)

    @property
    def key_count(self) -> int:
        return len(self.keys)

    def key_ids(self) -> list:
        return [(<Key>k).kid for k in self.keys]
