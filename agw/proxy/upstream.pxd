# C-level declarations of upstream.py's classes (an augmenting .pxd; see server.pxd).

cdef class UpstreamConnection:
    cdef public Target target
    cdef public object transport
    cdef public object parser
    cdef public object exchange
    cdef public bint reusable
    cdef public double idle_since
    cdef public bytes status_reason
    cdef public list lines
    cdef public list special
    cdef public bint has_length
    cdef public bint got_bytes
    cdef public bint closed
    cdef public bint in_message
    cdef public Py_ssize_t body_left
    cdef public bint keep

    cpdef relay_head(self, bytes data, tuple head)
    cpdef relay_body(self, bytes data, Py_ssize_t start)

cdef class Target:
    cdef public object host
    cdef public Py_ssize_t port
    cdef public str label
    cdef public list idle
    cdef public Py_ssize_t max_idle
    cdef public double idle_timeout
    cdef public double connect_timeout
    cdef public set all
    cdef public Py_ssize_t connect_errors
    cdef public bint retired

cdef class BackendPool:
    cdef public list targets
    cdef public object _cycle
    cdef public object _single
