# C-level declarations of exchange.py's class (an augmenting .pxd: exchange.py stays plain Python and runs
# uncompiled too). Typed attributes make the per-request work C struct accesses.
from agw.proxy.flow cimport ClientFlow
from agw.proxy.heads cimport relayed_lines, request_head, status_line
from agw.proxy.routing cimport RouteRuntime
from agw.proxy.upstream cimport ResponseSink, Target, UpstreamConnection


cdef class Exchange(ResponseSink):
    cdef public ClientFlow proto
    cdef public bytes method
    cdef public bytes target
    cdef public list headers
    cdef public list lines
    cdef public dict hdict
    cdef public bint keep_alive
    cdef public bint http10
    cdef public RouteRuntime route
    cdef public UpstreamConnection conn
    cdef public Target upstream
    cdef public list body_buffer
    cdef public Py_ssize_t body_buffered
    cdef public bint request_done
    cdef public bint request_chunked
    cdef public bint response_started
    cdef public bint response_chunked
    cdef public bint response_close_delimited
    cdef public Py_ssize_t status
    cdef public bint retried
    cdef public bint done
    cdef public list verdicts
    cdef public Py_ssize_t next_policy
    cdef public double start_time
    cdef public Py_ssize_t bytes_out
    cdef public str reason

    cpdef bint upgrade_allowed(self, RouteRuntime route) except -1
    cpdef relay_switch(self, UpstreamConnection conn, bytes reason)
    cpdef start(self)
    cpdef run_policies(self)
    cpdef bint take_verdict(self, verdict) except -1
    cpdef forward(self)
    cpdef bytes build_head(self)
    cpdef send_head(self, UpstreamConnection conn)
    cpdef on_request_body(self, bytes body)
    cpdef on_request_complete(self)
    cpdef finish_response(self, UpstreamConnection conn)
    cpdef respond_error(self, error)
    cpdef respond_simple(self, code, bytes body, tuple extra)
