# C-level declarations of protocol.py's class (an augmenting .pxd).
from agw.proxy.exchange cimport Exchange
from agw.proxy.flow cimport ClientFlow


cdef class ClientProtocol(ClientFlow):
    cdef public object parser
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
    cdef public object pending_error
    cdef public Py_ssize_t requests
    cdef public bint accepting
    cdef public bytes backlog
    cdef public bytes upgrade_data
    cdef public object tunnel

    cpdef dispatch(self, Exchange ex)
    cpdef next_request(self)
    cpdef parse(self, bytes data)
    cpdef bint feed(self, bytes data) except -1
    cpdef Py_ssize_t _scan_plain_requests(self, bytes data) except -1
