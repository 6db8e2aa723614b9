# The verified-token cache (included by agw/_fastjwt.pyx): entries found by the token's tail, admitted at a
# token's second verification, bounded by entries and bytes, valid until exp (with the skew) or a key-set change.

# Slots of the cache's admission filter (8 bytes each; see TokenCache.put).
cdef enum:
    SEEN_SLOTS = 1 << 16

cdef uint64_t _KEY_SEED = <uint64_t>int.from_bytes(_os.urandom(8), "little")


cdef inline uint64_t _token_key(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """The cache key of a token: its length and last 32 bytes, mixed with a per-process seed.

    A compact JWS ends with its signature, whose bytes are uniformly spread for every algorithm we accept, so
    the tail spreads verified tokens evenly (only verified tokens are ever inserted) without hashing the whole
    ~1.3 KB token on every request as a bytes key would. A hit compares the whole token, so a shared key can
    only cost a miss, never a wrong result.
    """
    cdef uint64_t h = _KEY_SEED ^ (<uint64_t>n * <uint64_t>0x9E3779B97F4A7C15)
    cdef uint64_t w
    cdef Py_ssize_t i = n - 32 if n > 32 else 0
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        h = (h ^ w) * <uint64_t>0xFF51AFD7ED558CCD
        h ^= h >> 33
        i += 8
    while i < n:
        h = (h ^ p[i]) * <uint64_t>0x100000001B3
        i += 1
    h ^= h >> 29
    return h

# What one cache entry holds besides the token and claims JSON: the AuthResult, the entry, its int key, the
# subject string and the OrderedDict slot (bytes as tracemalloc counts them, rounded up; see the unit test
# that holds the cache to its max_bytes).
cdef Py_ssize_t ENTRY_OVERHEAD = 640
cdef Py_ssize_t CLAIM_HEADER_OVERHEAD = 160


cdef Py_ssize_t _entry_size(bytes token, AuthResult result):
    cdef Py_ssize_t size = PyBytes_GET_SIZE(token) + PyBytes_GET_SIZE(result.claims_json) + ENTRY_OVERHEAD
    if result.subject is not None:
        size += len(<str>result.subject)
    for _, value in result.add_headers:
        size += PyBytes_GET_SIZE(value) + CLAIM_HEADER_OVERHEAD
    return size


@cython.final
@cython.no_gc   # references its provider and result, neither of which refers back
cdef class CacheEntry:
    pass


@cython.final
cdef class TokenCache:
    """Verified results by token, owned by one Core (`enabled` False: never holds anything)."""

    def __init__(self, double skew, bint enabled, Py_ssize_t max_entries, Py_ssize_t max_bytes):
        self.enabled = enabled and max_entries > 0 and max_bytes > 0
        self.skew = skew
        self.entries = _OrderedDict()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        if self.enabled and self.seen == NULL:
            # calloc of a large block maps zero pages: only the slots actually marked take memory.
            self.seen = <uint64_t*>calloc(SEEN_SLOTS, sizeof(uint64_t))
            if self.seen == NULL:
                raise MemoryError()

    def __dealloc__(self):
        free(self.seen)

    cdef object get(self, const unsigned char* p, Py_ssize_t n, double now):
        """The cached result for the token p[:n] if it still holds at `now` (exp and nbf with the skew, same key
        set), else None: a miss (an entry that no longer holds is dropped on the way)."""
        cdef PyObject* found
        cdef CacheEntry e
        key = PyLong_FromUnsignedLongLong(_token_key(p, n))
        found = PyDict_GetItemWithError(self.entries, key)
        if found != NULL:
            e = <CacheEntry>found
            if PyBytes_GET_SIZE(e.token) == n and memcmp(PyBytes_AS_STRING(e.token), p, n) == 0:
                if e.exp > now - self.skew and e.nbf <= now + self.skew and e.generation == e.provider.generation:
                    self.hits += 1
                    return e.result
                del self.entries[key]
                self.bytes -= e.size
        self.misses += 1
        return None

    cdef void put(self, bytes token, AuthResult result, double exp, double nbf, Provider provider):
        cdef uint64_t k = _token_key(<const unsigned char*>PyBytes_AS_STRING(token), PyBytes_GET_SIZE(token))
        cdef uint64_t* slot = &self.seen[(k >> 17) & (SEEN_SLOTS - 1)]
        if slot[0] != k:
            # Admission on the second sighting: a token verified once is only remembered (8 bytes); it is cached
            # when verified again while remembered. Clients reuse their token, so they pay one extra verify;
            # a stream of one-shot tokens (every request a new token, or a flood of them) never churns the
            # cache, which would otherwise evict the entries of the clients that do reuse theirs.
            slot[0] = k
            return
        slot[0] = 0
        cdef CacheEntry e = CacheEntry.__new__(CacheEntry)
        e.token = token
        e.exp = exp
        e.nbf = nbf
        e.generation = provider.generation
        e.provider = provider
        e.result = result
        e.size = _entry_size(token, result)
        if e.size > self.max_bytes:
            return
        entries = self.entries
        key = PyLong_FromUnsignedLongLong(k)
        old = entries.pop(key, None)   # another verified token with the same key: the newer one stays
        if old is not None:
            self.bytes -= (<CacheEntry>old).size
        while len(entries) >= self.max_entries or self.bytes + e.size > self.max_bytes:
            _, old = entries.popitem(last=False)
            self.bytes -= (<CacheEntry>old).size
        entries[key] = e
        self.bytes += e.size

    cdef Py_ssize_t purge(self, double now):
        """Drop entries that are expired or belong to an old key set; how many."""
        dead = [k for k, e in self.entries.items()
                if not ((<CacheEntry>e).exp > now - self.skew
                        and (<CacheEntry>e).generation == (<CacheEntry>e).provider.generation)]
        for k in dead:
            self.bytes -= (<CacheEntry>self.entries.pop(k)).size
        return len(dead)

    cdef dict stats(self):
        return {"hits": self.hits, "misses": self.misses, "entries": len(self.entries), "bytes": self.bytes,
                "max_entries": self.max_entries, "max_bytes": self.max_bytes, "enabled": self.enabled}
