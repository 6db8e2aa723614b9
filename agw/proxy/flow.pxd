# C-level declarations of flow.py's class (an augmenting .pxd). An exchange holds its client as a ClientFlow,
# so exchange.py and protocol.py do not cimport each other.
from agw.proxy.context cimport ServerContext


cdef class ClientFlow:
    cdef public ServerContext ctx
    cdef public object loop
    cdef public object transport
    cdef public bytes peer
    cdef public Py_ssize_t paused
    cdef public bint write_paused
    cdef public double deadline
    cdef public double request_deadline
    cdef public bint closing

    cpdef pause_reading_for(self, reason)
    cpdef resume_reading_for(self, reason)
    cpdef follow_client(self, upstream)
    cpdef relaying_transport(self)
    cpdef writable(self)
    cpdef write(self, bytes data)
    cpdef close(self)
    cpdef _arm(self, double delay)
    cpdef _disarm(self)
    cpdef exchange_done(self, ex)
