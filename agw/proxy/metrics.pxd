# C-level declarations of metrics.py's classes (an augmenting .pxd): the server counts every request through
# C calls, not a Python-level hook.
cdef class RouteStats:
    cdef public dict statuses
    cdef public list buckets
    cdef public double seconds

    cpdef add(self, status, double seconds)


cdef class Stats:
    cdef public dict routes
    cdef public dict outcomes
    cdef public dict tunnels

    cpdef record(self, str route, status, double seconds, verdicts)
