# C-level declarations of metrics.py's Stats (an augmenting .pxd): the server counts every request through
# a C call, not a Python-level hook.
cdef class Stats:
    cdef public dict requests
    cdef public dict durations
    cdef public dict jwt

    cpdef record(self, str route, status, double seconds, jwt_provider, jwt_outcome)
