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


def normalize_typ(str typ):
    """A JOSE `typ` as compared: case-insensitive, `application/` omitted (RFC 7515 4.1.9)."""
    t = typ.lower()
    return t[12:] if t.startswith("application/") else t


cdef bint _has_scopes(object claims, frozenset wanted):
    """The token's `scope` (space-separated, RFC 8693/9068) or `scp` (an array, or a string) holds every wanted one."""
    have = (<dict>claims).get("scope")
    if have is None:
        have = (<dict>claims).get("scp")
    if type(have) is str:
        return wanted.issubset((<str>have).split())
    if type(have) is list:
        return wanted.issubset([s for s in <list>have if type(s) is str])
    return False


@cython.final
cdef class Provider:
    """One configured issuer: its audience and required-claim rules and its current key set."""

    def __init__(self, str issuer, audiences=None, unsigned int required=C_EXP, *, types=None,
                 double max_lifetime=0.0, subjects=None, scopes=None):
        self.issuer = issuer
        self.audiences = frozenset(audiences) if audiences else None
        self.required = required
        self.types = frozenset(normalize_typ(t) for t in types) if types else None
        self.max_lifetime = max_lifetime
        self.subjects = subjects
        self.scopes = frozenset(scopes) if scopes else None
        self.scope_result = None
        self.any_kid = False
        self.profile = self.types is not None or max_lifetime > 0.0 or subjects is not None
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

    cdef int check_profile(self, object typ, bint has_exp, double exp_d, bint has_iat, double iat_d, object sub):
        """-1 when the token fits the provider's profile, else the reason it does not."""
        if self.types is not None and (typ is None or typ not in self.types):
            return R_TYPE
        if self.max_lifetime > 0.0:
            if not (has_exp and has_iat):
                return R_MISSING_CLAIM
            if exp_d - iat_d > self.max_lifetime:
                return R_LIFETIME
        if self.subjects is not None:
            if sub is None:
                return R_SUBJECT
            exact, prefixes, patterns = <tuple>self.subjects
            if sub in <frozenset>exact:
                return -1
            for prefix in <tuple>prefixes:
                if (<str>sub).startswith(prefix):
                    return -1
            for pattern in <tuple>patterns:
                if pattern.fullmatch(sub) is not None:
                    return -1
            return R_SUBJECT
        return -1

    def profile_reason(self, typ=None, exp=None, iat=None, sub=None):
        """The profile check for tests: None when a token with these values fits, else its reason code."""
        r = self.check_profile(normalize_typ(typ) if typ is not None else None, exp is not None,
                               exp if exp is not None else 0.0, iat is not None, iat if iat is not None else 0.0,
                               sub)
        return None if r < 0 else REASONS[r]

    @property
    def has_keys(self) -> bool:
        return bool(self.keys)

    @property
    def key_count(self) -> int:
        return len(self.keys)

    def key_ids(self) -> list:
        return [(<Key>k).kid for k in self.keys]
