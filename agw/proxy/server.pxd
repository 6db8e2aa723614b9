# C-level declarations of server.py's classes (an augmenting .pxd: server.py stays plain Python and
# runs uncompiled too). Typed attributes make the per-request work C struct accesses.
from agw.proxy.metrics cimport Stats
from agw.proxy.routing cimport RouteRuntime, Router
from agw.proxy.upstream cimport ResponseSink, Target, UpstreamConnection


cdef class Exchange(ResponseSink)


cdef class WriteBatch:
    cdef public object loop
    cdef public list transports
    cdef public list chunks
    cdef public bint scheduled
    cdef public Py_ssize_t pending

    cpdef add(self, object transport, bytes data)
    cpdef flush(self)


cdef class ServerContext:
    cdef public Router router
    cdef public WriteBatch batch
    cdef public bytes scheme
    cdef public set connections
    cdef public bint draining
    cdef public object on_request
    cdef public Stats stats
    cdef public object loop
    cdef public double now
    cdef public frozenset special_headers
    cdef public Py_ssize_t max_header_bytes
    cdef public Py_ssize_t max_headers
    cdef public Py_ssize_t max_connections
    cdef public double request_header_timeout
    cdef public double keepalive_timeout
    cdef public double body_idle_timeout
    cdef public bint merge_slashes

cdef class ClientProtocol:
    cdef public ServerContext ctx
    cdef public object loop
    cdef public object transport
    cdef public object parser
    cdef public bytes peer
    cdef public bytes url
    cdef public list headers
    cdef public list lines
    cdef public dict hdict
    cdef public Py_ssize_t head_bytes
    cdef public Py_ssize_t raw_head_bytes
    cdef public bint headers_done
    cdef public Exchange parsing
    cdef public Exchange active
    cdef public object queue
    cdef public Py_ssize_t paused
    cdef public bint write_paused
    cdef public double deadline
    cdef public bint closing
    cdef public object pending_error
    cdef public Py_ssize_t requests
    cdef public bint accepting
    cdef public bytes backlog

    cpdef pause_reading_for(self, reason)
    cpdef resume_reading_for(self, reason)
    cpdef _arm(self, double delay)
    cpdef _disarm(self)
    cpdef write(self, bytes data)
    cpdef exchange_done(self, Exchange ex)
    cpdef dispatch(self, Exchange ex)
    cpdef next_request(self)
    cpdef parse(self, bytes data)
    cpdef bint feed(self, bytes data) except -1
    cpdef Py_ssize_t _scan_plain_requests(self, bytes data) except -1

cdef class Exchange(ResponseSink):
    cdef public ClientProtocol proto
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
    cdef public double request_deadline
    cdef public double start_time
    cdef public Py_ssize_t bytes_out
    cdef public str reason

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
