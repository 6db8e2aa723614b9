# C-level declarations of context.py's class (an augmenting .pxd).
from agw.proxy.batch cimport WriteBatch
from agw.proxy.metrics cimport Stats
from agw.proxy.routing cimport Router


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
    cdef public Py_ssize_t max_tunnels
    cdef public Py_ssize_t tunnels
    cdef public double request_header_timeout
    cdef public double keepalive_timeout
    cdef public double body_idle_timeout
    cdef public bint merge_slashes
