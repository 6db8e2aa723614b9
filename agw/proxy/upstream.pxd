# C-level declarations of upstream.py's classes (an augmenting .pxd; see server.pxd).

cdef class UpstreamConnection
cdef class Target


cdef class ResponseSink:
    cdef public bint head_only
    cdef public bytes upgrade

    cpdef pause_client(self)
    cpdef resume_client(self)
    cpdef on_response_head(self, UpstreamConnection conn, int status, bytes reason, bint upstream_keep_alive)
    cpdef on_response_body(self, bytes body)
    cpdef on_response_complete(self, UpstreamConnection conn)
    cpdef on_upstream_lost(self, UpstreamConnection conn)
    cpdef on_upstream_protocol_error(self)
    cpdef on_upgraded(self, UpstreamConnection conn, bytes rest)


cdef class UpstreamConnection:
    cdef public Target target
    cdef public object transport
    cdef public object parser
    cdef public ResponseSink exchange
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
    cdef public bint interim
    cdef public bint completed
    cdef public bint leftover

    cpdef relay_head(self, bytes data, tuple head)
    cpdef relay_body(self, bytes data, Py_ssize_t start)
    cpdef bind(self, ResponseSink exchange)
    cpdef close(self)
    cpdef abort(self)

cdef class Target:
    cdef public object host
    cdef public Py_ssize_t port
    cdef public str label
    cdef public bytes label_bytes
    cdef public list idle
    cdef public Py_ssize_t max_idle
    cdef public double idle_timeout
    cdef public double connect_timeout
    cdef public set all
    cdef public Py_ssize_t connect_errors
    cdef public bint retired

    cpdef UpstreamConnection take_idle(self)
    cpdef release(self, UpstreamConnection conn)
    cpdef forget(self, UpstreamConnection conn)

cdef class BackendPool:
    cdef public list targets
    cdef public object _cycle
    cdef public object _single

    cpdef Target pick(self)
